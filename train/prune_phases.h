#pragma once
// Pruning as phases of the training loop (docs/INQ_SPEC.md section 6): a TrainerHook that, before
// the first epoch, evaluates the starting model, builds the masks (PruneSgd::start) and evaluates
// the pruned model, then lets the Trainer re-train for the run's epochs with the masks applied at
// every iteration (DNS: updated too), and writes final.safetensors, whose pruned weights are
// exactly 0. Each epoch refreshes prune_report.txt (per tensor: weights, pruned, sparsity; DNS: mu,
// sigma, c, t).
//
// Its records (the starting model's accuracy, the accuracy right after pruning) travel in the
// checkpoint's training_state; the masks and DNS's dense weights are the optimizer's state.
#include "inq/prune_sgd.h"
#include "train/trainer_hooks.h"

namespace inq {

class PrunePhases : public TrainerHook {
 public:
  PrunePhases(Trainer& trainer, PruneSgd& prune);

  void on_resume(Trainer&, const SafetensorsFile& file, const CheckpointContents& contents) override;
  void before_epoch(Trainer&) override;
  void before_forward(Trainer&, const Batch& batch) override;
  void after_backward(Trainer&) override;
  void after_step(Trainer&) override;
  void on_epoch_end(Trainer&, const EvalResult& test) override;
  void on_checkpoint(const Trainer&, CheckpointContents& contents) const override;
  void on_fit_end(Trainer&) override;
  void add_results(const Trainer&, nlohmann::json& results) const override;

 private:
  void write_report(const Trainer& t) const;

  PruneSgd& prune_;
  double acc1_pruned_ = -1;  // right after the masks were built, before re-training
};

}  // namespace inq
