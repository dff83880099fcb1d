#pragma once
// Pruning (docs/INQ_SPEC.md section 6): Dynamic Network Surgery (Guo, Yao, Chen 2016) and magnitude
// pruning with re-training (Han et al. 2015), on the tensors INQ quantizes (select_quantized: the
// ParamRole::Weight parameters minus the exclude patterns). Biases are never pruned, so one mask per
// tensor serves pruning and INQ (a pruned weight is an INQ weight frozen at 0 from the start).
//
// Everything here works on plain (name, tensor) lists and a PruneState; PruneSgd (inq/prune_sgd.h)
// owns a state, and train/prune_phases.h drives it from the training loop. Each record is keyed by
// the parameter's dotted name, like INQ's (docs/DESIGN.md habit 8).
//
// Masks hold 1 where a weight survives and 0 where it is pruned (the paper's T).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "framework/random.h"
#include "framework/state_dict.h"
#include "layers/module.h"

namespace inq {

enum class PruneMethod { Dns, Magnitude };
const char* prune_method_name(PruneMethod m);
PruneMethod parse_prune_method(const std::string& name);  // "dns" or "magnitude"; else throws

// Whether a sparsity target holds for each tensor ("layer") or for all pruned weights together
// ("global": the smallest weights of the whole network go first, so layers end up unequal).
enum class SparsityScope { Layer, Global };
const char* sparsity_scope_name(SparsityScope s);
SparsityScope parse_sparsity_scope(const std::string& name);  // "layer" or "global"; else throws

struct PruneOptions {
  PruneMethod method = PruneMethod::Dns;
  // The fraction of weights to prune, in [0, 1); negative: not given. Magnitude needs it (the
  // result is exactly frozen_target(sparsity, n) weights per tensor, or over the whole network).
  // DNS uses it to choose each layer's rate c (see dns_rates); without it DNS uses `rate`.
  double sparsity = -1;
  SparsityScope scope = SparsityScope::Layer;
  double rate = 0;       // DNS: c in t = max(mu + c * sigma, 0), when sparsity is not given
  double gamma = 1e-4;   // DNS: mask updates at iteration i with probability (1 + gamma * i)^(-power)
  double power = 1;
  int64_t stop_iteration = 0;  // DNS: no mask update at iterations >= this; 0 = never stops
  uint64_t seed = 0;           // seeds the generator of DNS's update draws
  std::vector<std::string> exclude = {};  // glob patterns of weights left unpruned (as INQ's)
  // Layer scope: per-tensor targets "glob=fraction" overriding `sparsity` for the tensors whose name
  // matches (the first matching entry wins), e.g. {"classifier.0.*=0.98", "features.*=0.8"}: the DNS
  // paper prunes LeNet's large fully-connected layer far more than its convolutions.
  std::vector<std::string> layer_sparsity = {};

