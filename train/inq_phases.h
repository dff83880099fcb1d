#pragma once
// INQ as phases of the training loop (docs/INQ_SPEC.md): a TrainerHook that, for each accumulated
// portion, partitions, quantizes and freezes weights (InqSgd::begin_step), evaluates, and lets the
// Trainer re-train the rest for epochs_per_step epochs with the learning-rate schedule restarted,
// except after the last step. After the last step no quantized weight changes: optionally
// final_epochs re-train the float parameters alone (BatchNorm, biases), then BatchNorm's running
// statistics are re-estimated for the final weights over bn_batches training batches, every
// quantized weight is verified and final.safetensors is written.
//
// Its records live in the Trainer's progress (fp32_acc1: the starting model's accuracy;
// inq_steps: per step the portion and the accuracy after quantizing and after re-training), so
// they travel in checkpoints and into results.json unchanged.
#include <memory>

#include "inq/inq_sgd.h"
#include "optim/lr_schedule.h"
#include "train/trainer_hooks.h"

namespace inq {

class InqPhases : public TrainerHook {
 public:
  // Sets the run's length (epochs_per_step x (steps - 1) + final_epochs) and its schedules.
  InqPhases(Trainer& trainer, InqSgd& inq);

  void on_resume(Trainer&, const SafetensorsFile& file, const CheckpointContents& contents) override;
  void on_fit_begin(Trainer&) override;
  void before_epoch(Trainer&) override;
  void on_epoch_end(Trainer&, const EvalResult& test) override;
  void on_checkpoint(const Trainer&, CheckpointContents& contents) const override;
  void on_fit_end(Trainer&) override;
  void add_results(const Trainer&, nlohmann::json& results) const override;

 private:
  void begin_step(Trainer& t);
  void reestimate_final_batchnorm(Trainer& t);
  // The schedule of the current phase: a step's re-training, or the float-only phase after the last step.
  const LrSchedule* current_schedule() const;

  InqSgd& inq_;
  std::unique_ptr<LrSchedule> step_schedule_;   // restarts at every step
  std::unique_ptr<LrSchedule> final_schedule_;  // final_epochs > 0: the phase after the last step
};

}  // namespace inq
