#pragma once
// Helpers shared by the tests that drive the training driver and the `inq` tool end to end on a
// slice of Fashion-MNIST.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "train/train_config.h"
#include "train/trainer.h"
#include "framework/fileio.h"
#include "layers/module.h"

namespace inq::test {

inline bool have_fashion_mnist() {
  return std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz");
}

// A fresh (removed) path in the temp directory, unique per test process.
inline std::string temp_path(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / ("inq_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

// LeNet-5 on a few hundred training images: seconds per epoch, one compute thread's worth.
inline TrainConfig small_lenet5_config(const std::string& out, int64_t train_limit) {
  TrainConfig c;
  c.run.arch = "lenet5";
  c.data.batch_size = 64;
  c.data.eval_batch_size = 100;
  c.data.train_limit = train_limit;
  c.data.test_limit = 200;
  c.data.workers = 1;
  c.run.print_freq = 1000;
  c.run.out = out;
  return c;
}

// Trains the FP32 run `c` for one epoch at lr 0.05 and returns its last checkpoint: the small
// pre-trained model the INQ tests quantize.
inline std::string train_fp32_for_inq(TrainConfig c) {
  c.run.epochs = 1;
  c.optim.lr = 0.05;
  Trainer t(c);
  t.fit();
  return c.run.out + "/last.safetensors";
}

// Every parameter and buffer's values, for bit-for-bit comparisons.
inline std::vector<std::vector<float>> values_of(const Module& m) {
  std::vector<std::vector<float>> out;
  for (auto& t : m.state_dict()) out.push_back(t.tensor.to_vector());
  return out;
}

// Runs the built `inq` tool with `args`; returns its exit status and its stdout + stderr.
// `env_args`: arguments of env(1) before the tool, e.g. "OPENBLAS_CORETYPE=Haswell" or "-u NAME".
inline int run_cli(const std::string& args, std::string* output = nullptr, const std::string& env_args = "") {
  const std::string log = temp_path("cli_log") + ".txt";
  const std::string prefix = env_args.empty() ? "" : "env " + env_args + " ";
  const int status = std::system((prefix + INQ_CLI_PATH + " " + args + " > " + log + " 2>&1").c_str());
  if (output) *output = read_file(log);
  std::filesystem::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace inq::test
