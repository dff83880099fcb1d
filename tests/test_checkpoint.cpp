// Checkpoint metadata readers (train/checkpoint.h, train/train_config.h, framework/json_value.h) on hostile
// values: numbers that do not fit their field, wrong JSON types, and training states that do not
// match the run. Several of these were undefined behaviour (a float cast to an integer) found by
// tests/fuzz (fuzz_checkpoint); the inputs are in tests/fuzz/corpus/checkpoint/regression-*.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "framework/config_fields.h"
#include "train/checkpoint.h"
#include "framework/json_value.h"
#include "train/train_config.h"
#include "error_testing.h"
#include "framework/error.h"

using namespace inq;
using json = nlohmann::json;

namespace {

using test::expect_error;

// A valid config JSON with one key replaced.
json config_with(const std::string& key, const json& value) {
  json j = to_json(TrainConfig{});
  j[key] = value;
  return j;
}

CheckpointContents contents_with_progress(const json& training_state) {
  CheckpointContents c;
  c.training_state = training_state;
  return c;
}

json valid_progress(int inq_rows) {
  TrainingProgress p{.epoch = 3, .iteration = 30, .best_acc1 = 0.5, .generator = "g", .phase_start_iteration = 10};
  for (int k = 1; k <= inq_rows; ++k) p.inq_steps.push_back({{"step", k}});
  return to_json(p);
}

}  // namespace

TEST(JsonValue, IntegersMustBeIntegersThatFit) {
  EXPECT_EQ(json_value<int64_t>(json(-5), "x"), -5);
  EXPECT_EQ(json_value<int64_t>(json(INT64_MAX), "x"), INT64_MAX);
  EXPECT_EQ(json_value<uint64_t>(json(UINT64_MAX), "x"), UINT64_MAX);
  EXPECT_EQ(json_value<int>(json(INT32_MIN), "x"), INT32_MIN);
  expect_error([] { json_value<int64_t>(json::parse("1.9e21"), "the key"); }, {"the key", "expected an integer", "1.9"});
  expect_error([] { json_value<int64_t>(json(2.5), "x"); }, {"expected an integer"});
  expect_error([] { json_value<int64_t>(json(UINT64_MAX), "x"); }, {"18446744073709551615"});
  expect_error([] { json_value<uint64_t>(json(-1), "x"); }, {"[0, 18446744073709551615]", "-1"});
  expect_error([] { json_value<int>(json(int64_t{1} << 31), "x"); }, {"2147483648"});
  expect_error([] { json_value<int>(json("7"), "x"); }, {"\"7\""});
}

TEST(JsonValue, OtherTypesMustMatch) {
  EXPECT_EQ(json_value<double>(json(3), "x"), 3.0);  // an integer is a number
  EXPECT_EQ(json_value<double>(json(0.25), "x"), 0.25);
  EXPECT_EQ(json_value<std::string>(json("s"), "x"), "s");
  EXPECT_EQ(json_value<std::vector<int64_t>>(json::parse("[1, 2]"), "x"), (std::vector<int64_t>{1, 2}));
  expect_error([] { json_value<bool>(json(1), "x"); }, {"true or false"});
  expect_error([] { json_value<double>(json("1"), "x"); }, {"expected a number"});
  expect_error([] { json_value<std::string>(json(nullptr), "x"); }, {"expected a string", "null"});
  expect_error([] { json_value<std::vector<int64_t>>(json::parse("[1, 1e30]"), "milestones"); },
               {"milestones [1]", "expected an integer"});
  expect_error([] { json_value<std::vector<int64_t>>(json(1), "x"); }, {"expected an array"});
}

TEST(TrainConfigJson, RoundTripsAndRejectsValuesThatDoNotFitTheirField) {
  TrainConfig c;
  c.schedule.kind = "multistep";
  c.schedule.milestones = {3, 5};
  c.inq.portions = {0.5, 1};
  EXPECT_EQ(to_json(train_config_from_json(to_json(c))), to_json(c));
  // The fuzzer's input: a batch size beyond 64 bits, which JSON readers hold as a float.
  expect_error([] { train_config_from_json(config_with("batch_size", json::parse("1922337203685477580828"))); },
               {"configuration key 'batch_size'", "expected an integer"});
  expect_error([] { train_config_from_json(config_with("epochs", 2.5)); }, {"'epochs'"});
  expect_error([] { train_config_from_json(config_with("inq_bits", int64_t{1} << 32)); }, {"'inq_bits'"});
  expect_error([] { train_config_from_json(config_with("seed", -1)); }, {"'seed'"});
  expect_error([] { train_config_from_json(config_with("augment", 1)); }, {"'augment'", "true or false"});
  expect_error([] { train_config_from_json(config_with("milestones", json::parse("[2, 1e300]"))); },
               {"'milestones' [1]"});
  EXPECT_EQ(train_config_from_json(config_with("lr", 1)).optim.lr, 1.0);
}

