#pragma once
// The seams of the training loop (train/trainer.h). A hook sees the Trainer at fixed points of a
// run and may act there, so that a feature such as INQ's phases (train/inq_phases.h), pruning
// masks, a gradient all-reduce across processes or rank-0-only writing plugs in without editing
// the loop. The loop, per run:
//
//   on_resume (when resuming)                        restore the hook's state from the checkpoint
//   on_fit_begin
//   repeat: before_epoch                             (may begin a new phase; also after the last epoch)
//           per batch: before_forward                (this rank's batch; nothing computed yet)
//                      forward, loss, backward
//                      after_backward                (gradients complete, optimizer not stepped)
//                      optimizer step
//                      after_step
//           before_evaluate -> evaluation -> on_evaluate   (every evaluation the Trainer runs)
//           on_epoch_end, then the checkpoint -> on_checkpoint
//   on_fit_end                                       (only when the run trained its last epoch)
//
// Every method has an empty default; hooks run in the order they were added.
#include <nlohmann/json.hpp>

namespace inq {

class Communicator;
class Trainer;
struct Batch;
struct CheckpointContents;
struct EvalResult;
struct SafetensorsFile;

class TrainerHook {
 public:
  virtual ~TrainerHook() = default;

  // The run resumes from `file`: the model and the optimizer's own state are restored; restore
  // this hook's part. The Trainer's progress (epoch, iteration, records) is read right after, so
  // it is not available yet (use on_fit_begin).
  virtual void on_resume(Trainer&, const SafetensorsFile& file, const CheckpointContents& contents) {}
  virtual void on_fit_begin(Trainer&) {}
  // Before the Trainer trains an epoch, and once more when every epoch is done.
  virtual void before_epoch(Trainer&) {}
  // A training batch (this process's share of it) is about to go through forward and backward.
  virtual void before_forward(Trainer&, const Batch& batch) {}
  // loss.backward() has run: every gradient of the batch is complete.
  virtual void after_backward(Trainer&) {}
  // The optimizer has stepped.
  virtual void after_step(Trainer&) {}
  // An evaluation of the model is about to run.
  virtual void before_evaluate(Trainer&) {}
  // An evaluation of the model has run over this process's share of the data.
  virtual void on_evaluate(Trainer&, EvalResult& result) {}
  // An epoch is trained, evaluated and in summary.csv; its checkpoint comes next.
  virtual void on_epoch_end(Trainer&, const EvalResult& test) {}
  // A checkpoint is being written: add this hook's state to it.
  virtual void on_checkpoint(const Trainer&, CheckpointContents& contents) const {}
  // The run has trained its last epoch.
  virtual void on_fit_end(Trainer&) {}
  // results.json is being written: add this hook's part.
  virtual void add_results(const Trainer&, nlohmann::json& results) const {}
  // Whether this process writes the run folder (config.json, summary.csv, results.json,
  // checkpoints, reports): with several processes only one may. All hooks must agree to write.
  virtual bool writes_run_folder() const { return true; }
  // The processes this run is spread over (train/distributed.h), or nullptr: one process. The
  // Trainer asks its hooks once, when it is built, and shards its data over the first answer.
  virtual Communicator* communicator() const { return nullptr; }
};

}  // namespace inq
