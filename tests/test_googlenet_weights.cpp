// GoogLeNet weights with or without the auxiliary heads (aux1.*, aux2.*): torchvision's
// googlenet(aux_logits=False) state_dicts, and every model fine-tuned and saved that way, have none.
// Evaluation and `inq run` build the model without aux heads and ignore a file's aux tensors (and
// only those); training keeps the heads, fresh when the initial weights lack them, and trains them
// through the auxiliary losses. Every other name stays strict.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "app_testing.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/random.h"
#include "framework/safetensors.h"
#include "gradcheck.h"
#include "models/googlenet.h"
#include "models/registry.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

const ModelOptions kOptions{.num_classes = 10, .in_channels = 1};  // Fashion-MNIST's

// A GoogLeNet with aux heads and non-default BatchNorm statistics (so the buffers' loading shows).
std::shared_ptr<Module> full_googlenet(uint64_t seed) {
  seed_all(seed);
  auto model = create_model("googlenet", kOptions);
  Generator gen(seed);
  for (auto& b : model->named_buffers())
    if (b.name.ends_with("running_mean")) b.tensor.copy_from(test::random_tensor(b.tensor.shape(), gen, 0.1));
  return model;
}

// Writes `model`'s state dict to `path`: without the aux tensors unless `with_aux`, without `drop`.
std::string write_weights(const std::string& path, const Module& model, bool with_aux, const std::string& drop = "") {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : model.state_dict())
    if ((with_aux || !is_googlenet_aux_name(t.name)) && t.name != drop) tensors.emplace_back(t.name, t.tensor);
  write_safetensors(path, tensors);
  return path;
}

// The model `inq eval` and `inq run` build, with weights loaded as they load them.
std::shared_ptr<Module> inference_googlenet(const std::string& weights) {
  seed_all(999);  // another initialization than the weights'
  auto model = create_model("googlenet", inference_options(kOptions));
  load_model_weights(read_safetensors(weights), *model, optional_weight_names(*model));
  return model;
}

std::vector<float> eval_logits(Module& model, const Tensor& x) {
  model.eval();
  NoGradGuard no_grad;
  return model.forward(x).to_vector();
}

std::string load_error(const std::string& weights, Module& model) {
  try {
    load_model_weights(read_safetensors(weights), model, optional_weight_names(model));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<float> values_named(const Module& m, const std::string& name) {
  for (const auto& t : m.state_dict())
    if (t.name == name) return t.tensor.to_vector();
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

class GoogLeNetWeights : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_path("googlenet_weights");
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

}  // namespace

TEST_F(GoogLeNetWeights, InferenceLoadsWeightsWithOrWithoutAuxHeadsAndGivesTheFullModelsLogits) {
  auto full = full_googlenet(5);
  const std::string auxless = write_weights(path("auxless.safetensors"), *full, /*with_aux=*/false);
  const std::string with_aux = write_weights(path("with_aux.safetensors"), *full, /*with_aux=*/true);
  // Per aux head: 7 parameters and 3 BatchNorm buffers.
  ASSERT_EQ(read_safetensors(auxless).tensors.size(), full->state_dict().size() - 2 * 10);

  Generator gen(6);
  const Tensor x = test::random_tensor({2, 1, 24, 24}, gen);
  const std::vector<float> expected = eval_logits(*full, x);
  for (const std::string& weights : {auxless, with_aux}) {
    SCOPED_TRACE(weights);
    auto model = inference_googlenet(weights);
    EXPECT_FALSE(dynamic_cast<GoogLeNet&>(*model).has_aux_heads());
    EXPECT_EQ(eval_logits(*model, x), expected);
  }
}

TEST_F(GoogLeNetWeights, AMissingOrUnexpectedNonAuxTensorIsStillRefusedByName) {
  auto full = full_googlenet(7);
  const std::string missing = "inception4b.branch2.1.bn.running_var";
  const std::string without_one = write_weights(path("without_one.safetensors"), *full, false, missing);
  const std::string with_aux_without_one =
      write_weights(path("with_aux_without_one.safetensors"), *full, true, missing);
  for (const bool aux_heads : {false, true}) {
    for (const std::string& weights : {without_one, with_aux_without_one}) {
      SCOPED_TRACE(fmt::format("{} into a model {} aux heads", weights, aux_heads ? "with" : "without"));
      auto model = create_model("googlenet", {.num_classes = 10, .in_channels = 1, .aux_logits = aux_heads});
      const std::string m = load_error(weights, *model);
      EXPECT_NE(m.find("Missing key(s) in file: \"" + missing + "\"."), std::string::npos) << m;
    }
  }

  // A name that is neither the model's nor an aux head's.
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& t : full->state_dict()) tensors.emplace_back(t.name, t.tensor);
  tensors.emplace_back("aux3.fc1.weight", Tensor::zeros({2}));
  write_safetensors(path("extra.safetensors"), tensors);
  auto model = create_model("googlenet", inference_options(kOptions));
  std::string m = load_error(path("extra.safetensors"), *model);
  EXPECT_NE(m.find("Unexpected key(s) in file: \"aux3.fc1.weight\"."), std::string::npos) << m;

  // Half an aux head is a broken file, not a file without aux heads.
  tensors.pop_back();
  std::erase_if(tensors, [](const auto& t) { return t.first.starts_with("aux2."); });
  write_safetensors(path("half_aux.safetensors"), tensors);
  model = create_model("googlenet", kOptions);
  m = load_error(path("half_aux.safetensors"), *model);
  EXPECT_NE(m.find("Missing key(s) in file: \"aux2.conv.conv.weight\""), std::string::npos) << m;
}

// `inq train --weights` on aux-less weights: the aux heads keep their fresh initialization (a note
// says so), the rest is the file's, and the aux heads then train through the auxiliary losses.
TEST_F(GoogLeNetWeights, TrainingFromAuxlessWeightsKeepsFreshAuxHeadsAndTrainsThem) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto pretrained = full_googlenet(8);
  const std::string weights = write_weights(path("auxless.safetensors"), *pretrained, /*with_aux=*/false);
  TrainConfig c = test::small_lenet5_config(path("run"), /*train_limit=*/8);
  c.run.arch = "googlenet";
  c.run.weights = weights;
  c.data.batch_size = 4;
  c.data.eval_batch_size = 8;
  c.data.test_limit = 8;
  c.run.epochs = 1;
  c.optim.lr = 0.01;
  c.run.seed = 9;

  testing::internal::CaptureStderr();
  std::unique_ptr<Trainer> trainer;
  try {
    trainer = std::make_unique<Trainer>(c);
  } catch (const Error& e) {
    testing::internal::GetCapturedStderr();
    FAIL() << e.what();
  }
  const std::string log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("=> note: weights '" + weights + "' have no aux1.*, aux2.* (20 tensors)"), std::string::npos)
      << log;

  // The Trainer seeds, then builds the model: the same fresh aux heads as here.
  seed_all(c.run.seed);
  auto fresh = create_model("googlenet", kOptions);
  const Module& model = trainer->model();
  for (const auto& t : model.state_dict()) {
    const Module& source = is_googlenet_aux_name(t.name) ? *fresh : *pretrained;
    EXPECT_EQ(t.tensor.to_vector(), values_named(source, t.name)) << t.name;
  }

  trainer->fit();
  int aux_params = 0;
  for (const auto& p : trainer->model().named_parameters()) {
    if (!is_googlenet_aux_name(p.name)) continue;
    ++aux_params;
    EXPECT_NE(p.tensor.to_vector(), values_named(*fresh, p.name)) << p.name << " did not train";
  }
  EXPECT_EQ(aux_params, 14);
}