// Values that fit their C++ type but not the run: a crafted --resume checkpoint with these used to
// reach the trainer, where epochs x batches per epoch overflowed int64.
TEST(TrainConfigJson, RejectsValuesOutsideTheirRange) {
  expect_error([] { train_config_from_json(config_with("epochs", int64_t{1} << 62)); },
               {"epochs = 4611686018427387904", "[0, 1000000]"});
  expect_error([] { train_config_from_json(config_with("epochs", -1)); }, {"epochs = -1"});
  expect_error([] { train_config_from_json(config_with("batch_size", 0)); }, {"batch_size = 0"});
  expect_error([] { train_config_from_json(config_with("eval_batch_size", int64_t{1} << 40)); }, {"eval_batch_size"});
  expect_error([] { train_config_from_json(config_with("step_size", int64_t{1} << 50)); }, {"step_size"});
  expect_error([] { train_config_from_json(config_with("milestones", json::parse("[2, 4611686018427387904]"))); },
               {"a milestone = 4611686018427387904"});
  expect_error([] { train_config_from_json(config_with("print_freq", 0)); }, {"print_freq = 0"});
  expect_error([] { train_config_from_json(config_with("workers", 1000)); }, {"workers = 1000"});
  expect_error([] { train_config_from_json(config_with("threads", -2)); }, {"threads = -2"});
  expect_error([] { train_config_from_json(config_with("image_size", 0)); }, {"image_size = 0"});
  expect_error([] { train_config_from_json(config_with("train_limit", -5)); }, {"train_limit = -5"});
  expect_error([] { train_config_from_json(config_with("bn_batches", -1)); }, {"bn_batches = -1"});
  expect_error([] { train_config_from_json(config_with("inq_bits", 1)); }, {"inq_bits = 1"});
  expect_error([] { train_config_from_json(config_with("inq_bits", 200)); }, {"inq_bits = 200"});
  expect_error([] { train_config_from_json(config_with("lr", 0)); }, {"lr = 0"});
  expect_error([] { train_config_from_json(config_with("lr", -0.1)); }, {"lr = -0.1"});
  expect_error([] { train_config_from_json(config_with("momentum", 1.5)); }, {"momentum = 1.5"});
  expect_error([] { train_config_from_json(config_with("weight_decay", 1e300)); }, {"weight_decay"});
  expect_error([] { train_config_from_json(config_with("warmup_epochs", -1)); }, {"warmup_epochs = -1"});
  expect_error([] { train_config_from_json(config_with("inq_portions", json::parse("[0.5, 2]"))); },
               {"an INQ portion = 2"});
  // The bounds themselves are allowed; so are 0 epochs (an INQ run whose only portion is 1).
  EXPECT_EQ(train_config_from_json(config_with("epochs", kMaxEpochs)).run.epochs, kMaxEpochs);
  EXPECT_EQ(train_config_from_json(config_with("epochs", 0)).run.epochs, 0);
  EXPECT_EQ(train_config_from_json(config_with("batch_size", kMaxBatchSize)).data.batch_size, kMaxBatchSize);
  EXPECT_EQ(train_config_from_json(config_with("inq_bits", 2)).inq.bits, 2);
  EXPECT_EQ(train_config_from_json(config_with("momentum", 1.0)).optim.momentum, 1.0);
}

TEST(TrainingProgressJson, RoundTripsAndRejectsBadValues) {
  const TrainingProgress p = read_training_progress(contents_with_progress(valid_progress(2)), "ck", 2);
  EXPECT_EQ(p.epoch, 3);
  EXPECT_EQ(p.iteration, 30);
  EXPECT_EQ(p.phase_start_iteration, 10);
  EXPECT_EQ(to_json(p), valid_progress(2));

  auto with = [](const std::string& key, const json& value) {
    json j = valid_progress(0);
    j[key] = value;
    return contents_with_progress(j);
  };
  expect_error([&] { read_training_progress(with("epoch", 1e300), "ck", 0); },
               {"checkpoint 'ck' training_state key 'epoch'", "expected an integer"});
  expect_error([&] { read_training_progress(with("best_acc1", "high"), "ck", 0); }, {"'best_acc1'"});
  expect_error([&] { read_training_progress(with("iteration", -1), "ck", 0); }, {"iteration -1"});
  expect_error([&] { read_training_progress(with("phase_start_iteration", 31), "ck", 0); },
               {"phase_start_iteration <= iteration"});
  json missing = valid_progress(0);
  missing.erase("generator");
  expect_error([&] { read_training_progress(contents_with_progress(missing), "ck", 0); }, {"'generator' is missing"});
  // The trainer writes into the last row after each re-training epoch: one row per step begun.
  expect_error([&] { read_training_progress(contents_with_progress(valid_progress(1)), "ck", 2); },
               {"2 object(s)", "one per INQ step begun"});
  expect_error([&] { read_training_progress(with("inq_steps", json::object()), "ck", 0); }, {"inq_steps"});
  expect_error([&] { read_training_progress(with("inq_steps", json::parse("[1]")), "ck", 1); }, {"inq_steps"});
  // The last row's bn_batches (the BatchNorm re-estimation after the last step) must be a count.
  expect_error([&] { read_training_progress(with("inq_steps", json::parse(R"([{"bn_batches": "all"}])")), "ck", 1); },
               {"bn_batches", "expected an integer"});
  expect_error([&] { read_training_progress(with("inq_steps", json::parse(R"([{"bn_batches": -3}])")), "ck", 1); },
               {"bn_batches in [0, 1073741824]", "-3"});
  EXPECT_EQ(read_training_progress(with("inq_steps", json::parse(R"([{"bn_batches": 200}])")), "ck", 1).inq_steps,
            json::parse(R"([{"bn_batches": 200}])"));
}

