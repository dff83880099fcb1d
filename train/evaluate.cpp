#include "train/evaluate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/error_context.h"
#include "framework/fileio.h"
#include "layers/batchnorm.h"
#include "layers/loss.h"
#include "train/checkpoint.h"
#include "train/inference_model.h"
#include "train/run_setup.h"

namespace inq {

void EvalResult::recompute_fractions() {
  INQ_CHECK(count > 0, "Given an evaluation set, expected at least one example, but it is empty");
  loss = loss_sum / static_cast<double>(count);
  acc1 = static_cast<double>(correct1) / static_cast<double>(count);
  acc5 = static_cast<double>(correct5) / static_cast<double>(count);
}

EvalResult evaluate(Module& model, DataLoader& loader) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  loader.start_epoch(0);
  Batch batch;
  while (loader.next(batch)) {
    Tensor logits = model.forward(batch.images);
    const int64_t n = static_cast<int64_t>(batch.labels.size());
    r.loss_sum += static_cast<double>(cross_entropy(logits, batch.labels).item()) * n;
    r.correct1 += count_correct_topk(logits, batch.labels, 1);
    r.correct5 += count_correct_topk(logits, batch.labels, static_cast<int>(std::min<int64_t>(5, logits.size(1))));
    r.count += n;
  }
  model.train(was_training);
  r.recompute_fractions();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

int64_t reestimate_batchnorm(Module& model, DataLoader& loader, int64_t epoch, int64_t max_batches) {
  std::vector<BatchNorm2d*> layers;
  for (BatchNorm2d* bn : batchnorm_layers(model))
    if (bn->options().track_running_stats) layers.push_back(bn);
  const int64_t batches = std::min(max_batches, loader.batches_per_epoch());
  if (layers.empty() || batches <= 0) return 0;
  const bool was_training = model.is_training();
  model.eval();
  for (BatchNorm2d* bn : layers) {
    bn->reset_running_stats();
    bn->set_cumulative_average(true);
    bn->train();
  }
  NoGradGuard no_grad;
  loader.start_epoch(epoch);
  Batch batch;
  int64_t used = 0;
  while (used < batches && loader.next(batch)) {
    model.forward(batch.images);
    ++used;
  }
  for (BatchNorm2d* bn : layers) bn->set_cumulative_average(false);
  model.train(was_training);
  return used;
}

EvalResult evaluate_weights(const TrainConfig& config, const std::string& weights, bool allow_non_finite) {
  ChannelStats stats;
  auto test_set = load_dataset(config.data, /*train=*/false, &stats);
  check_dataset_input_size(config.run.arch, config.data, *test_set);
  std::shared_ptr<Module> model;
  try {
    // A packed model runs from its codes (train/inference_model.h).
    model = load_inference_model(config.run.arch, inference_options(model_options_for(config.data, *test_set)),
                                 weights, {.allow_non_finite = allow_non_finite, .arch = config.run.arch})
                .model;
  } catch (const Error& e) {
    throw with_file_context(e, "--weights", weights);
  }
  fmt::print(stderr, "=> evaluating {} on {} ({} images, {} classes)\n", config.run.arch, config.data.dataset,
             test_set->size(), test_set->num_classes());
  auto loader = make_loader(*test_set, config, /*train=*/false, dataset_transforms(config.data, false, stats));
  return evaluate(*model, *loader);
}

void append_eval_row(const std::string& path, const TrainConfig& config, const std::string& weights,
                     const EvalResult& r) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  // Several evaluations may append to one file at once: the header and the row go in under its lock.
  append_line_locked(path,
                     fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f},{:.2f}", config.run.arch, weights,
                                 config.data.dataset, r.count, r.acc1, r.acc5, r.loss, r.seconds),
                     "arch,weights,dataset,count,acc1,acc5,loss,seconds");
}

}  // namespace inq
