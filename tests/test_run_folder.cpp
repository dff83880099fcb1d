// The run folder protocol (docs/FORMATS_AND_RELIABILITY.md "Run folder protocol"), driven the hostile way:
// real processes racing on one folder or one results file, kill -9 before the first checkpoint, a
// checkpoint write that fails after its summary row was written (simulated, and on a full tmpfs),
// and resumed checkpoints whose counters disagree.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "app_testing.h"
#include "framework/error.h"
#include "framework/file_lock.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"
#include "framework/threading.h"
#include "train/trainer.h"

using namespace inq;
using namespace inq::test;
namespace fs = std::filesystem;

namespace {

// 4 batches of 64: well under a second per epoch.
const std::string kSlice = " --train-limit 256 --test-limit 100 -j 1 --threads 1 --eval-batch-size 100";

// Runs `inq args` with its output in `log` (so that several may run at once); returns the exit status.
int run_cli_logged(const std::string& args, const std::string& log) {
  const int status = std::system((std::string(INQ_CLI_PATH) + " " + args + " > " + log + " 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs every command at once, each in its own process; returns the statuses and outputs.
std::vector<std::pair<int, std::string>> run_together(const std::vector<std::string>& commands, const std::string& tag) {
  std::vector<std::pair<int, std::string>> out(commands.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < commands.size(); ++i)
    threads.emplace_back([&, i] {
      const std::string log = temp_path(tag + "_log" + std::to_string(i));
      out[i].first = run_cli_logged(commands[i], log);
      out[i].second = read_file(log);
      fs::remove(log);
    });
  for (auto& t : threads) t.join();
  return out;
}

// The (epoch, inq_step, phase) of every summary.csv row.
std::vector<std::string> summary_keys(const std::string& run) {
  std::istringstream in(read_file(run + "/summary.csv"));
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::string> keys;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; f.size() < 3 && std::getline(ss, cell, ',');) f.push_back(cell);
    keys.push_back(f.at(0) + "," + f.at(1) + "," + f.at(2));
  }
  return keys;
}

std::vector<uint8_t> bytes_of(const std::string& path) {
  const std::string s = read_file(path);
  return {s.begin(), s.end()};
}

}  // namespace

TEST(RunFolder, TwoTrainsOnOneFolderAtOnceOneRunsTheOtherIsRefusedNamingTheLock) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string run = temp_path("rf_two");
  const std::string cmd = "train --arch lenet5 --epochs 2 --out " + run + kSlice;
  const auto results = run_together({cmd, cmd}, "rf_two");
  const int ok = (results[0].first == 0) + (results[1].first == 0);
  ASSERT_EQ(ok, 1) << results[0].second << "\n----\n" << results[1].second;
  const std::string& loser = results[0].first == 0 ? results[1].second : results[0].second;
  EXPECT_NE(loser.find("inq: error:"), std::string::npos) << loser;
  EXPECT_NE(loser.find("locked by a running process"), std::string::npos) << loser;
  EXPECT_NE(loser.find(run), std::string::npos) << loser;
  EXPECT_NE(loser.find("pid "), std::string::npos) << loser;
  EXPECT_EQ(summary_keys(run), (std::vector<std::string>{"1,fp32,train", "2,fp32,train"}));
  EXPECT_FALSE(fs::exists(RunFolderLock::lock_path(run))) << "the lock is removed when the run ends";
  fs::remove_all(run);
}

