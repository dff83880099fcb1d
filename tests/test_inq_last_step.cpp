// What happens after INQ's last step (train/inq_phases.h; the (D) decisions beside docs/INQ_SPEC.md
// section 5). BatchNorm re-estimation: only BatchNorm statistics change, they become the average of
// the batch statistics of the data the model sees with dropout off, every weight stays as
// quantized, and a finished run resumed with it gets the same model as a run that did it at once.
// --final-epochs: only the float parameters train; interrupted or extended runs resume bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "app_testing.h"
#include "train/checkpoint.h"
#include "train/inq_files.h"
#include "train/trainer.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "framework/fileio.h"
#include "framework/threading.h"
#include "layers/batchnorm.h"
#include "layers/dropout.h"
#include "models/registry.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

std::vector<std::vector<float>> parameter_values(const Module& m) {
  std::vector<std::vector<float>> out;
  for (const auto& p : m.named_parameters()) out.push_back(p.tensor.to_vector());
  return out;
}

// The model tensors (parameters and buffers) of a checkpoint, in the model's order.
std::vector<std::vector<float>> tensors_of(const std::string& checkpoint) {
  auto model = create_model("resnet20", {.num_classes = 10, .in_channels = 1});
  load_model_weights(read_safetensors(checkpoint), *model);
  return test::values_of(*model);
}

}  // namespace

TEST(ReestimateBatchnorm, StatisticsBecomeTheDataAverageWithDropoutOffAndParametersUntouched) {
  // Dropout(0.9) in front of the BatchNorm: if it were active, the statistics would be far off.
  auto model = std::make_shared<Sequential>();
  model->add(std::make_shared<Dropout>(0.9));
  auto bn = std::make_shared<BatchNorm2d>(1);
  model->add(bn);
  bn->weight.fill_(2.0f);
  bn->bias.fill_(-1.0f);
  model->train();  // the mode it is in before is the mode it is in after

  // 6 images of one pixel: values 1..6, in 3 batches of 2 (no shuffle), so batch means 1.5, 3.5,
  // 5.5 and unbiased batch variances 0.5 each.
  TensorDataset data(Tensor::from_vector({6, 1, 1, 1}, {1, 2, 3, 4, 5, 6}), {0, 0, 0, 0, 0, 0}, 1);
  DataLoader loader(data, {.batch_size = 2});
  const auto params_before = parameter_values(*model);

  EXPECT_EQ(reestimate_batchnorm(*model, loader, /*epoch=*/0, /*max_batches=*/100), 3);  // capped at the epoch
  EXPECT_FLOAT_EQ(bn->running_mean.item(), 3.5f);
  EXPECT_FLOAT_EQ(bn->running_var.item(), 0.5f);
  EXPECT_EQ(bn->num_batches_tracked.item(), 3.0f);
  EXPECT_EQ(parameter_values(*model), params_before);
  EXPECT_TRUE(model->is_training());
  EXPECT_TRUE(model->children()[0].second->is_training());
  EXPECT_FALSE(bn->cumulative_average());  // back to the momentum update

  // Fewer batches than the epoch: the first two only (means 1.5 and 3.5).
  model->eval();
  EXPECT_EQ(reestimate_batchnorm(*model, loader, 0, 2), 2);
  EXPECT_FLOAT_EQ(bn->running_mean.item(), 2.5f);
  EXPECT_FALSE(model->is_training());
  EXPECT_FALSE(bn->is_training());

  // Nothing to do: 0 batches, or no BatchNorm at all.
  EXPECT_EQ(reestimate_batchnorm(*model, loader, 0, 0), 0);
  EXPECT_FLOAT_EQ(bn->running_mean.item(), 2.5f);
  Sequential plain;
  plain.add(std::make_shared<Dropout>(0.5));
  EXPECT_EQ(reestimate_batchnorm(plain, loader, 0, 10), 0);
}

