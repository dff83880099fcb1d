#pragma once
// The training driver behind `inq train` and `inq quantize`: builds the model, data and optimizer
// from a TrainConfig, runs epochs with progress lines, evaluates, and keeps the run folder
// (config.json, summary.csv, last/best checkpoints, results.json) up to date.
// With config.inq_bits > 0 the run is an INQ schedule (INQ_SPEC.md): for each accumulated portion
// it partitions, quantizes and freezes weights (InqSgd::begin_step), evaluates, and re-trains the
// rest for epochs_per_step epochs with the LR schedule restarted, except after the last step.
// After the last step no quantized weight changes: optionally config.final_epochs re-train the
// float parameters alone (BatchNorm, biases), then the BatchNorm running statistics are
// re-estimated for the final weights over config.bn_batches training batches
// (see reestimate_final_batchnorm).
#include <memory>
#include <string>

#include "apps/datasets.h"
#include "apps/train_config.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/fashion_mnist.h"
#include "layers/module.h"
#include "optim/lr_schedule.h"
#include "inq/inq_sgd.h"
#include "optim/sgd.h"

namespace inq {

struct EvalResult {
  double loss = 0.0;
  double acc1 = 0.0;  // fractions in [0, 1]
  double acc5 = 0.0;
  int64_t count = 0;
  double seconds = 0.0;
};

// Eval-mode pass over the loader's whole epoch 0, without recording a graph.
EvalResult evaluate(Module& model, DataLoader& loader);

// Re-estimates the running statistics of every BatchNorm layer of `model` for its current weights
// from the first min(max_batches, batches per epoch) batches of the loader's epoch `epoch`: each
// layer's statistics are reset and become the plain average of the batch statistics
// (BatchNorm2d::set_cumulative_average). Only the BatchNorm layers run in training mode (dropout
// stays off), no graph is recorded and no parameter changes. Returns the number of batches used:
// 0 when the model has no BatchNorm with running statistics or max_batches is 0.
int64_t reestimate_batchnorm(Module& model, DataLoader& loader, int64_t epoch, int64_t max_batches);

// `inq eval`: loads weights into the model, evaluates the test set (for imagefolder: every image
// of the validation folder), prints " * Acc@1 .. Acc@5 .." and appends a row to results_path (if
// not empty).
void run_eval_command(const TrainConfig& config, const std::string& weights, const std::string& results_path);

class Trainer {
 public:
  // Builds everything; when config.resume is set, restores model, optimizer, counters and random
  // state from that checkpoint so the run continues bit for bit.
  explicit Trainer(TrainConfig config);
  // Runs the remaining epochs, or stops once `stop_after_epoch` epochs are complete (>= 0; this
  // simulates an interrupted run in tests); returns the evaluation of the model it stops with.
  EvalResult fit(int64_t stop_after_epoch = -1);

  Module& model() { return *model_; }
  const TrainConfig& config() const { return config_; }
  int64_t epoch() const { return epoch_; }
  int64_t iteration() const { return iteration_; }
  // Saves a checkpoint of the current state to `path` (atomically).
  void save_checkpoint(const std::string& path) const;

 private:
  void train_one_epoch();
  void load_checkpoint(const std::string& path);
  void run_inq_schedule(int64_t stop_after_epoch);
  void begin_inq_step();
  void reestimate_final_batchnorm();
  void append_summary_row(const std::string& phase, const std::string& train_fields, const EvalResult& test);
  void write_results(const EvalResult& test) const;

  TrainConfig config_;
  std::shared_ptr<Module> model_;
  std::shared_ptr<Dataset> train_set_, test_set_;
  std::unique_ptr<DataLoader> train_loader_, test_loader_;
  std::unique_ptr<Sgd> optimizer_;
  InqSgd* inq_ = nullptr;  // optimizer_ itself when the run is INQ
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<LrSchedule> final_schedule_;  // INQ with final_epochs > 0: after the last step
  int64_t epoch_ = 0;      // completed epochs
  int64_t iteration_ = 0;  // completed optimizer steps
  double best_acc1_ = -1.0;
  double train_seconds_ = 0.0;
  int64_t train_images_ = 0;
  int64_t phase_start_iteration_ = 0;  // the LR schedule counts from here (restarts at each INQ step)
  EvalResult last_test_;
  // INQ: the starting model's accuracy and, per step, portion and accuracy after quantizing and
  // after re-training (JSON so it travels in checkpoints and into results.json unchanged).
  double fp32_acc1_ = -1.0;
  nlohmann::json inq_steps_ = nlohmann::json::array();
};

}  // namespace inq
