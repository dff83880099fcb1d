#include "train/train_config.h"

#include <set>

#include "framework/config_fields.h"
#include "framework/error.h"

namespace inq {

void RunConfig::validate() const {
  // epochs may be 0: an INQ run with portions {1} has no re-training.
  check_config_range<int64_t>("epochs", epochs, 0, kMaxEpochs);
  check_config_range<int64_t>("print_freq", print_freq, 1, kMaxConfigCount);
  check_config_range("threads", threads, 0, 1024);
}

TrainRecipe recipe_for(const std::string& arch) {
  if (arch == "lenet5") return {.epochs = 5, .batch_size = 64, .lr = 0.05, .augment = false};
  // Caffe's LeNet: lenet5's recipe with more epochs for its 431K weights and one epoch of linear
  // warm-up. Without BatchNorm, lr 0.05 from the first step is at the edge of stability: seed 1
  // diverged to a NaN loss in epoch 2 once the kernels' rounding changed (2026-12-03). With the
  // warm-up it trains to 91.80 (lr 0.03 without one also did, but its weights' narrower spread
  // left DNS pruning less: results/prune-lenet5-caffe-seeds/README.md).
  if (arch == "lenet5-caffe")
    return {.epochs = 10, .batch_size = 64, .lr = 0.05, .augment = false, .warmup_epochs = 1.0};
  return {.epochs = 15, .batch_size = 128, .lr = 0.1, .augment = true};
}

nlohmann::json to_json(const TrainConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  write_config_fields(c.run, j);
  write_config_fields(c.data, j);
  write_config_fields(c.optim, j);
  write_config_fields(c.schedule, j);
  write_config_fields(c.inq, j);
  // Only a pruning run has pruning keys, so every other run's config.json stays as it was.
  if (c.prune.enabled()) write_config_fields(c.prune, j);
  return j;
}

TrainConfig train_config_from_json(const nlohmann::json& j) {
  INQ_CHECK(j.is_object(), "Given a training configuration, expected a JSON object, but got {}", j.type_name());
  TrainConfig c;
  std::set<std::string> used;
  read_config_fields(c.run, j, used);
  read_config_fields(c.data, j, used);
  read_config_fields(c.optim, j, used);
  read_config_fields(c.schedule, j, used);
  read_config_fields(c.inq, j, used);
  read_config_fields(c.prune, j, used);
  std::vector<std::string> unknown;
  for (const auto& item : j.items())
    if (!used.count(item.key())) unknown.push_back(item.key());
  INQ_CHECK(unknown.empty(), "Given a training configuration with {} keys, expected only known keys, but {} are "
            "unknown: {}", j.size(), unknown.size(), fmt::join(unknown, ", "));
  validate_train_config(c);
  return c;
}

void validate_train_config(const TrainConfig& c) {
  c.run.validate();
  c.data.validate();
  c.optim.validate();
  c.schedule.validate();
  c.inq.validate();
  c.prune.validate();
  // (D) A run prunes or quantizes, not both at once: INQ starts from a pruned checkpoint instead.
  INQ_CHECK(!(c.inq.enabled() && c.prune.enabled()), "Given a configuration with inq_bits = {} and prune_method "
            "'{}', expected one of them: prune first (inq prune), then quantize the pruned checkpoint", c.inq.bits,
            c.prune.method);
}

}  // namespace inq