namespace {

// ResNet-20 (BatchNorm after every convolution) on 128 training images: a two-step schedule whose
// last step re-estimates the statistics over the 2 batches of an epoch.
TrainConfig resnet_slice(const std::string& out) {
  TrainConfig c = test::small_lenet5_config(out, /*train_limit=*/128);
  c.run.arch = "resnet20";
  c.data.test_limit = 100;
  c.run.seed = 3;
  return c;
}

const std::string& resnet_fp32_weights() {
  static const std::string path = test::train_fp32_for_inq(resnet_slice(test::temp_path("bn_fp32")));
  return path;
}

TrainConfig resnet_inq(const std::string& name, int64_t bn_batches) {
  TrainConfig c = resnet_slice(test::temp_path(name));
  c.run.weights = resnet_fp32_weights();
  c.inq.bits = 3;
  c.inq.portions = {0.5, 1.0};
  c.inq.epochs_per_step = 1;
  c.optim.lr = 0.01;
  c.inq.bn_batches = bn_batches;
  return c;
}

}  // namespace

TEST(InqLastStep, LastStepReestimatesStatisticsAndAFinishedRunResumesIntoTheSameModel) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  // As docs/INQ_SPEC.md section 5 has it: nothing after the last step.
  TrainConfig stale = resnet_inq("bn_stale", 0);
  auto t0 = std::make_unique<Trainer>(stale);
  t0->fit();
  // With the re-estimation over 2 batches.
  TrainConfig fresh = resnet_inq("bn_fresh", 2);
  Trainer t2(fresh);
  t2.fit();

  // The same weights, bit for bit; only the BatchNorm buffers differ.
  EXPECT_EQ(parameter_values(t2.model()), parameter_values(t0->model()));
  const auto bn0 = batchnorm_layers(t0->model()), bn2 = batchnorm_layers(t2.model());
  ASSERT_EQ(bn0.size(), bn2.size());
  ASSERT_FALSE(bn2.empty());
  for (size_t i = 0; i < bn2.size(); ++i) {
    EXPECT_NE(bn2[i]->running_mean.to_vector(), bn0[i]->running_mean.to_vector()) << i;
    EXPECT_EQ(bn2[i]->num_batches_tracked.item(), 2.0f) << i;
  }

  // The record: the last step's accuracy after re-training is the re-estimated model's, the
  // summary has the extra row, and the run counts as finished only with it.
  const auto r0 = nlohmann::json::parse(read_file(stale.run.out + "/results.json"));
  const auto r2 = nlohmann::json::parse(read_file(fresh.run.out + "/results.json"));
  EXPECT_TRUE(r0["inq"]["finished"].get<bool>());
  EXPECT_TRUE(r2["inq"]["finished"].get<bool>());
  EXPECT_EQ(r2["inq"]["bn_batches"], 2);
  const auto& last0 = r0["inq"]["steps"].back();
  const auto& last2 = r2["inq"]["steps"].back();
  EXPECT_EQ(last0["bn_batches"], 0);
  EXPECT_EQ(last0["acc1_retrained"], last0["acc1_quantized"]);
  EXPECT_EQ(last2["bn_batches"], 2);
  EXPECT_EQ(last2["acc1_quantized"], last0["acc1_quantized"]);
  EXPECT_EQ(last2["acc1_retrained"], r2["acc1"]);
  EXPECT_NE(read_file(fresh.run.out + "/summary.csv").find(",bn_reestimated,"), std::string::npos);
  EXPECT_EQ(read_file(stale.run.out + "/summary.csv").find(",bn_reestimated,"), std::string::npos);

  // A run finished without it, resumed from the command line with --bn-batches 2, ends with the
  // same model as the run that did it at once, and rewrites final.safetensors.
  t0.reset();  // a Trainer holds its run folder's lock (docs/FORMATS_AND_RELIABILITY.md "Run folder protocol")
  std::string log;
  ASSERT_EQ(test::run_cli("quantize --resume " + stale.run.out + "/last.safetensors --bn-batches 2 --threads 1", &log), 0)
      << log;
  EXPECT_EQ(tensors_of(stale.run.out + "/final.safetensors"), test::values_of(t2.model()));
  const auto r3 = nlohmann::json::parse(read_file(stale.run.out + "/results.json"));
  EXPECT_EQ(r3["acc1"], r2["acc1"]);
  EXPECT_EQ(r3["inq"]["steps"].back()["bn_batches"], 2);

  // The statistics from before the re-estimation are gone: asking for them back is an error.
  EXPECT_EQ(test::run_cli("quantize --resume " + stale.run.out + "/last.safetensors --bn-batches 0 --threads 1", &log), 1)
      << log;
  EXPECT_NE(log.find("re-estimated over 2 batches"), std::string::npos) << log;
  fs::remove_all(stale.run.out);
  fs::remove_all(fresh.run.out);
}

