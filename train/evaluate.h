#pragma once
// Evaluation of a model on a data loader, the BatchNorm re-estimation INQ runs after its last
// step, and `inq eval`'s evaluation of a weights file.
#include <cstdint>
#include <string>

#include "data/dataloader.h"
#include "layers/module.h"
#include "train/train_config.h"

namespace inq {

struct EvalResult {
  double loss = 0.0;
  double acc1 = 0.0;  // fractions in [0, 1]
  double acc5 = 0.0;
  int64_t count = 0;
  double seconds = 0.0;
  // The sums the fractions come from: what a reduction across processes adds up before calling
  // recompute_fractions().
  int64_t correct1 = 0, correct5 = 0;
  double loss_sum = 0.0;
  // loss, acc1 and acc5 from the sums; throws when count is 0.
  void recompute_fractions();
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

// `inq eval`: builds config.run.arch for the test split config.data names, loads `weights` into it
// and evaluates every test example (for imagefolder: every image of the validation folder).
// Weights with NaN or Inf are refused unless allow_non_finite (--allow-non-finite), and a packed
// model must be of config.run.arch (train/checkpoint.h load_model_weights).
EvalResult evaluate_weights(const TrainConfig& config, const std::string& weights, bool allow_non_finite = false);

// Appends `result` as a row of the CSV file `path` (created with its header when missing).
void append_eval_row(const std::string& path, const TrainConfig& config, const std::string& weights,
                     const EvalResult& result);

}  // namespace inq
