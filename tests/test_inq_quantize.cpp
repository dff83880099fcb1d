// `inq quantize` / `inq verify` end to end on a slice of Fashion-MNIST: the schedule runs, every
// weight of the result verifies, a run interrupted mid-schedule resumes bit for bit, and the
// verifier catches a planted bad weight with exit status 3.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "app_testing.h"
#include "apps/checkpoint.h"
#include "apps/commands.h"
#include "apps/trainer.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"
#include "framework/threading.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

using test::have_fashion_mnist;
using test::run_cli;
using test::values_of;

std::string temp_path(const std::string& name) { return test::temp_path("quantize_" + name); }

TrainConfig slice(const std::string& out) {
  TrainConfig c = test::small_lenet5_config(out, /*train_limit=*/384);
  c.seed = 5;
  return c;
}

// A small FP32 model to quantize, trained once for the whole file.
const std::string& fp32_weights() {
  static const std::string path = [] {
    TrainConfig c = slice(temp_path("fp32"));
    c.epochs = 1;
    c.lr = 0.05;
    Trainer t(c);
    t.fit();
    return c.out + "/last.safetensors";
  }();
  return path;
}

TrainConfig inq_config(const std::string& out) {
  TrainConfig c = slice(out);
  c.weights = fp32_weights();
  c.inq_bits = 4;
  c.inq_portions = {0.3, 0.6, 1.0};
  c.epochs_per_step = 1;
  c.lr = 0.01;
  return c;
}

}  // namespace

TEST(InqQuantize, ScheduleQuantizesEveryWeightAndRecordsEachStep) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig c = inq_config(temp_path("schedule"));
  Trainer t(c);
  t.fit();
  EXPECT_EQ(t.epoch(), 2);  // re-training after steps 1 and 2, none after the last
  for (const auto& p : t.model().named_parameters()) {
    if (p.role != ParamRole::Weight) continue;
    for (float v : p.tensor.to_vector()) {
      if (v == 0.0f) continue;
      int e = 0;
      const float m = std::frexp(std::fabs(v), &e);
      EXPECT_EQ(m, 0.5f) << p.name << " holds " << v << ", not a power of two";
    }
  }
  const std::string csv = read_file(c.out + "/summary.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 + 2) << csv;  // header, 3 steps, 2 epochs
  const auto results = nlohmann::json::parse(read_file(c.out + "/results.json"));
  ASSERT_EQ(results["inq"]["steps"].size(), 3u);
  EXPECT_TRUE(results["inq"]["finished"].get<bool>());
  EXPECT_TRUE(file_exists(c.out + "/inq_report.txt"));
  EXPECT_EQ(verify_checkpoint(c.out + "/final.safetensors", stderr), 0);
  fs::remove_all(c.out);
}

TEST(InqQuantize, InterruptedScheduleResumesBitForBit) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig straight = inq_config(temp_path("straight"));
  Trainer t1(straight);
  t1.fit();
  TrainConfig first = inq_config(temp_path("interrupted"));
  {
    Trainer t2(first);
    t2.fit(/*stop_after_epoch=*/1);  // interrupted after step 1 and its re-training epoch
  }
  TrainConfig second = first;
  second.resume = first.out + "/last.safetensors";
  Trainer t3(second);
  EXPECT_EQ(t3.epoch(), 1);
  t3.fit();
  EXPECT_EQ(values_of(t3.model()), values_of(t1.model()));
  fs::remove_all(straight.out);
  fs::remove_all(first.out);
}

TEST(InqQuantize, VerifyCatchesAPlantedBadWeight) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig c = inq_config(temp_path("planted"));
  { Trainer t(c); t.fit(); }
  const std::string good = c.out + "/final.safetensors";
  std::string out;
  EXPECT_EQ(run_cli("verify " + good, &out), 0) << out;
  EXPECT_NE(out.find("OK"), std::string::npos) << out;

  // Plant 0.3 (not a power of two) into one quantized weight and write the file back.
  SafetensorsFile file = read_safetensors(good);
  for (auto& [name, t] : file.tensors) {
    if (name == "model.features.3.weight") t.f32.data()[7] = 0.3f;
  }
  const std::string bad = c.out + "/planted.safetensors";
  write_safetensors(bad, file.tensors, file.metadata);
  EXPECT_EQ(run_cli("verify " + bad, &out), 3) << out;
  EXPECT_NE(out.find("features.3.weight[7]"), std::string::npos) << out;
  EXPECT_EQ(verify_checkpoint(bad, stderr), 3);

  // A checkpoint of plain training is not an INQ checkpoint: error, exit status 1.
  EXPECT_EQ(run_cli("verify " + fp32_weights(), &out), 1) << out;
  EXPECT_NE(out.find("INQ"), std::string::npos) << out;
  fs::remove_all(c.out);
}

TEST(InqQuantize, CliRejectsContradictoryOrMissingInputs) {
  std::string out;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --out " + temp_path("nowts"), &out), 1) << out;
  EXPECT_NE(out.find("--weights"), std::string::npos) << out;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --bits 1 --weights /etc/hostname", &out), 2) << out;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --preset nosuch --weights /etc/hostname", &out), 2) << out;
  if (!have_fashion_mnist()) return;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --weights " + fp32_weights() +
                        " --preset resnet18 --portions 0.5,1 --out " + temp_path("both"),
                    &out),
            1)
      << out;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --weights " + fp32_weights() + " --portions 0.5,0.4,1 --out " +
                        temp_path("order"),
                    &out),
            1)
      << out;
  EXPECT_NE(out.find("increasing"), std::string::npos) << out;
  fs::remove_all(temp_path("both"));
  fs::remove_all(temp_path("order"));
}