// Weights that have the aux heads load them for training.
TEST_F(GoogLeNetWeights, TrainingLoadsTheAuxHeadsOfWeightsThatHaveThem) {
  auto pretrained = full_googlenet(10);
  const std::string weights = write_weights(path("with_aux.safetensors"), *pretrained, /*with_aux=*/true);
  seed_all(11);
  auto model = create_model("googlenet", kOptions);
  testing::internal::CaptureStderr();
  load_model_weights(read_safetensors(weights), *model, optional_weight_names(*model));
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");  // nothing to note
  for (const auto& t : model->state_dict())
    EXPECT_EQ(t.tensor.to_vector(), values_named(*pretrained, t.name)) << t.name;
}

// `inq run --arch googlenet` end to end on aux-less weights, on weights with aux heads, and on
// weights that lack a non-aux tensor.
TEST_F(GoogLeNetWeights, InqRunTakesAuxlessWeights) {
  auto full = full_googlenet(12);
  Generator gen(13);
  const Tensor x = test::random_tensor({2, 1, 20, 20}, gen);
  write_safetensors(path("in.safetensors"), {{"input", x}});
  const std::vector<float> expected = eval_logits(*full, x);
  auto run = [&](const std::string& weights, std::string* log) {
    return test::run_cli(fmt::format("run --arch googlenet --weights {} --input {} --output {} --num-classes 10",
                                     weights, path("in.safetensors"), path("out.safetensors")),
                         log);
  };
  for (const bool with_aux : {false, true}) {
    SCOPED_TRACE(with_aux ? "with aux heads" : "without aux heads");
    std::string log;
    ASSERT_EQ(run(write_weights(path("w.safetensors"), *full, with_aux), &log), 0) << log;
    const std::vector<float> actual = read_safetensors(path("out.safetensors")).find("output")->f32.to_vector();
    ASSERT_EQ(actual.size(), expected.size());
    // The tool may use another thread count than this process, hence a tolerance.
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(actual[i], expected[i], 1e-5) << i;
    fs::remove(path("out.safetensors"));
  }
  std::string log;
  EXPECT_EQ(run(write_weights(path("broken.safetensors"), *full, false, "fc.bias"), &log), 1) << log;
  EXPECT_NE(log.find("Missing key(s) in file: \"fc.bias\"."), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(path("out.safetensors")));
}

// `inq eval --arch googlenet` end to end: aux-less weights and the same weights with aux heads give
// the same results row.
TEST_F(GoogLeNetWeights, InqEvalTakesAuxlessWeights) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto full = full_googlenet(14);
  std::vector<std::string> rows;
  for (const bool with_aux : {false, true}) {
    SCOPED_TRACE(with_aux ? "with aux heads" : "without aux heads");
    const std::string weights = write_weights(path("weights.safetensors"), *full, with_aux);
    const std::string results = path(with_aux ? "with_aux.csv" : "auxless.csv");
    std::string log;
    ASSERT_EQ(test::run_cli(fmt::format("eval --arch googlenet --weights {} --test-limit 16 --threads 1 --results {}",
                                        weights, results),
                            &log),
              0)
        << log;
    EXPECT_NE(log.find(" * Acc@1 "), std::string::npos) << log;
    // arch,weights,dataset,count,acc1,acc5,loss,seconds: all but the seconds must agree.
    std::istringstream csv(read_file(results));
    std::string header, row;
    std::getline(csv, header);
    std::getline(csv, row);
    rows.push_back(row.substr(0, row.rfind(',')));
  }
  EXPECT_EQ(rows[0], rows[1]);
  EXPECT_NE(rows[0].find("googlenet,"), std::string::npos) << rows[0];
}