TEST(InqLastStep, FinalEpochsTrainOnlyTheFloatParametersAndResumeBitForBit) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig none = resnet_inq("fe_none", 2);
  auto t0 = std::make_unique<Trainer>(none);
  t0->fit();
  TrainConfig one = resnet_inq("fe_one", 2);
  one.inq.final_epochs = 1;
  Trainer t1(one);
  t1.fit();
  EXPECT_EQ(t1.epoch(), 2);  // step 1's re-training, then the float-only epoch

  // Every quantized weight is the same as without the final epoch; BatchNorm's parameters moved.
  const auto p0 = t0->model().named_parameters(), p1 = t1.model().named_parameters();
  ASSERT_EQ(p0.size(), p1.size());
  int moved = 0;
  for (size_t i = 0; i < p1.size(); ++i) {
    if (p1[i].role == ParamRole::Weight) {
      EXPECT_EQ(p1[i].tensor.to_vector(), p0[i].tensor.to_vector()) << p1[i].name;
    } else if (p1[i].tensor.to_vector() != p0[i].tensor.to_vector()) {
      ++moved;
    }
  }
  EXPECT_GT(moved, 0);
  const auto r1 = nlohmann::json::parse(read_file(one.run.out + "/results.json"));
  EXPECT_TRUE(r1["inq"]["finished"].get<bool>());
  EXPECT_EQ(r1["inq"]["steps"].back()["bn_batches"], 2);  // re-estimated after the final epoch
  EXPECT_EQ(r1["inq"]["steps"].back()["acc1_retrained"], r1["acc1"]);
  EXPECT_EQ(verify_checkpoint(one.run.out + "/final.safetensors", stderr), 0);

  // Interrupted before the last step, resumed: the same model bit for bit.
  TrainConfig cut = resnet_inq("fe_cut", 2);
  cut.inq.final_epochs = 1;
  {
    Trainer t(cut);
    t.fit(/*stop_after_epoch=*/1);
  }
  cut.run.resume = cut.run.out + "/last.safetensors";
  Trainer t2(cut);
  t2.fit();
  EXPECT_EQ(test::values_of(t2.model()), test::values_of(t1.model()));

  // A run finished without final epochs, extended from the command line: the same model again.
  t0.reset();  // a Trainer holds its run folder's lock (docs/FORMATS_AND_RELIABILITY.md "Run folder protocol")
  std::string log;
  ASSERT_EQ(test::run_cli("quantize --resume " + none.run.out + "/last.safetensors --final-epochs 1 --threads 1", &log), 0)
      << log;
  EXPECT_EQ(tensors_of(none.run.out + "/final.safetensors"), test::values_of(t1.model()));
  // It cannot be shortened again.
  EXPECT_EQ(test::run_cli("quantize --resume " + none.run.out + "/last.safetensors --final-epochs 0 --threads 1", &log), 1)
      << log;
  EXPECT_NE(log.find("--final-epochs >= 1"), std::string::npos) << log;
  for (const auto& dir : {none.run.out, one.run.out, cut.run.out}) fs::remove_all(dir);
}
