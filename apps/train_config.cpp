#include "apps/train_config.h"

#include "apps/json_value.h"
#include "framework/error.h"

namespace inq {

// One list of fields keeps to_json and from_json in step.
#define INQ_TRAIN_CONFIG_FIELDS(X)                                                                     \
  X(arch) X(dataset) X(data_dir) X(epochs) X(batch_size) X(eval_batch_size) X(lr) X(momentum)          \
  X(num_classes) X(image_size) X(resize_size) X(skip_bad_images)                                       \
  X(weight_decay) X(nesterov) X(decay_norm_and_bias) X(schedule) X(step_size) X(milestones) X(gamma)   \
  X(warmup_epochs) X(seed) X(workers) X(threads) X(print_freq) X(augment) X(train_limit) X(test_limit) \
  X(weights) X(inq_bits) X(inq_portions) X(inq_strategy) X(epochs_per_step) X(inq_exclude) X(out) X(resume) X(force)

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
  return c;
}

}  // namespace inq
