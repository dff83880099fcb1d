// `inq run` through the command-line tool: logits of one eval-mode pass, written atomically, and a
// clear error with a non-zero status for each kind of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "app_testing.h"
#include "train/run_model.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/random.h"
#include "framework/safetensors.h"
#include "gradcheck.h"
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
