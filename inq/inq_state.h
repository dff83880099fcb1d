#pragma once
// The INQ state of a run, kept with the optimizer (docs/DESIGN.md: never on tensors): one record per
// quantized weight tensor, keyed by the parameter's dotted name, holding its codebook, its frozen mask,
// its schedule position and its saturation count (docs/INQ_SPEC.md sections 1, 2, 4, 8). Everything here
// works on plain (name, tensor) lists; InqSgd (inq/inq_sgd.h) owns an InqState and applies it.
//
// Which tensors: the ParamRole::Weight parameters (the weights of Conv2d and Linear), minus those
// whose dotted name matches an exclude pattern. Never biases or BatchNorm parameters and buffers.
//
// The state and the step are implemented in inq_state.cpp, reports and verification in
// inq_report.cpp, serialization in inq_state_io.cpp (metadata read with framework/json_value.h).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "framework/random.h"
#include "framework/state_dict.h"  // NamedTensorList
#include "inq/codebook.h"
#include "inq/partition.h"
#include "layers/module.h"

namespace inq {

struct InqOptions {
  int bits = 5;                       // b >= 2
  std::vector<double> portions = {};  // accumulated portions; empty: default_portions(bits)
  PartitionStrategy strategy = PartitionStrategy::Magnitude;
  uint64_t seed = 0;  // seeds the generator of the random strategy
  // Glob patterns on dotted names ('*' matches any run of characters, dots included; '?' one
  // character); a matching Weight parameter is not quantized. Each pattern must match some Weight.
  std::vector<std::string> exclude = {};

