#pragma once
// The training driver behind `inq train` (and, later, INQ's re-training): builds the model, data
// and optimizer from a TrainConfig, runs epochs with progress lines, evaluates, and keeps the run
// folder (config.json, summary.csv, last/best checkpoints, results.json) up to date.
#include <memory>
#include <string>

#include "apps/train_config.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "layers/module.h"
#include "optim/lr_schedule.h"
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

// `inq eval`: loads weights into the model, evaluates the test set, prints " * Acc@1 .. Acc@5 .."
// and appends a row to results_path (if not empty).
void run_eval_command(const TrainConfig& config, const std::string& weights, const std::string& results_path);

// Loads the datasets a config names (train, test).
std::shared_ptr<Dataset> load_dataset(const TrainConfig& config, bool train);

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

  TrainConfig config_;
  std::shared_ptr<Module> model_;
  std::shared_ptr<Dataset> train_set_, test_set_;
  std::unique_ptr<DataLoader> train_loader_, test_loader_;
  std::unique_ptr<Sgd> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  int64_t epoch_ = 0;      // completed epochs
  int64_t iteration_ = 0;  // completed optimizer steps
  double best_acc1_ = -1.0;
  double train_seconds_ = 0.0;
  int64_t train_images_ = 0;
};

}  // namespace inq