TEST(RunFolder, ALockHeldInAnotherProcessIsRefusedAndAStaleOneIsTakenOver) {
  const std::string run = temp_path("rf_stale");
  fs::create_directories(run);
  const std::string lock = RunFolderLock::lock_path(run);
  // A stale lock: written by a process that is gone (nobody holds its flock).
  write_file_atomic(lock, "pid 2147483600\nhost " + host_name() + "\nstarted 2026-01-01T00:00:00Z\n");
  {
    RunFolderLock held(run);  // takes it over (and says so on stderr)
    EXPECT_NE(read_file(lock).find("pid " + std::to_string(::getpid())), std::string::npos) << read_file(lock);
    // Another process is refused while this one holds it.
    const pid_t child = ::fork();
    if (child == 0) {
      try {
        RunFolderLock second(run);
        _exit(0);
      } catch (const Error& e) {
        const std::string m = e.what();
        _exit(m.find("locked by a running process (pid " + std::to_string(::getppid())) != std::string::npos ? 3 : 4);
      }
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status;
  }
  EXPECT_FALSE(fs::exists(lock));
  fs::remove_all(run);
}

TEST(RunFolder, SixEvaluationsAppendingToOneResultsFileAtOnceLeaveSixRows) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string run = temp_path("rf_eval_run");
  ASSERT_EQ(run_cli_logged("train --arch lenet5 --epochs 1 --out " + run + kSlice, "/dev/null"), 0);
  const std::string shared = temp_path("rf_eval_shared") + ".csv";
  std::vector<std::string> commands;
  for (int i = 0; i < 6; ++i)
    commands.push_back("eval --arch lenet5 --weights " + run + "/last.safetensors --test-limit 100 --threads 1 -j 1 "
                       "--results " + shared);
  for (const auto& [status, output] : run_together(commands, "rf_eval")) EXPECT_EQ(status, 0) << output;
  const std::string csv = read_file(shared);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7) << csv;  // the header and six rows
  EXPECT_EQ(csv.rfind("arch,weights", 0), 0u) << csv;
  EXPECT_EQ(csv.find("arch,weights", 1), std::string::npos) << csv;
  fs::remove(shared);
  fs::remove(shared + ".lock");
  fs::remove_all(run);
}

