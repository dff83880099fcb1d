// `inq run` through the command-line tool: logits of one eval-mode pass, written atomically, and a
// clear error with a non-zero status for each kind of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <map>
#include <string>

#include "app_testing.h"
#include "train/run_model.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/random.h"
#include "framework/safetensors.h"
#include "gradcheck.h"
#include "inq/packed_model.h"
#include "models/registry.h"

using namespace inq;

namespace {

class RunCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_path("run_command");
    std::filesystem::create_directories(dir_);
    model_ = create_model("lenet5", {.num_classes = 10, .in_channels = 1});
    std::vector<std::pair<std::string, Tensor>> weights;
    for (auto& t : model_->state_dict()) weights.emplace_back(t.name, t.tensor);
    write_safetensors(path("weights.safetensors"), weights);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // Writes `tensors` to a file in the test directory and returns its path.
  std::string input_file(const std::string& name, const std::vector<std::pair<std::string, Tensor>>& tensors) const {
    write_safetensors(path(name), tensors);
    return path(name);
  }
  int run(const std::string& arch, const std::string& input, std::string* log) const {
    return test::run_cli(fmt::format("run --arch {} --weights {} --input {} --output {} --num-classes 10", arch,
                                     path("weights.safetensors"), input, path("out.safetensors")),
                         log);
  }

  std::string dir_;
  std::shared_ptr<Module> model_;
};

}  // namespace

TEST_F(RunCommand, WritesTheEvalLogitsOfTheStoredBatch) {
  Generator gen(21);
  const Tensor x = test::random_tensor({3, 1, 28, 28}, gen);
  // Other tensors in the file are ignored (e.g. the targets of a test batch).
  const std::string input = input_file("in.safetensors", {{"input", x}, {"target", Tensor::zeros({3})}});
  std::string log;
  ASSERT_EQ(run("lenet5", input, &log), 0) << log;

  model_->eval();
  NoGradGuard no_grad;
  const std::vector<float> expected = model_->forward(x).to_vector();
  const SafetensorsFile out = read_safetensors(path("out.safetensors"));
  const StoredTensor* logits = out.find("output");
  ASSERT_NE(logits, nullptr);
  EXPECT_EQ(logits->shape, (Shape{3, 10}));
  const std::vector<float> actual = logits->f32.to_vector();
  // The tool may use another thread count than this process, hence a tolerance, not equality.
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(actual[i], expected[i], 1e-5) << i;
  EXPECT_EQ(out.metadata.at("arch"), "lenet5");
}

TEST_F(RunCommand, BadInputsFailWithAClearMessageAndWriteNothing) {
  Generator gen(22);
  struct Case {
    std::string what, arch, input, message;
  };
  const std::vector<Case> cases = {
      {"missing tensor", "lenet5", input_file("no_input.safetensors", {{"images", Tensor::zeros({1, 1, 28, 28})}}),
       "expected a tensor named 'input' (an N, C, H, W float32 batch), but the file holds only: images"},
      {"wrong rank", "lenet5", input_file("rank3.safetensors", {{"input", Tensor::zeros({1, 28, 28})}}),
       "expected 'input' of rank 4 (N, C, H, W), but got shape [1, 28, 28] instead"},
      {"wrong channel count", "lenet5",
       input_file("rgb.safetensors", {{"input", test::random_tensor({1, 3, 28, 28}, gen)}}),
       "the lenet5 model was built for 3 input channels"},
      {"unknown arch", "resnet1000", input_file("ok.safetensors", {{"input", Tensor::zeros({1, 1, 28, 28})}}),
       "Given --arch 'resnet1000', expected one of: alexnet"},
  };
  for (const auto& c : cases) {
    std::string log;
    EXPECT_EQ(run(c.arch, c.input, &log), 1) << c.what << ": " << log;
    EXPECT_NE(log.find("inq: error: "), std::string::npos) << c.what << ": " << log;
    EXPECT_NE(log.find(c.message), std::string::npos) << c.what << ": " << log;
    EXPECT_FALSE(std::filesystem::exists(path("out.safetensors"))) << c.what;
  }
  // The channel mismatch also names the tensor that does not fit.
  std::string log;
  run("lenet5", path("rgb.safetensors"), &log);
  EXPECT_NE(log.find("size mismatch for features.0.weight"), std::string::npos) << log;
}

TEST_F(RunCommand, AClassCountThatDoesNotFitTheWeightsIsNamed) {
  const std::string input = input_file("small.safetensors", {{"input", Tensor::zeros({1, 1, 28, 28})}});
  RunOptions options{.arch = "lenet5", .weights = path("weights.safetensors"), .input = input,
                     .output = path("out.safetensors"), .num_classes = 7};
  try {
    run_model_on_file(options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("and 7 classes, from --num-classes"), std::string::npos) << e.what();
  }
}