  // bits in [2, max_codebook_bits()], valid portions (explicit or the default for `bits`), non-empty
  // patterns. Throws inq::Error.
  void validate() const;
  // `portions`, or default_portions(bits) when empty.
  std::vector<double> resolved_portions() const;
};

// One quantized tensor's record.
struct InqParamState {
  Codebook codebook;      // fixed when INQ starts (step 1), from the tensor's max |w| then
  Tensor mask;            // (shape of the parameter) the paper's T: 1 = still float and re-trained,
                          // 0 = quantized and frozen. Exactly 0.0f or 1.0f.
  int64_t frozen = 0;     // number of zeros in mask: pruned + frozen_target(sigma_step, numel - pruned)
  int64_t pruned = 0;     // weights pruned before INQ (InqState::pruned): frozen at 0 from step 1 on
  int step = 0;           // the last quantization step applied (1..K)
  int64_t saturated = 0;  // entries the quantizer saturated to +-2^n1, summed over the steps
};

// The whole INQ position of a run.
struct InqState {
  int steps_begun = 0;                          // quantization steps applied so far (0..K)
  std::map<std::string, InqParamState> params;  // keyed by dotted name; empty before step 1
  Generator generator;                          // the random strategy's; seeded from InqOptions::seed
  // The pruning masks of a pruned starting model (inq/prune.h: 1 kept, 0 pruned), by name; empty
  // when nothing was pruned. Set before step 1 and kept unchanged: step 1 freezes every pruned
  // weight at 0 and the portions count the surviving weights only (docs/INQ_SPEC.md section 6).
  std::map<std::string, Tensor> pruned;
};

// A fresh state (no step applied) with the generator seeded from options.seed.
InqState make_inq_state(const InqOptions& options);

// True when `name` matches the glob `pattern` as a whole.
bool glob_match(std::string_view pattern, std::string_view name);

// The parameters INQ quantizes, in the given order: role Weight and no exclude pattern matching the
// name. Throws when an exclude pattern matches no Weight parameter (a typo would otherwise silently
// quantize the layer it meant to keep), and when nothing is left to quantize.
std::vector<NamedParameter> select_quantized(const std::vector<NamedParameter>& params,
                                             const std::vector<std::string>& exclude);

// Applies quantization step k (1-based: sigma_k = portions[k-1]) to the tensors of `quantized`:
// - k must be state.steps_begun + 1 and at most K;
// - step 1 builds every codebook from the tensor's current max |w| (NaN or Inf throws, naming it);
// - with pruning masks (state.pruned), step 1 first freezes every pruned weight at 0 (each must be
//   0 already, and every pruned tensor must be quantized);
// - each tensor freezes pruned + frozen_target(sigma_k, numel - pruned) - frozen more weights (so
//   sigma_k is a portion of the surviving weights), chosen among its still-float weights by
//   options.strategy (tensors are visited in name order, which fixes the
//   random generator's sequence), quantizes them in place and zeroes their mask entries.
// Everything is checked before anything changes: the names must match the state's records (after
// step 1), still-float weights must be finite and frozen weights must still be codebook values (a
// weight changed behind the optimizer's back throws, naming it).
void apply_inq_step(InqState& state, const std::vector<NamedParameter>& quantized, const InqOptions& options,
                    int k);

// Quantizes every selected weight of `params` at once (a one-step schedule {1}, no re-training): the
// paper's comparison point. Returns the state with the codebooks, all-zero masks and saturation counts.
InqState quantize_one_shot(const std::vector<NamedParameter>& params, int bits,
                           const std::vector<std::string>& exclude = {});

// ---- reports and verification (inq_report.cpp) ----

struct InqTensorReport {
  std::string name;
  int64_t numel = 0;
  int bits = 0, n1 = 0, n2 = 0;
  int step = 0;
  int64_t frozen = 0;
  double frozen_fraction = 0;  // frozen / numel (1 for an empty tensor)
  int64_t levels_used = 0;     // distinct codebook values among the frozen weights
  int64_t saturated = 0;
};

// One row per record of `state`, in name order; `quantized` supplies the tensors (by name).
std::vector<InqTensorReport> inq_report(const InqState& state, const std::vector<NamedParameter>& quantized);
// A fixed-width text table of the rows, one line per tensor after a header line.
std::string format_inq_report(const std::vector<InqTensorReport>& rows);

struct OffendingWeight {
  std::string name;
  int64_t index = 0;  // flat index into the tensor
  float value = 0;
};

// Section 8: every weight of every tensor must be 0 or +-2^k with n2 <= k <= n1 of its own codebook
// (Codebook::contains). Returns every offending weight, in the order of `tensors` then index.
// Throws when the names of `tensors` and of `codebooks` are not the same set.
std::vector<OffendingWeight> verify_quantized(const NamedTensorList& tensors,
                                              const std::map<std::string, Codebook>& codebooks);
// Throws inq::Error listing the first offenders and their total count, if there are any.
void check_quantized(const NamedTensorList& tensors, const std::map<std::string, Codebook>& codebooks);
// The codebooks of a state, by name.
std::map<std::string, Codebook> codebooks_of(const InqState& state);

// ---- serialization (inq_state_io.cpp) ----
// Tensors: "<param>.inq_mask" (the mask, 1 = float, 0 = frozen) for each record, and
// "<param>.prune_mask" for each pruning mask of InqState::pruned. Metadata: one JSON
// object (a string for a safetensors __metadata__ value):
//   {"format": "inq-state", "version": 1, "bits", "portions", "strategy", "seed", "exclude",
//    "steps_begun", "generator": "<Generator::state()>",
//    "tensors": {"<param>": {"numel", "bits", "n1", "n2", "step", "frozen", "saturated"}, ...},
//    "pruned": {"<param>": <pruned count>, ...}}      (only when InqState::pruned is not empty)

inline constexpr const char* kInqMaskSuffix = ".inq_mask";
inline constexpr const char* kInqStateFormat = "inq-state";
inline constexpr int kInqStateVersion = 1;

inline constexpr const char* kInqPruneMaskSuffix = ".prune_mask";  // the same name as inq/prune.h's

// True for names ending in kInqMaskSuffix or kInqPruneMaskSuffix.
bool is_inq_state_tensor(const std::string& name);
// Copies of the masks, "<param>.inq_mask", in name order.
NamedTensorList inq_state_tensors(const InqState& state);
// The metadata JSON text. `options` must be the options the state was built with.
std::string inq_state_metadata(const InqState& state, const InqOptions& options);
// Rebuilds a state from inq_state_tensors + inq_state_metadata output, strictly: the JSON must be
// well formed (no duplicate or unknown keys, right types), its options must equal `options` (bits,
// resolved portions, strategy, seed, exclude), its tensors must be exactly the names of `quantized`
// (none before step 1) with matching numel, consistent codebooks, step == steps_begun and frozen ==
// pruned + frozen_target(sigma_step, numel - pruned); each mask must exist once, have the parameter's
// shape, hold only 0 and 1 and have `frozen` zeros, and be 0 wherever its pruning mask is; pruning
// masks must name quantized parameters and hold their "pruned" count; no other tensor may be given. Every problem is listed in one
// inq::Error.
InqState load_inq_state(const NamedTensorList& tensors, const std::string& metadata,
                        const InqOptions& options, const std::vector<NamedParameter>& quantized);

}  // namespace inq
