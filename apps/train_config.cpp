#include "apps/train_config.h"

#include <cmath>

#include "data/image.h"
#include "framework/error.h"
#include "framework/json_value.h"
#include "inq/codebook.h"

namespace inq {

// One list of fields keeps to_json and from_json in step.
#define INQ_TRAIN_CONFIG_FIELDS(X)                                                                       \
  X(arch) X(dataset) X(data_dir) X(epochs) X(batch_size) X(eval_batch_size) X(lr) X(momentum)            \
  X(num_classes) X(image_size) X(resize_size) X(skip_bad_images)                                         \
  X(weight_decay) X(nesterov) X(decay_norm_and_bias) X(schedule) X(step_size) X(milestones) X(gamma)     \
  X(warmup_epochs) X(seed) X(workers) X(threads) X(print_freq) X(augment) X(train_limit) X(test_limit)   \
  X(weights) X(inq_bits) X(inq_portions) X(inq_strategy) X(epochs_per_step) X(bn_batches) X(inq_exclude) \
  X(final_epochs) X(out) X(resume) X(force)

TrainRecipe recipe_for(const std::string& arch) {
  if (arch == "lenet5") return {.epochs = 5, .batch_size = 64, .lr = 0.05, .augment = false};
  return {.epochs = 15, .batch_size = 128, .lr = 0.1, .augment = true};
}

nlohmann::json to_json(const TrainConfig& c) {
  nlohmann::json j;
#define INQ_PUT(field) j[#field] = c.field;
  INQ_TRAIN_CONFIG_FIELDS(INQ_PUT)
#undef INQ_PUT
  return j;
}

TrainConfig train_config_from_json(const nlohmann::json& j) {
  INQ_CHECK(j.is_object(), "Given a training configuration, expected a JSON object, but got {}", j.type_name());
  TrainConfig c;
  size_t used = 0;
#define INQ_GET(field)                                                                       \
  if (j.contains(#field)) {                                                                  \
    c.field = json_value<decltype(c.field)>(j.at(#field), "configuration key '" #field "'"); \
    ++used;                                                                                  \
  }
  INQ_TRAIN_CONFIG_FIELDS(INQ_GET)
#undef INQ_GET
  INQ_CHECK(used == j.size(), "Given a training configuration with {} keys, expected only known keys, but {} "
            "are unknown", j.size(), j.size() - used);
  validate_train_config(c);
  return c;
}

namespace {

template <typename T>
void check_range(const char* field, T value, T lo, T hi) {
  INQ_CHECK(value >= lo && value <= hi, "Given a training configuration with {} = {}, expected a value in [{}, {}]",
            field, value, lo, hi);
}

void check_real(const char* field, double value, double lo, double hi) {
  INQ_CHECK(std::isfinite(value) && value >= lo && value <= hi,
            "Given a training configuration with {} = {}, expected a finite value in [{}, {}]", field, value, lo, hi);
}

}  // namespace

void validate_train_config(const TrainConfig& c) {
  constexpr int64_t kMaxCount = int64_t{1} << 40;  // examples, classes, images to skip
  // epochs may be 0: an INQ run with portions {1} has no re-training.
  check_range<int64_t>("epochs", c.epochs, 0, kMaxEpochs);
  check_range<int64_t>("epochs_per_step", c.epochs_per_step, 0, kMaxEpochs);
  check_range<int64_t>("bn_batches", c.bn_batches, 0, kMaxBnBatches);
  check_range<int64_t>("final_epochs", c.final_epochs, 0, kMaxEpochs);
  check_range<int64_t>("batch_size", c.batch_size, 1, kMaxBatchSize);
  check_range<int64_t>("eval_batch_size", c.eval_batch_size, 1, kMaxBatchSize);
  check_range<int64_t>("print_freq", c.print_freq, 1, kMaxCount);
  check_range<int64_t>("num_classes", c.num_classes, 0, kMaxCount);
  check_range<int64_t>("image_size", c.image_size, 1, kMaxImageSide);
  check_range<int64_t>("resize_size", c.resize_size, 1, kMaxImageSide);
  check_range<int64_t>("skip_bad_images", c.skip_bad_images, 0, kMaxCount);
  check_range<int64_t>("train_limit", c.train_limit, 0, kMaxCount);
  check_range<int64_t>("test_limit", c.test_limit, 0, kMaxCount);
  check_range<int64_t>("step_size", c.step_size, 0, kMaxEpochs);
  for (int64_t m : c.milestones) check_range<int64_t>("a milestone", m, 0, kMaxEpochs);
  check_range("workers", c.workers, 0, 64);
  check_range("threads", c.threads, 0, 1024);
  if (c.inq_bits != 0) check_range("inq_bits", c.inq_bits, 2, max_codebook_bits());
  check_real("lr", c.lr, 0.0, 1e6);
  INQ_CHECK(c.lr > 0, "Given a training configuration with lr = {}, expected a value > 0", c.lr);
  check_real("momentum", c.momentum, 0.0, 1.0);
  check_real("weight_decay", c.weight_decay, 0.0, 1e6);
  check_real("gamma", c.gamma, 0.0, 1e6);
  check_real("warmup_epochs", c.warmup_epochs, 0.0, static_cast<double>(kMaxEpochs));
  for (double p : c.inq_portions) check_real("an INQ portion", p, 0.0, 1.0);
}

}  // namespace inq