  // Magnitude needs a sparsity; every value finite and in range; layer targets well formed and only
  // with a sparsity and the layer scope. Throws inq::Error naming the field.
  void validate() const;
  // The target of the tensor `name`: the first matching layer_sparsity entry, else `sparsity`.
  double target_for(const std::string& name) const;
};

// One "glob=fraction" entry of PruneOptions::layer_sparsity; throws naming the entry.
std::pair<std::string, double> parse_layer_sparsity(const std::string& entry);

// One pruned tensor's record.
struct PruneParamState {
  Tensor mask;     // (shape of the parameter) 1 = kept, 0 = pruned; exactly 0.0f or 1.0f
  int64_t pruned = 0;  // zeros in mask
  // DNS only (0 for magnitude): the statistics of |w| over the unpruned entries at the first
  // iteration, the rate c and the threshold t = max(mu + c * sigma, 0) they give.
  double mu = 0, sigma = 0, rate = 0, threshold = 0;
  // DNS only: the dense weights w. The parameter holds w * mask outside a training step (so the
  // model evaluates and saves pruned); the update of each step is applied to w, every entry.
  Tensor dense;
};

struct PruneState {
  bool started = false;  // the masks exist (start_pruning has run)
  std::map<std::string, PruneParamState> params;  // keyed by dotted name; empty before the start
  Generator generator;   // DNS's update draws; seeded from PruneOptions::seed
};

PruneState make_prune_state(const PruneOptions& options);

// The probability (1 + gamma * iteration)^(-power) that DNS updates its masks at `iteration`, or 0
// at and after a positive stop_iteration.
double dns_update_probability(const PruneOptions& options, int64_t iteration);

// Per-layer (or, global scope, one shared) DNS rate c for which the first mask prunes a `sparsity`
// fraction of the weights: (D) the first mask prunes |w| <= 0.9 t, so per layer t is chosen as
// |w|_(k) / 0.9 with |w|_(k) the k-th smallest of k = frozen_target(sparsity, n), and c = (t - mu) /
// sigma; with the global scope c is the K-th smallest over all weights of the value of c at which
// that weight becomes pruned. Ties and rounding can prune a few weights more. Returns c by name.
std::map<std::string, double> dns_rates(const std::vector<NamedParameter>& params, const PruneOptions& options);

// Builds the masks from the weights as they are now and zeroes the pruned weights in place:
// - Magnitude: the frozen_target(sparsity, n) smallest |w| of each tensor (global: of all tensors
//   together), ties by name then lower flat index; the mask then stays fixed.
// - DNS: mu and sigma of |w| over the tensor (every entry unpruned yet), the rate (options.rate or
//   dns_rates), t, and the first mask update (iteration 0 updates with probability 1, so it takes no
//   draw): T = 0 where |w| <= 0.9 t. The dense weights are kept in the record.
// Throws, naming the tensor, on a NaN or Inf weight, and when started already.
void start_pruning(PruneState& state, const std::vector<NamedParameter>& params, const PruneOptions& options);

// DNS at training iteration `iteration` (>= 1): with probability dns_update_probability (one draw
// from state.generator per tensor, in name order, as each of the DNS authors' layers draws its
// own), T goes 1 -> 0 where |w| <= 0.9 t and 0 -> 1 where |w| > 1.1 t, w the dense weights. Returns
// the number of tensors whose mask was updated. Magnitude: nothing (returns 0).
int dns_update_masks(PruneState& state, const PruneOptions& options, int64_t iteration);

// Writes w * mask into every pruned parameter (DNS: from the dense copy; magnitude: the parameter
// itself), so the forward pass, evaluation and saved weights see pruned entries as exactly 0.
void apply_prune_masks(const PruneState& state, const std::vector<NamedParameter>& params);
// DNS, after backward: puts the dense weights back into the parameters, so the optimizer updates
// every entry with the gradient computed for the masked weights.
void restore_dense_weights(const PruneState& state, const std::vector<NamedParameter>& params);
// DNS, after the optimizer step: the parameters now hold the updated dense weights; copy them into
// the records.
void capture_dense_weights(PruneState& state, const std::vector<NamedParameter>& params);

// ---- report ----
struct PruneTensorReport {
  std::string name;
  int64_t numel = 0, pruned = 0;
  double sparsity = 0;  // pruned / numel
  double mu = 0, sigma = 0, rate = 0, threshold = 0;  // DNS
};
std::vector<PruneTensorReport> prune_report(const PruneState& state);
// A fixed-width text table, one line per tensor and a total line.
std::string format_prune_report(const std::vector<PruneTensorReport>& rows, PruneMethod method);
// Pruned over all records / weights over all records (0 before the start).
double overall_sparsity(const PruneState& state);

// ---- serialization (prune_io.cpp) ----
// Tensors: "<param>.prune_mask" for each record and, DNS, "<param>.dns_weight" (the dense weights).
// Metadata: one JSON object:
//   {"format": "prune-state", "version": 1, "method", "sparsity", "scope", "rate", "gamma", "power",
//    "stop_iteration", "seed", "exclude", "started", "generator",
//    "tensors": {"<param>": {"numel", "pruned", "mu", "sigma", "rate", "threshold"}, ...}}
inline constexpr const char* kPruneMaskSuffix = ".prune_mask";
inline constexpr const char* kDnsWeightSuffix = ".dns_weight";
inline constexpr const char* kPruneStateFormat = "prune-state";
inline constexpr int kPruneStateVersion = 1;

// True for names ending in kPruneMaskSuffix or kDnsWeightSuffix.
bool is_prune_state_tensor(const std::string& name);
NamedTensorList prune_state_tensors(const PruneState& state);
std::string prune_state_metadata(const PruneState& state, const PruneOptions& options);
// Rebuilds a state strictly: the options must equal `options`, the records must be exactly the
// tensors of `params` (none before the start) with matching shapes, masks of 0 and 1 with `pruned`
// zeros, dense weights for DNS and none for magnitude, and each parameter must hold w * mask (its
// pruned entries 0). Every problem is listed in one inq::Error.
PruneState load_prune_state(const NamedTensorList& tensors, const std::string& metadata,
                            const PruneOptions& options, const std::vector<NamedParameter>& params);

// The masks of a pruned checkpoint's optimizer records ("<param>.prune_mask", suffix removed), for
// INQ to start from (inq quantize --weights a pruned checkpoint). Checks each is 0/1-valued.
std::map<std::string, Tensor> prune_masks_from(const NamedTensorList& optimizer_tensors, const std::string& source);

}  // namespace inq
