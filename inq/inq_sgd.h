#pragma once
// SGD with Incremental Network Quantization (docs/INQ_SPEC.md sections 4 and 5). It is Sgd with one
// override, the masking hook (docs/DESIGN.md habit 9): a frozen (quantized) weight gets no gradient, no
// weight decay and no momentum, and is never written, so it stays bit-identical. The INQ state (one
// record per quantized tensor: codebook, mask, step, saturation count) lives here, keyed by the
// parameter's dotted name, never on the tensors.
//
// A run: train (or load) the full-precision model; construct InqSgd; then for k = 1..K:
//   begin_step(k)   partition, quantize the chosen weights in place, freeze them, reset momentum;
//   re-train with step() (restart the learning-rate schedule; nothing to re-train after step K).
// After begin_step(K) every quantized weight is a codebook value: verify() returns nothing.
#include <map>
#include <string>
#include <vector>

#include "inq/inq_state.h"
#include "optim/sgd.h"

namespace inq {

class InqSgd : public Sgd {
 public:
  // The quantized tensors are select_quantized(every parameter of `groups`, inq.exclude): the
  // ParamRole::Weight parameters not excluded by name. Validates both option sets.
  InqSgd(std::vector<ParamGroup> groups, const SgdOptions& sgd, const InqOptions& inq);

  // Starts INQ from a pruned model (docs/INQ_SPEC.md section 6): `masks` (1 kept, 0 pruned) by
  // parameter name, e.g. a pruning checkpoint's "<param>.prune_mask" records. Only before step 1;
  // the checks (every pruned weight 0, every mask of a quantized tensor) happen at step 1.
  void set_pruned(std::map<std::string, Tensor> masks);

  // Applies quantization step k (1-based; k must be steps_begun() + 1 <= num_steps()); see
  // apply_inq_step. Step 1 fixes the codebooks from the weights as they are now (the pre-trained ones).
  // Then forgets every momentum buffer (the spec's reset per step). Throws without changing anything
  // when a weight is NaN or Inf or a frozen weight is no longer a codebook value.
  void begin_step(int k);

  int steps_begun() const { return state_inq_.steps_begun; }
  int num_steps() const { return static_cast<int>(inq_options_.portions.size()); }
  // True after the last step: every quantized weight is frozen.
  bool finished() const { return steps_begun() == num_steps(); }
  // The options, with portions resolved (never empty).
  const InqOptions& inq_options() const { return inq_options_; }
  const InqState& inq_state() const { return state_inq_; }
  // nullptr before step 1 and for parameters that are not quantized.
  const InqParamState* inq_record(const std::string& name) const;
  // The quantized parameters (handles to the live tensors), in the groups' order.
  const std::vector<NamedParameter>& quantized() const { return quantized_; }

  std::vector<InqTensorReport> report() const;
  // Section 8 on every quantized tensor (all entries, frozen or not): empty once finished() unless a
  // weight was changed behind the optimizer's back. Throws before step 1 (there are no codebooks yet).
  std::vector<OffendingWeight> verify() const;

  // Momentum buffers ("<param>.momentum_buffer"), INQ masks ("<param>.inq_mask") and pruning masks
  // ("<param>.prune_mask", a pruned start only), sorted by name.
  NamedTensorList state_tensors() const override;
  // The INQ metadata JSON (codebooks, steps, options, generator state); see inq_state.h.
  std::string inq_metadata() const;
  // Replaces the momentum buffers and the INQ state from state_tensors() and inq_metadata() output, so
  // a run resumes mid-schedule. Strict: every problem is listed in one inq::Error and nothing changes
  // when there is any. An empty metadata string means "INQ not started": then no "<param>.inq_mask"
  // entry may be given.
  void load_state(const NamedTensorList& state, const std::string& inq_metadata);
  // load_state(state, ""): for checkpoints taken before step 1. A state with INQ masks needs its
  // metadata and throws here.
  void load_state_tensors(const NamedTensorList& state) override;
  // reset_state() (inherited) forgets the momentum buffers only; the INQ state is kept.

 protected:
  // The record's mask (1 trains, 0 frozen), or undefined (everything trains) for parameters that are
  // not quantized and before step 1.
  Tensor update_mask(const NamedParameter& p) const override;

 private:
  InqOptions inq_options_;
  std::vector<NamedParameter> quantized_;
  InqState state_inq_;
};

}  // namespace inq
