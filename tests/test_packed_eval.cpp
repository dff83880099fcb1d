// Packed INQ models evaluate as their checkpoints (issue: inference straight from packed weights):
// the ResNet-20 5-bit INQ run committed under results/ and a LeNet-5 4-bit INQ run trained here are
// packed, loaded as `inq eval` loads them (from the codes) and run over Fashion-MNIST test images
// next to the float checkpoint: every image gets the same prediction, every logit is within 1e-5
// (relative to the image's largest logit) of the float path, and Acc@1 is the same. The ResNet-20 is
// packed with --entropy (every tensor Huffman-coded, format version 3), the LeNet-5 by default.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "app_testing.h"
#include "data/datasets.h"
#include "framework/autograd.h"
#include "framework/threading.h"
#include "train/evaluate.h"
#include "train/inference_model.h"
#include "train/inq_files.h"
#include "train/run_setup.h"
#include "train/trainer.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

void expect_packed_evaluates_as_checkpoint(const TrainConfig& config, const std::string& checkpoint,
                                           const PackOptions& pack_options = {}) {
  const std::string packed = test::temp_path("packed_eval_" + config.run.arch) + ".safetensors";
  const PackSummary summary = pack_checkpoint(checkpoint, packed, pack_options);
  // With --entropy, the Huffman-coded layouts are what this run exercises (format version 3).
  if (pack_options.entropy_coding) {
    EXPECT_EQ(summary.entropy_tensors, summary.quantized_tensors);
  }
  ChannelStats stats;
  auto test_set = load_dataset(config.data, /*train=*/false, &stats);
  const ModelOptions options = inference_options(model_options_for(config.data, *test_set));
  const WeightChecks checks{.arch = config.run.arch};
  InferenceModel fp32 = load_inference_model(config.run.arch, options, checkpoint, checks);
  InferenceModel codes = load_inference_model(config.run.arch, options, packed, checks);
  ASSERT_FALSE(fp32.packed);
  ASSERT_TRUE(codes.packed);
  EXPECT_GT(codes.packed_summary.packed_layers, 0);
  EXPECT_EQ(codes.packed_summary.unpacked_tensors, 0);
  for (const auto& p : codes.model->named_parameters())  // every quantized weight runs from its codes
    EXPECT_NE(p.role, ParamRole::Weight) << p.name;

  auto loader = make_loader(*test_set, config, /*train=*/false, dataset_transforms(config.data, false, stats));
  NoGradGuard no_grad;
  loader->start_epoch(0);
  Batch batch;
  int64_t images = 0, same_prediction = 0;
  double worst = 0.0;
  while (loader->next(batch)) {
    const Tensor a = fp32.model->forward(batch.images), b = codes.model->forward(batch.images);
    ASSERT_EQ(a.shape(), b.shape());
    const int64_t classes = a.size(1);
    for (int64_t i = 0; i < a.size(0); ++i, ++images) {
      const float* fa = a.data() + i * classes;
      const float* fb = b.data() + i * classes;
      float scale = 0.0f;
      for (int64_t k = 0; k < classes; ++k) scale = std::max(scale, std::fabs(fa[k]));
      for (int64_t k = 0; k < classes; ++k) {
        const double rel = std::fabs(double(fa[k]) - fb[k]) / std::max(scale, 1e-30f);
        worst = std::max(worst, rel);
        EXPECT_LE(rel, 1e-5) << config.run.arch << " image " << images << " logit " << k;
      }
      same_prediction += std::max_element(fa, fa + classes) - fa == std::max_element(fb, fb + classes) - fb;
    }
  }
  EXPECT_EQ(images, config.data.test_limit);
  EXPECT_EQ(same_prediction, images) << config.run.arch;
  ::testing::Test::RecordProperty(config.run.arch + "_worst_relative_logit_difference", std::to_string(worst));

  auto again = make_loader(*test_set, config, false, dataset_transforms(config.data, false, stats));
  const EvalResult ra = evaluate(*fp32.model, *again);
  auto again2 = make_loader(*test_set, config, false, dataset_transforms(config.data, false, stats));
  const EvalResult rb = evaluate(*codes.model, *again2);
  EXPECT_EQ(ra.correct1, rb.correct1) << config.run.arch;
  EXPECT_EQ(ra.correct5, rb.correct5) << config.run.arch;
  EXPECT_GT(ra.acc1, 0.5) << config.run.arch << ": a model that learned something";
  fs::remove(packed);
}

}  // namespace

TEST(PackedEval, ResNet20InqCheckpointFromResults) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig c = test::small_lenet5_config(test::temp_path("packed_eval_r20"), 0);
  c.run.arch = "resnet20";
  c.data.test_limit = 300;
  expect_packed_evaluates_as_checkpoint(
      c, std::string(INQ_SOURCE_DIR) + "/results/reproduce-resnet20/inq5-magnitude-s1/final.safetensors",
      PackOptions{.entropy_coding = true});
}

TEST(PackedEval, LeNet5InqRunTrainedHere) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);
  // Enough training that the predictions differ from image to image (a model that answers one class
  // for everything would make "the same predictions" say little).
  TrainConfig c = test::small_lenet5_config(test::temp_path("packed_eval_lenet_fp32"), 4000);
  c.run.seed = 5;
  c.run.epochs = 2;
  c.optim.lr = 0.05;
  { Trainer(c).fit(); }
  const std::string fp32 = c.run.out + "/last.safetensors";
  c.run.out = test::temp_path("packed_eval_lenet_inq");
  c.run.weights = fp32;
  c.inq.bits = 4;
  c.inq.portions = {0.5, 1.0};
  c.inq.epochs_per_step = 1;
  c.optim.lr = 0.01;
  { Trainer(c).fit(); }
  c.data.test_limit = 500;
  expect_packed_evaluates_as_checkpoint(c, c.run.out + "/final.safetensors");
  fs::remove_all(test::temp_path("packed_eval_lenet_fp32"));
  fs::remove_all(c.run.out);
}
