// The training driver end to end on a slice of Fashion-MNIST: determinism, resume bit for bit
// (Caffe's TestSnapshot pattern), the run folder, and the `inq` tool's handling of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "app_testing.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/threading.h"
#include "models/registry.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

using test::have_fashion_mnist;
using test::run_cli;
using test::values_of;

std::string temp_dir(const std::string& name) { return test::temp_path("trainer_" + name); }

TrainConfig small_config(const std::string& out) {
  TrainConfig c = test::small_lenet5_config(out, /*train_limit=*/640);
  c.run.epochs = 2;
  c.optim.lr = 0.05;
  c.run.seed = 3;
  return c;
}

}  // namespace

TEST(Trainer, SameSeedSameThreadsGivesBitIdenticalWeights) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig a = small_config(temp_dir("det_a")), b = small_config(temp_dir("det_b"));
  a.run.epochs = b.run.epochs = 1;
  Trainer ta(a), tb(b);
  ta.fit();
  tb.fit();
  EXPECT_EQ(values_of(ta.model()), values_of(tb.model()));
  fs::remove_all(a.run.out);
  fs::remove_all(b.run.out);
}

TEST(Trainer, ResumeContinuesBitForBit) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  // Straight: 2 epochs.
  TrainConfig straight = small_config(temp_dir("straight"));
  Trainer t1(straight);
  t1.fit();
  // Interrupted after epoch 1, then resumed in a fresh Trainer from last.safetensors.
  TrainConfig first = small_config(temp_dir("interrupted"));
  {
    Trainer t2(first);
    t2.fit(/*stop_after_epoch=*/1);
    EXPECT_EQ(t2.epoch(), 1);
  }
  TrainConfig second = first;
  second.run.resume = first.run.out + "/last.safetensors";
  Trainer t3(second);
  EXPECT_EQ(t3.epoch(), 1);
  t3.fit();
  EXPECT_EQ(t3.iteration(), t1.iteration());
  EXPECT_EQ(values_of(t3.model()), values_of(t1.model()));

  // The run folder holds what it promises.
  for (const char* f : {"config.json", "summary.csv", "last.safetensors", "best.safetensors", "results.json"})
    EXPECT_TRUE(file_exists(first.run.out + "/" + f)) << f;
  const std::string summary = read_file(first.run.out + "/summary.csv");
  EXPECT_EQ(std::count(summary.begin(), summary.end(), '\n'), 3) << summary;  // header + 2 epochs
  fs::remove_all(straight.run.out);
  fs::remove_all(first.run.out);
}

TEST(Trainer, RefusesToOverwriteARunAndRejectsAWrongArchCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TrainConfig c = small_config(temp_dir("overwrite"));
  c.run.epochs = 1;
  c.data.train_limit = 64;
  { Trainer t(c); t.fit(); }
  EXPECT_THROW(Trainer{c}, Error);  // the folder holds a run
  TrainConfig r = c;
  r.run.arch = "resnet20";
  r.run.resume = c.run.out + "/last.safetensors";
  try {
    Trainer t(r);
    FAIL() << "resume with another arch must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lenet5"), std::string::npos) << e.what();
  }
  fs::remove_all(c.run.out);
}

TEST(Checkpoint, StrictLoadNamesEveryMissingAndUnexpectedTensor) {
  auto lenet = create_model("lenet5");
  auto resnet = create_model("resnet20");
  const std::string path = temp_dir("ckpt") + ".safetensors";
  CheckpointContents contents;
  contents.arch = "resnet20";
  save_checkpoint(path, *resnet, nullptr, contents);
  try {
    load_model_weights(read_safetensors(path), *lenet);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("features.0.weight"), std::string::npos) << msg;  // missing
    EXPECT_NE(msg.find("layer1.0.conv1.weight"), std::string::npos) << msg;  // unexpected
  }
  fs::remove(path);
}

TEST(Cli, BadFlagsAndBadFilesGiveClearErrorsAndNonZeroExit) {
  std::string out;
  EXPECT_EQ(run_cli("train --arch nosuchnet", &out), 2);
  EXPECT_NE(out.find("nosuchnet"), std::string::npos) << out;
  EXPECT_EQ(run_cli("train --epochs -3", &out), 2);
  EXPECT_EQ(run_cli("train --lr abc", &out), 2);
  EXPECT_EQ(run_cli("frobnicate", &out), 2);
  EXPECT_EQ(run_cli("eval --arch lenet5 --weights /nonexistent/w.safetensors", &out), 2);
  // A garbage weights file is read, rejected with its name, exit status 1.
  const std::string garbage = temp_dir("garbage") + ".safetensors";
  { std::ofstream(garbage) << "this is not a safetensors file at all"; }
  EXPECT_EQ(run_cli("eval --arch lenet5 --weights " + garbage, &out), 1);
  EXPECT_NE(out.find(garbage), std::string::npos) << out;
  EXPECT_NE(out.find("inq: error:"), std::string::npos) << out;
  fs::remove(garbage);
  // A missing dataset directory is named.
  EXPECT_EQ(run_cli("train --data /nonexistent/dir --epochs 1 --out " + temp_dir("nodata"), &out), 1);
  EXPECT_NE(out.find("/nonexistent/dir"), std::string::npos) << out;
  fs::remove_all(temp_dir("nodata"));
}

TEST(Cli, EvalPrintsAccuracyLineAppendsAResultsRowAndResumeKeepsTheConfig) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string dir = temp_dir("cli_eval");
  std::string out;
  ASSERT_EQ(run_cli("train --arch lenet5 --epochs 1 --train-limit 256 --test-limit 100 --threads 1 --out " + dir, &out), 0)
      << out;
  const std::string results = dir + "/eval.csv";
  ASSERT_EQ(run_cli("eval --arch lenet5 --weights " + dir + "/last.safetensors --test-limit 100 --results " + results,
                    &out),
            0)
      << out;
  EXPECT_NE(out.find(" * Acc@1 "), std::string::npos) << out;
  const std::string csv = read_file(results);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 2) << csv;

  // --resume takes the configuration from the checkpoint: --epochs may extend the run, a flag that
  // would change the result is refused with its name.
  const std::string last = dir + "/last.safetensors";
  EXPECT_EQ(run_cli("train --resume " + last + " --lr 0.5", &out), 1) << out;
  EXPECT_NE(out.find("--lr"), std::string::npos) << out;
  ASSERT_EQ(run_cli("train --resume " + last + " --epochs 2", &out), 0) << out;
  EXPECT_NE(out.find("resumed"), std::string::npos) << out;
  const std::string summary = read_file(dir + "/summary.csv");
  EXPECT_EQ(std::count(summary.begin(), summary.end(), '\n'), 3) << summary;  // header + epochs 1 and 2
  fs::remove_all(dir);
}