TEST(QuantizedTensorsOfACheckpoint, RejectsCodebookNumbersAndMasksThatDoNotFit) {
  SafetensorsFile file;
  file.source = "ck.safetensors";
  file.tensors.emplace_back("model.w", StoredTensor::from_tensor(Tensor::from_vector({2}, {0.5f, 0.3f})));
  file.tensors.emplace_back("optimizer.w.inq_mask", StoredTensor::from_tensor(Tensor::from_vector({2}, {0, 1})));
  CheckpointContents c;
  c.inq_state = R"({"tensors": {"w": {"bits": 3, "n1": -1, "n2": -2}}})";
  const QuantizedTensors q = read_quantized_tensors(file, c);
  ASSERT_EQ(q.tensors.size(), 1u);
  EXPECT_EQ(q.tensors[0].second.to_vector(), (std::vector<float>{0.5f, 0.0f}));  // still-float entry zeroed
  EXPECT_EQ(q.codebooks.at("w").n1, -1);

  c.inq_state = R"({"tensors": {"w": {"bits": 1e300, "n1": -1, "n2": -2}}})";
  expect_error([&] { read_quantized_tensors(file, c); }, {"ck.safetensors", "tensor 'w' key 'bits'"});
  c.inq_state = R"({"tensors": {"w": {"bits": 3, "n1": 4294967295, "n2": -2}}})";
  expect_error([&] { read_quantized_tensors(file, c); }, {"key 'n1'"});

  // A mask stored as I64 (or of another shape) is refused by name, not read as floats.
  c.inq_state = R"({"tensors": {"w": {"bits": 3, "n1": -1, "n2": -2}}})";
  file.tensors[1].second = StoredTensor::from_int64({2}, {0, 1});
  expect_error([&] { read_quantized_tensors(file, c); }, {"mask of 'w'", "I64"});
  file.tensors[1].second = StoredTensor::from_tensor(Tensor::from_vector({1, 2}, {0, 1}));
  expect_error([&] { read_quantized_tensors(file, c); }, {"mask of 'w'", "[1, 2]"});

  // The metadata goes through the shared strict reader: a key given twice is refused, not overwritten.
  c.inq_state = R"({"tensors": {"w": {"bits": 3, "n1": -1, "n2": -2, "n1": 0}}})";
  expect_error([&] { read_quantized_tensors(file, c); }, {"ck.safetensors", "inq_state", "n1"});
}

TEST(CheckpointMetadata, ADuplicateKeyInTheStoredConfigurationOrProgressIsRefused) {
  SafetensorsFile file;
  file.source = "dup.safetensors";
  const std::string config = to_json(TrainConfig{}).dump();
  file.metadata = {{"format", kCheckpointFormat},
                   {"format_version", std::to_string(kCheckpointVersion)},
                   {"arch", "lenet5"},
                   {"config", config},
                   {"training_state", R"({"epoch": 1})"}};
  EXPECT_EQ(read_checkpoint_info(file).config.run.arch, "lenet5");
  // nlohmann keeps the last of two equal keys; the strict reader refuses the file instead.
  file.metadata["config"] = config.substr(0, config.size() - 1) + R"(,"epochs": 7})";
  expect_error([&] { read_checkpoint_info(file); }, {"dup.safetensors", "'config'", "epochs"});
  file.metadata["config"] = config;
  file.metadata["training_state"] = R"({"epoch": 1, "epoch": 2})";
  expect_error([&] { read_checkpoint_info(file); }, {"dup.safetensors", "'training_state'", "epoch"});
}
