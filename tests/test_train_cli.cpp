// `inq train` and `inq quantize` with every learning-rate schedule kind, end to end through the
// command line (a step schedule used to stop every run at start-up: the trainer passed the cosine
// schedule's length to all of them), and the flags both commands build from the same pieces.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app_testing.h"
#include "framework/fileio.h"

using namespace inq;
using namespace inq::test;
namespace fs = std::filesystem;

namespace {

// A slice small enough for seconds per epoch: 4 batches of 64.
const std::string kSlice = " --train-limit 256 --test-limit 100 -j 1 --threads 1 --eval-batch-size 100";

// The lr column of summary.csv for the rows of `phase` ("train" or "retrain"), in order. The
// trainer records the learning rate of each epoch's last iteration, to 6 significant digits.
std::vector<double> epoch_lrs(const std::string& run, const std::string& phase) {
  std::istringstream in(read_file(run + "/summary.csv"));
  std::string line;
  std::getline(in, line);  // header: epoch,inq_step,phase,lr,...
  std::vector<double> lrs;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    if (f.size() > 3 && f[2] == phase) lrs.push_back(std::stod(f[3]));
  }
  return lrs;
}

void expect_lrs(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * want[i]) << "epoch " << i + 1;
}

struct ScheduleCase {
  const char* name;
  const char* flags;
  std::vector<double> lrs;  // of epochs 1..3, at lr 0.05
};

}  // namespace

TEST(TrainCli, EveryScheduleKindTrainsEndToEnd) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  // Cosine over 3 epochs of 4 iterations: the last iteration of epoch e is t = 4e - 1 of T = 12.
  auto cosine = [](int t) { return 0.05 * (1 + std::cos(M_PI * t / 12.0)) / 2; };
  const std::vector<ScheduleCase> cases = {
      {"step", "--schedule step --step-size 1 --gamma 0.5", {0.05, 0.025, 0.0125}},
      {"multistep", "--schedule multistep --milestones 1,2 --gamma 0.1", {0.05, 0.005, 0.0005}},
      {"constant", "--schedule constant", {0.05, 0.05, 0.05}},
      {"cosine", "--schedule cosine", {cosine(3), cosine(7), cosine(11)}},
  };
  for (const ScheduleCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string run = temp_path(std::string("train_cli_") + c.name);
    std::string out;
    ASSERT_EQ(run_cli("train --arch lenet5 --epochs 3 --lr 0.05 " + std::string(c.flags) + kSlice + " --out " + run,
                      &out),
              0)
        << out;
    expect_lrs(epoch_lrs(run, "train"), c.lrs);
    EXPECT_NE(read_file(run + "/config.json").find(std::string("\"schedule\": \"") + c.name + "\""),
              std::string::npos);
    fs::remove_all(run);
  }
}

TEST(TrainCli, AScheduleFlagOfAnotherKindOrAMissingOneIsNamed) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string run = temp_path("train_cli_bad_schedule");
  std::string out;
  EXPECT_EQ(run_cli("train --arch lenet5 --epochs 1 --schedule step" + kSlice + " --out " + run, &out), 1) << out;
  EXPECT_NE(out.find("--step-size"), std::string::npos) << out;
  EXPECT_EQ(run_cli("train --arch lenet5 --epochs 1 --schedule multistep" + kSlice + " --out " + run, &out), 1) << out;
  EXPECT_NE(out.find("--milestones"), std::string::npos) << out;
  EXPECT_EQ(run_cli("train --arch lenet5 --epochs 1 --step-size 2" + kSlice + " --out " + run, &out), 1) << out;
  EXPECT_NE(out.find("--step-size 2 with --schedule cosine"), std::string::npos) << out;
  fs::remove_all(run);
}

