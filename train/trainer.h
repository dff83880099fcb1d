#pragma once
// The training driver behind `inq train` and `inq quantize`: builds the model, data and optimizer
// from a TrainConfig, runs epochs with progress lines, evaluates, and keeps the run folder
// (config.json, summary.csv, last/best checkpoints, results.json) up to date. Features that act at
// fixed points of the loop plug in as hooks (train/trainer_hooks.h); an INQ run (config.inq.bits >
// 0) is the loop plus the InqPhases hook (train/inq_phases.h).
#include <memory>
#include <string>
#include <vector>

#include "data/dataloader.h"
#include "data/dataset.h"
#include "framework/communicator.h"
#include "framework/file_lock.h"
#include "layers/module.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/train_config.h"
#include "train/trainer_hooks.h"

namespace inq {

class Trainer {
 public:
  // Builds everything; when config.run.resume is set, restores model, optimizer, counters, random
  // state and every hook's state from that checkpoint so the run continues bit for bit. `hooks`
  // run after the Trainer's own (INQ's, for an INQ run).
  explicit Trainer(TrainConfig config, std::vector<std::unique_ptr<TrainerHook>> hooks = {});
  ~Trainer();
  // Runs the remaining epochs, or stops once `stop_after_epoch` epochs are complete (>= 0; this
  // simulates an interrupted run in tests); returns the evaluation of the model it stops with.
  EvalResult fit(int64_t stop_after_epoch = -1);

  Module& model() { return *model_; }
  const TrainConfig& config() const { return config_; }
  int64_t epoch() const { return progress_.epoch; }
  int64_t iteration() const { return progress_.iteration; }
  Sgd& optimizer() { return *optimizer_; }
  DataLoader& train_loader() { return *train_loader_; }
  // The run's counters and records as checkpoints store them; hooks keep their records here too.
  TrainingProgress& progress() { return progress_; }
  const TrainingProgress& progress() const { return progress_; }

  // --- for hooks -------------------------------------------------------------------------------
  // Evaluates the model on the test set (hooks see the result) and remembers it as the latest.
  EvalResult evaluate_test();
  const EvalResult& last_test() const { return last_test_; }
  // The learning-rate schedule of the current phase; iterations count from the phase's start.
  // `restart` begins a new phase at the current iteration; without it (on resume) the phase's
  // start comes from the progress record.
  void set_lr_schedule(const LrSchedule* schedule, bool restart);
  // How summary.csv labels the rows of training epochs: the phase ("train") and step ("fp32").
  void set_summary_labels(std::string train_phase, std::string step);
  // Whether an epoch that improves the best accuracy writes best.safetensors (default true).
  void set_keep_best(bool keep) { keep_best_ = keep; }
  // Appends a row to summary.csv: phase, the training fields (5 CSV fields, may be empty) and a test result.
  void append_summary_row(const std::string& phase, const std::string& train_fields, const EvalResult& test);
  // Writes results.json for the latest test result (with every hook's part).
  void write_results() const;
  // Saves a checkpoint of the current state to `path` (atomically; with every hook's part).
  void save_checkpoint(const std::string& path) const;
  // `name` inside the run folder.
  std::string run_file(const std::string& name) const { return config_.run.out + "/" + name; }
  // Whether this process writes the run folder (every hook agrees).
  bool writes_run_folder() const;
  // Whether this process prints progress: rank 0 of a data-parallel run, or the only process.
  bool reports() const { return comm_->rank() == 0; }
  // The processes the run is spread over (a hook's communicator(), or this process alone).
  Communicator& communicator() const { return *comm_; }
  // Sets config.run.epochs: a hook that decides the run's length (INQ) does so while it is built.
  void set_total_epochs(int64_t epochs) { config_.run.epochs = epochs; }
  // Adds a hook; only from a hook's constructor or before fit().
  void add_hook(std::unique_ptr<TrainerHook> hook) { hooks_.push_back(std::move(hook)); }

 private:
  void train_one_epoch();
  void resume_from(const std::string& path);
  // The run folder protocol (docs/FORMATS_AND_RELIABILITY.md "Run folder protocol"): locks the folder,
  // removes temporary files of writers that died, and decides whether it is new.
  void claim_run_folder();
  // Refuses a checkpoint whose epoch, iteration and momentum buffers disagree (resume_from).
  void check_resumed_position(const CheckpointContents& c, const SafetensorsFile& file, const std::string& path) const;
  // Drops the summary.csv rows the resumed checkpoint does not cover (written before a checkpoint
  // that never made it to disk), so the resumed run does not write them twice.
  void truncate_summary_to_checkpoint(int inq_steps_begun);

  TrainConfig config_;
  SingleProcessCommunicator single_process_;
  Communicator* comm_ = &single_process_;
  std::unique_ptr<RunFolderLock> run_lock_;  // held from the start of the constructor to the end of the run
  std::shared_ptr<Module> model_;
  std::shared_ptr<Dataset> train_set_, test_set_;
  std::unique_ptr<Dataset> test_shard_;  // this rank's part of the test set (data-parallel runs)
  std::unique_ptr<DataLoader> train_loader_, test_loader_;
  std::unique_ptr<Sgd> optimizer_;
  std::vector<std::unique_ptr<TrainerHook>> hooks_;
  std::unique_ptr<LrSchedule> default_schedule_;  // a plain run's: one phase over every epoch
  const LrSchedule* lr_schedule_ = nullptr;
  TrainingProgress progress_;
  std::string train_phase_ = "train", summary_step_ = "fp32";
  bool keep_best_ = true;
  EvalResult last_test_;
};

}  // namespace inq