TEST(RunFolder, AKillBeforeTheFirstCheckpointLeavesAFolderTheSameCommandStartsAnew) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string run = temp_path("rf_kill");
  const std::string log = temp_path("rf_kill_log");
  // Long enough that the kill lands in the first epoch.
  const std::string cmd = "train --arch lenet5 --epochs 1 --out " + run +
                          " --train-limit 8192 --test-limit 100 -j 1 --threads 1 --eval-batch-size 100";
  const pid_t child = ::fork();
  if (child == 0) {
    ::execl("/bin/sh", "sh", "-c", ("exec " + std::string(INQ_CLI_PATH) + " " + cmd + " > " + log + " 2>&1").c_str(),
            static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(run + "/config.json") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(fs::exists(run + "/config.json"));
  ASSERT_FALSE(fs::exists(run + "/last.safetensors")) << "killed too late: " << read_file(log);
  // What a write interrupted by the kill leaves: a temporary file of the dead process.
  const std::string temp = run + "/last.safetensors.tmp." + std::to_string(child) + ".0";
  write_file_atomic(temp, "half a checkpoint");
  std::string out;
  ASSERT_EQ(run_cli(cmd, &out), 0) << out;
  EXPECT_NE(out.find("holds no checkpoint"), std::string::npos) << out;
  EXPECT_NE(out.find("stale lock"), std::string::npos) << out;
  EXPECT_NE(out.find("temporary file(s) left by a writer that died"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(summary_keys(run), (std::vector<std::string>{"1,fp32,train"}));
  // Once it holds a checkpoint, the same command is refused.
  EXPECT_EQ(run_cli(cmd, &out), 1) << out;
  EXPECT_NE(out.find("already holds a run"), std::string::npos) << out;
  fs::remove(log);
  fs::remove_all(run);
}

TEST(RunFolder, ResumeDropsSummaryRowsTheCheckpointDoesNotCover) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig c = small_lenet5_config(temp_path("rf_truncate"), 256);
  c.data.test_limit = 100;
  c.run.epochs = 3;
  const std::string last = c.run.out + "/last.safetensors";
  const std::string saved = c.run.out + "/epoch2.safetensors";
  {
    Trainer t(c);
    t.fit(2);
    fs::copy_file(last, saved);
    t.fit(3);
  }
  // Epoch 3's row went in, its checkpoint did not (disk full, kill -9): the commit point is epoch 2.
  fs::rename(saved, last);
  TrainConfig r = c;
  r.run.resume = last;
  {
    Trainer t(r);
    t.fit();
  }
  EXPECT_EQ(summary_keys(c.run.out), (std::vector<std::string>{"1,fp32,train", "2,fp32,train", "3,fp32,train"}));
  fs::remove_all(c.run.out);
}

TEST(RunFolder, ResumeDropsAnInqQuantizationRowWhoseCheckpointFailed) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  const std::string base = temp_path("rf_inq_base");
  const std::string weights = train_fp32_for_inq(small_lenet5_config(base, 256));
  TrainConfig c = small_lenet5_config(temp_path("rf_inq"), 256);
  c.data.test_limit = 100;
  c.run.weights = weights;
  c.inq.bits = 5;
  c.inq.portions = {0.5, 1.0};
  c.inq.epochs_per_step = 1;
  const std::string last = c.run.out + "/last.safetensors";
  const std::string saved = c.run.out + "/epoch1.safetensors";
  {
    Trainer t(c);
    t.fit(1);  // step 1 and its re-training epoch
    fs::copy_file(last, saved);
    t.fit();  // step 2 (the last): its "quantized" and "bn_reestimated" rows, then checkpoints
  }
  fs::rename(saved, last);  // as if step 2's checkpoint never made it to disk
  TrainConfig r = c;
  r.run.resume = last;
  {
    Trainer t(r);
    t.fit();
  }
  const auto keys = summary_keys(c.run.out);
  std::vector<std::string> unique = keys;
  std::sort(unique.begin(), unique.end());
  EXPECT_EQ(std::unique(unique.begin(), unique.end()), unique.end()) << fmt::format("{}", fmt::join(keys, " | "));
  EXPECT_EQ(std::count(keys.begin(), keys.end(), "1,2,quantized"), 1) << fmt::format("{}", fmt::join(keys, " | "));
  fs::remove_all(c.run.out);
  fs::remove_all(base);
}

TEST(RunFolder, ACheckpointWriteFailingOnAFullDiskKeepsTheOldOneAndResumeWritesNoRowTwice) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string mnt = temp_path("rf_tmpfs");
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=8m") != 0) {
    fs::remove_all(mnt);
    GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "): the disk-full case needs one";
  }
  const std::string run = mnt + "/run";
  std::string out;
  ASSERT_EQ(run_cli("train --arch lenet5 --epochs 1 --out " + run + kSlice, &out), 0) << out;
  const auto epoch1 = bytes_of(run + "/last.safetensors");
  // Room for the summary row but not for another checkpoint's temporary file.
  uint64_t used = 0;
  for (const auto& e : fs::directory_iterator(run)) used += (e.file_size() + 4095) / 4096 * 4096;
  const uint64_t size = used + 4096 * 4 + epoch1.size() / 2 / 4096 * 4096;
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT, fmt::format("size={}", size).c_str()), 0)
      << std::strerror(errno);
  const std::string resume = "train --resume " + run + "/last.safetensors --epochs 3 --out " + run;
  EXPECT_EQ(run_cli(resume, &out), 1) << out;
  EXPECT_NE(out.find("last.safetensors"), std::string::npos) << out;
  EXPECT_EQ(bytes_of(run + "/last.safetensors"), epoch1) << "the old checkpoint must survive byte for byte";
  EXPECT_EQ(summary_keys(run), (std::vector<std::string>{"1,fp32,train", "2,fp32,train"}))
      << "epoch 2's row is written before its checkpoint";
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT, "size=16m"), 0) << std::strerror(errno);
  ASSERT_EQ(run_cli(resume, &out), 0) << out;
  EXPECT_NE(out.find("dropped 1 row"), std::string::npos) << out;
  EXPECT_EQ(summary_keys(run), (std::vector<std::string>{"1,fp32,train", "2,fp32,train", "3,fp32,train"}));
  ::umount(mnt.c_str());
  fs::remove_all(mnt);
}

