#pragma once
// SGD for a pruning run (docs/INQ_SPEC.md section 6): Sgd plus the pruning state (inq/prune.h), kept
// with the optimizer like INQ's (docs/DESIGN.md "State stays with its owner") and saved with the
// momentum buffers. The training loop drives it through train/prune_phases.h:
//
//   start()                   once, on the pre-trained weights: the masks (DNS: thresholds, first mask)
//   per iteration i >= 1:
//     before_forward(i)       DNS: maybe update the masks; the parameters hold w * T
//     forward, backward       the gradient is computed for the masked weights
//     after_backward()        DNS: the parameters hold the dense w again
//     step()                  DNS: every entry of w updated; magnitude: pruned entries frozen (below)
//     after_step()            DNS: keep the new w, the parameters hold w * T again
//
// Magnitude pruning's mask is fixed, so it is this optimizer's update mask (the hook of
// docs/DESIGN.md habit 9, as InqSgd's): a pruned weight gets no gradient, no weight decay and no
// momentum and is never written, so it stays exactly 0 through re-training.
#include <string>
#include <vector>

#include "inq/prune.h"
#include "optim/sgd.h"

namespace inq {

class PruneSgd : public Sgd {
 public:
  // The pruned tensors are select_quantized(every parameter, options.exclude): the weights INQ
  // would quantize, never biases or BatchNorm parameters.
  PruneSgd(std::vector<ParamGroup> groups, const SgdOptions& sgd, const PruneOptions& options);

  void start();
  bool started() const { return state_prune_.started; }
  // DNS at iteration `iteration` (the run's optimizer-step count): the mask update (returns the
  // number of tensors updated), then w * T into the parameters. Magnitude: nothing.
  int before_forward(int64_t iteration);
  void after_backward();
  void after_step();

  const PruneOptions& prune_options() const { return options_; }
  const PruneState& prune_state() const { return state_prune_; }
  const std::vector<NamedParameter>& pruned_params() const { return pruned_; }

  // Momentum buffers, "<param>.prune_mask" and (DNS) "<param>.dns_weight", sorted by name.
  NamedTensorList state_tensors() const override;
  std::string prune_metadata() const;
  // Replaces the momentum buffers and the pruning state from state_tensors() and prune_metadata()
  // output (strict, all or nothing; see load_prune_state).
  void load_state(const NamedTensorList& state, const std::string& prune_metadata);
  // Refused: a pruning run's state needs its metadata (load_state).
  void load_state_tensors(const NamedTensorList& state) override;

 protected:
  Tensor update_mask(const NamedParameter& p) const override;

 private:
  PruneOptions options_;
  std::vector<NamedParameter> pruned_;
  PruneState state_prune_;
};

}  // namespace inq