// One NaN or Inf in the weights gives NaN logits without a word: every command that loads weights
// refuses them (train/checkpoint.h load_model_weights), naming the file, the first tensor and index
// and the count, unless --allow-non-finite.
TEST_F(RunCommand, NonFiniteWeightsAreRefusedUnlessAllowed) {
  std::vector<std::pair<std::string, Tensor>> weights;
  for (auto& t : model_->state_dict()) weights.emplace_back(t.name, t.tensor.clone());
  for (auto& [name, t] : weights) {
    if (name == "features.0.weight") t.data()[7] = std::numeric_limits<float>::quiet_NaN();
    if (name == "classifier.0.bias" || name == "features.0.bias") t.data()[0] = std::numeric_limits<float>::infinity();
  }
  const std::string nan_weights = path("nan.safetensors");
  write_safetensors(nan_weights, weights);
  const std::string input = input_file("in.safetensors", {{"input", Tensor::zeros({2, 1, 28, 28})}});
  const std::string args =
      fmt::format("run --arch lenet5 --weights {} --input {} --output {} --num-classes 10", nan_weights, input,
                  path("out.safetensors"));
  std::string log;
  EXPECT_EQ(test::run_cli(args, &log), 1) << log;
  EXPECT_NE(log.find(nan_weights), std::string::npos) << log;
  EXPECT_NE(log.find("non-finite"), std::string::npos) << log;
  EXPECT_NE(log.find("--allow-non-finite"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(path("out.safetensors")));
  // The first offender in the model's order, with its index, and the count.
  EXPECT_NE(log.find("'features.0.weight'"), std::string::npos) << log;
  EXPECT_NE(log.find("entry 7 is nan"), std::string::npos) << log;
  EXPECT_NE(log.find("values in"), std::string::npos) << log;

  EXPECT_EQ(test::run_cli(args + " --allow-non-finite", &log), 0) << log;
  EXPECT_NE(log.find("warning"), std::string::npos) << log;
  EXPECT_TRUE(std::filesystem::exists(path("out.safetensors")));
}

TEST_F(RunCommand, NonFiniteWeightsAreRefusedByEvalUnlessAllowed) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  std::vector<std::pair<std::string, Tensor>> weights;
  for (auto& t : model_->state_dict()) weights.emplace_back(t.name, t.tensor.clone());
  weights.back().second.data()[0] = -std::numeric_limits<float>::infinity();
  const std::string bad = path("inf.safetensors");
  write_safetensors(bad, weights);
  const std::string args = "eval --arch lenet5 --test-limit 20 --threads 1 --results '' --weights " + bad;
  std::string log;
  EXPECT_EQ(test::run_cli(args, &log), 1) << log;
  EXPECT_NE(log.find(bad), std::string::npos) << log;
  EXPECT_NE(log.find("'" + weights.back().first + "'"), std::string::npos) << log;
  EXPECT_NE(log.find("entry 0 is -inf"), std::string::npos) << log;
  EXPECT_EQ(log.find("Acc@1"), std::string::npos) << log;
  EXPECT_EQ(test::run_cli(args + " --allow-non-finite", &log), 0) << log;
  EXPECT_NE(log.find("Acc@1"), std::string::npos) << log;
}

// --output may not be --weights or --input: the logits would replace them.
TEST_F(RunCommand, AnOutputThatIsAnInputIsRefused) {
  const std::string input = input_file("in.safetensors", {{"input", Tensor::zeros({1, 1, 28, 28})}});
  const std::string weights = path("weights.safetensors");
  const std::string before = read_file(weights);
  std::string log;
  EXPECT_EQ(test::run_cli(fmt::format("run --arch lenet5 --weights {} --input {} --output {} --num-classes 10",
                                      weights, input, dir_ + "/./weights.safetensors"),
                          &log),
            1)
      << log;
  EXPECT_NE(log.find("--output"), std::string::npos) << log;
  EXPECT_NE(log.find("--weights"), std::string::npos) << log;
  EXPECT_EQ(read_file(weights), before);
  EXPECT_EQ(test::run_cli(fmt::format("run --arch lenet5 --weights {} --input {} --output {} --num-classes 10",
                                      weights, input, input),
                          &log),
            1)
      << log;
  EXPECT_NE(log.find("--input"), std::string::npos) << log;
  EXPECT_NE(read_safetensors(input).find("input"), nullptr);
}

// A packed model records its arch; --arch must match it.
TEST_F(RunCommand, APackedModelOfAnotherArchIsRefused) {
  SafetensorsFile weights = read_safetensors(path("weights.safetensors"));
  std::map<std::string, Codebook> codebooks;
  for (auto& [name, t] : weights.tensors) {
    if (name != "features.0.weight") continue;
    for (int64_t i = 0; i < t.f32.numel(); ++i) t.f32.data()[i] = (i % 3 == 0) ? 0.5f : 0.0f;
    codebooks[name] = Codebook{.bits = 4, .n1 = 0, .n2 = -3};
  }
  const std::string packed = path("packed.safetensors");
  pack_model(weights, codebooks, "resnet20", packed);
  const std::string input = input_file("in.safetensors", {{"input", Tensor::zeros({1, 1, 28, 28})}});
  std::string log;
  EXPECT_EQ(test::run_cli(fmt::format("run --arch lenet5 --weights {} --input {} --output {} --num-classes 10", packed,
                                      input, path("out.safetensors")),
                          &log),
            1)
      << log;
  EXPECT_NE(log.find(packed), std::string::npos) << log;
  EXPECT_NE(log.find("'resnet20'"), std::string::npos) << log;
  EXPECT_NE(log.find("'lenet5'"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(path("out.safetensors")));
}
