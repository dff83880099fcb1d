#pragma once
// The resolved configuration of a training run: every flag of `inq train` / `inq quantize` after
// defaults are applied, as typed sections that each own their fields, JSON keys and validation:
//   run       (below)                what to train, for how long, from what, into which folder
//   data      data/data_config.h     dataset, batching, augmentation
//   optim     optim/optim_config.h   SGD
//   schedule  optim/optim_config.h   learning-rate schedule
//   inq       inq/inq_config.h       the INQ schedule (inq.bits > 0 makes the run an INQ run)
//   prune     inq/prune_config.h     pruning (a method makes the run a pruning run; its keys are
//                                    written only then)
// It is written to the run folder as config.json and stored in every checkpoint, as one flat JSON
// object holding every section's keys (the layout checkpoints have always had).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "data/data_config.h"
#include "inq/inq_config.h"
#include "inq/prune_config.h"
#include "optim/optim_config.h"

namespace inq {

struct RunConfig {
  std::string arch = "lenet5";
  int64_t epochs = 5;         // INQ runs: derived from the INQ section (Trainer)
  uint64_t seed = 1;
  int threads = 0;            // compute threads (OpenMP + OpenBLAS); 0 = all cores
  int64_t print_freq = 100;   // batches between progress lines
  std::string weights;        // initial weights (checkpoint or weights file); empty = fresh init
  std::string out;            // run folder
  std::string resume;         // checkpoint to resume from
  bool force = false;         // allow reusing a non-empty run folder
  bool sync_bn = false;       // data-parallel runs: BatchNorm batch statistics over every rank (docs/DISTRIBUTED.md)

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& v) {
    v("arch", s.arch), v("epochs", s.epochs), v("seed", s.seed), v("threads", s.threads);
    v("print_freq", s.print_freq), v("weights", s.weights), v("out", s.out), v("resume", s.resume);
    v("force", s.force), v("sync_bn", s.sync_bn);
  }
  void validate() const;
};

struct TrainConfig {
  RunConfig run;
  DataConfig data;
  OptimizerConfig optim;
  ScheduleConfig schedule;
  InqConfig inq;
  PruneConfig prune;
};

// The recipe an architecture trains with when the user does not say otherwise: epochs, batch
// size, learning rate and augmentation. lenet5 (the quick demo): 5 epochs, batch 64, lr 0.05, no
// augmentation (measured: 90.1% after 5 epochs; with crop+flip it under-fits, 88.2%). lenet5-caffe:
// the same for 10 epochs. resnet20:
// docs/REPRODUCTION.md section 1 (15 epochs, batch 128, lr 0.1 cosine, crop+flip).
struct TrainRecipe {
  int64_t epochs;
  int64_t batch_size;
  double lr;
  bool augment;
  double warmup_epochs = 0.0;  // linear warm-up of the recipe's lr (train and the FP32 runs of reproduce)
};
TrainRecipe recipe_for(const std::string& arch);

nlohmann::json to_json(const TrainConfig& c);
// Reads a config written by to_json; unknown keys and out-of-range values are errors (missing keys
// keep their defaults).
TrainConfig train_config_from_json(const nlohmann::json& j);

// Throws inq::Error naming the first field outside its range (each section's validate()).
void validate_train_config(const TrainConfig& c);

}  // namespace inq