// quantize takes the optimizer and schedule flags train has (it used to offer --schedule step with
// no --step-size, --milestones, --gamma or --nesterov); the schedule restarts at every INQ step.
TEST(TrainCli, QuantizeTakesTheSameScheduleAndOptimizerFlagsAsTrain) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string fp32 = temp_path("train_cli_fp32");
  const std::string run = temp_path("train_cli_inq_step");
  std::string out;
  ASSERT_EQ(run_cli("train --arch lenet5 --epochs 1" + kSlice + " --out " + fp32, &out), 0) << out;
  ASSERT_EQ(run_cli("quantize --arch lenet5 --weights " + fp32 + "/last.safetensors --bits 5 --portions 0.5,1 "
                    "--epochs-per-step 2 --lr 0.02 --schedule step --step-size 1 --gamma 0.5 --nesterov "
                    "--momentum 0.8 --wd 0.0001 --decay-norm-and-bias --warmup-epochs 0" + kSlice + " --out " + run,
                    &out),
            0)
      << out;
  expect_lrs(epoch_lrs(run, "retrain"), {0.02, 0.01});
  const std::string config = read_file(run + "/config.json");
  for (const char* needle : {"\"nesterov\": true", "\"momentum\": 0.8", "\"decay_norm_and_bias\": true",
                             "\"schedule\": \"step\"", "\"step_size\": 1", "\"gamma\": 0.5"})
    EXPECT_NE(config.find(needle), std::string::npos) << needle << "\n" << config;
  EXPECT_TRUE(fs::exists(run + "/final.safetensors"));
  // The help texts come from one place: the same flag reads the same in both commands.
  std::string train_help, quantize_help;
  run_cli("train --help", &train_help);
  run_cli("quantize --help", &quantize_help);
  for (const char* flag : {"--milestones", "--gamma", "--nesterov", "--momentum", "--step-size", "--warmup-epochs",
                           "--eval-batch-size", "--augment", "--decay-norm-and-bias"}) {
    EXPECT_NE(train_help.find(flag), std::string::npos) << flag;
    EXPECT_NE(quantize_help.find(flag), std::string::npos) << flag;
  }
  fs::remove_all(fp32);
  fs::remove_all(run);
}

// lenet5-caffe's recipe: lr 0.05 after one epoch of linear warm-up (train/train_config.cpp). A given
// --lr replaces the whole recipe learning rate, warm-up included; --warmup-epochs sets its own.
TEST(TrainCli, TheLenet5CaffeRecipeWarmsUpItsLearningRate) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string run = temp_path("train_cli_caffe_recipe");
  const auto config_of = [&](const std::string& flags) {
    std::string out;
    EXPECT_EQ(run_cli("train --arch lenet5-caffe --epochs 1" + flags + kSlice + " --out " + run, &out), 0) << out;
    const nlohmann::json c = nlohmann::json::parse(read_file(run + "/config.json"));
    fs::remove_all(run);
    return std::make_pair(c.at("lr").get<double>(), c.at("warmup_epochs").get<double>());
  };
  EXPECT_EQ(config_of(""), std::make_pair(0.05, 1.0));
  EXPECT_EQ(config_of(" --lr 0.02"), std::make_pair(0.02, 0.0));
  EXPECT_EQ(config_of(" --warmup-epochs 0.5"), std::make_pair(0.05, 0.5));
}

// CLI11 clamps an integer too large for uint64 to 2^64-1 without a word; --seed refuses it.
TEST(TrainCli, ASeedThatDoesNotFitIn64BitsIsRefused) {
  for (const std::string command : {"train --arch lenet5", "quantize --arch lenet5", "reproduce --quick"}) {
    const std::string flag = command.rfind("reproduce", 0) == 0 ? "--seeds 1," : "--seed ";
    std::string out;
    EXPECT_EQ(run_cli(command + " " + flag + "18446744073709551616 --out " + temp_path("seed_refused"), &out), 2)
        << command << ": " << out;
    EXPECT_NE(out.find(flag.substr(0, flag.find_first_of(" ,"))), std::string::npos) << command << ": " << out;
    EXPECT_NE(out.find("18446744073709551615"), std::string::npos) << command << ": " << out;
    EXPECT_EQ(run_cli(command + " " + flag + "-1 --out " + temp_path("seed_refused"), &out), 2)
        << command << ": " << out;
  }
  EXPECT_FALSE(std::filesystem::exists(temp_path("seed_refused")));
}

TEST(TrainCli, AnUnknownSubcommandIsNamedWithTheClosestOne) {
  std::string out;
  EXPECT_EQ(run_cli("trian --arch lenet5", &out), 2) << out;
  EXPECT_NE(out.find("unknown subcommand 'trian'"), std::string::npos) << out;
  EXPECT_NE(out.find("did you mean 'train'?"), std::string::npos) << out;
  EXPECT_EQ(run_cli("evl", &out), 2) << out;
  EXPECT_NE(out.find("did you mean 'eval'?"), std::string::npos) << out;
  EXPECT_EQ(run_cli("frobnicate", &out), 2) << out;
  EXPECT_NE(out.find("unknown subcommand 'frobnicate'"), std::string::npos) << out;
  EXPECT_NE(out.find("expected one of:"), std::string::npos) << out;
}