// Without --out a resumed run continues in the folder that holds the checkpoint: a copy of a run
// folder resumes in the copy and leaves the original's files as they were (it used to write into
// the folder named in the checkpoint's configuration, the original's).
TEST(RunFolder, ResumingACopiedRunFolderWritesIntoTheCopyOnly) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string original = temp_path("rf_original"), copy = temp_path("rf_copy");
  fs::remove_all(copy);
  std::string out;
  ASSERT_EQ(run_cli("train --arch lenet5 --epochs 1 --out " + original + kSlice, &out), 0) << out;
  fs::copy(original, copy, fs::copy_options::recursive);
  const auto checkpoint = bytes_of(original + "/last.safetensors");
  const std::string summary = read_file(original + "/summary.csv");
  ASSERT_EQ(run_cli("train --resume " + copy + "/last.safetensors --epochs 2", &out), 0) << out;
  EXPECT_EQ(summary_keys(copy), (std::vector<std::string>{"1,fp32,train", "2,fp32,train"}));
  EXPECT_EQ(bytes_of(original + "/last.safetensors"), checkpoint);
  EXPECT_EQ(read_file(original + "/summary.csv"), summary);
  fs::remove_all(original);
  fs::remove_all(copy);
}

TEST(RunFolder, QuantizeRefusesToResumeAPlainTrainingCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string run = temp_path("rf_qplain");
  ASSERT_EQ(run_cli_logged("train --arch lenet5 --epochs 1 --out " + run + kSlice, "/dev/null"), 0);
  const std::string ckpt = run + "/last.safetensors";
  std::string out;
  EXPECT_EQ(run_cli("quantize --resume " + ckpt + " --out " + run + "_q", &out), 1) << out;
  EXPECT_NE(out.find("Given --resume '" + ckpt + "', expected a checkpoint of an INQ run, but it is plain training; "
                     "start INQ from it with --weights " + ckpt),
            std::string::npos)
      << out;
  EXPECT_FALSE(fs::exists(run + "_q/config.json"));
  fs::remove_all(run);
  fs::remove_all(run + "_q");
}

TEST(RunFolder, ResumeRefusesACheckpointWhoseCountersOrMomentumDisagree) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig c = small_lenet5_config(temp_path("rf_inconsistent"), 256);
  c.data.test_limit = 100;
  c.run.epochs = 1;
  { Trainer t(c); t.fit(); }
  const SafetensorsFile good = read_safetensors(c.run.out + "/last.safetensors");
  const std::string bad = c.run.out + "/bad.safetensors";
  auto expect_refused = [&](const SafetensorsFile& file, const std::string& what) {
    write_safetensors(bad, file.tensors, file.metadata);
    TrainConfig r = c;
    r.run.resume = bad;
    r.run.epochs = 100;
    try {
      Trainer t(r);
      ADD_FAILURE() << "resumed an inconsistent checkpoint; expected: " << what;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(bad), std::string::npos) << m;
      EXPECT_NE(m.find(what), std::string::npos) << m;
    }
  };
  auto with_state = [&](auto edit) {
    SafetensorsFile f = good;
    auto state = nlohmann::json::parse(f.metadata.at("training_state"));
    edit(state);
    f.metadata["training_state"] = state.dump();
    return f;
  };
  SafetensorsFile no_momentum = good;
  const auto first_buffer = std::find_if(good.tensors.begin(), good.tensors.end(), [](const auto& t) {
    return t.first.rfind("optimizer.", 0) == 0 && t.first.ends_with(".momentum_buffer");
  });
  ASSERT_NE(first_buffer, good.tensors.end());
  const std::string dropped = first_buffer->first;
  std::erase_if(no_momentum.tensors, [&](const auto& t) { return t.first == dropped; });
  expect_refused(no_momentum, "but 1 are missing (first: '" + dropped + "')");
  expect_refused(with_state([](auto& s) { s["iteration"] = 3; }), "expected iteration = epoch x batches per epoch = 1 x 4 = 4, but it says iteration 3");
  expect_refused(with_state([](auto& s) { s["epoch"] = 50; s["iteration"] = 200; }),
                 "expected its epoch to be at most the 1 epoch(s) of its configuration, but it claims epoch 50");
  fs::remove_all(c.run.out);
}
