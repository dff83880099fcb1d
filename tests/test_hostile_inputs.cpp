// Hostile inputs to the built `inq` tool (docs/FORMATS_AND_RELIABILITY.md): bad files given as
// --weights, --resume, --input or --data, checkpoints whose metadata was tampered with, packed
// models with a bad codebook, inputs of a size the architecture cannot take, and bad flags. Every
// case must be refused (exit status != 0), and the FIRST line of the error must name the file or
// flag the user gave, so that the user knows where to look.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "app_testing.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/json_value.h"
#include "framework/safetensors.h"
#include "framework/threading.h"
#include "image_testing.h"
#include "models/registry.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

using test::have_fashion_mnist;
using test::run_cli;

const std::string kSlice = " --train-limit 128 --test-limit 100 -j 1 --threads 1 --eval-batch-size 100";
const std::string kEvalSlice = " --test-limit 100 --threads 1";

// A folder for this test's files, created once per process.
std::string dir() {
  static const std::string d = [] {
    const std::string p = test::temp_path("hostile");
    fs::create_directories(p);
    return p;
  }();
  return d;
}
std::string path(const std::string& name) { return dir() + "/" + name; }

// The line the tool's refusal starts with: the "inq: error: " line, or the first line of the
// output for a flag error (exit status 2, CLI11's message).
std::string first_error_line(const std::string& out) {
  size_t at = out.find("inq: error: ");
  if (at == std::string::npos) at = 0;
  return out.substr(at, out.find('\n', at) - at);
}

// Runs `args` and expects a refusal whose first line holds every needle.
void expect_refusal(const std::string& what, const std::string& args, const std::vector<std::string>& needles) {
  std::string out;
  const int status = run_cli(args, &out);
  EXPECT_NE(status, 0) << what << ": " << out;
  const std::string line = first_error_line(out);
  for (const std::string& needle : needles)
    EXPECT_NE(line.find(needle), std::string::npos) << what << ": '" << needle << "' not in the first line: " << line
                                                   << "\nwhole output:\n" << out;
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  write_file_atomic(path(name), bytes);
  return path(name);
}

std::string write_tensors(const std::string& name, const std::vector<std::pair<std::string, Tensor>>& tensors,
                          const std::map<std::string, std::string>& metadata = {}) {
  write_safetensors(path(name), tensors, metadata);
  return path(name);
}

// A copy of `source` with metadata[key] replaced by edit(old value).
std::string tamper(const std::string& source, const std::string& name, const std::string& key,
                   const std::function<std::string(const std::string&)>& edit) {
  SafetensorsFile f = read_safetensors(source);
  f.metadata[key] = edit(f.metadata[key]);
  write_safetensors(path(name), f.tensors, f.metadata);
  return path(name);
}

// A copy of `source` whose first tensor with `part` in its name is replaced by three zeros.
std::string with_bad_tensor(const std::string& source, const std::string& name, const std::string& part) {
  SafetensorsFile f = read_safetensors(source);
  for (auto& [tensor_name, t] : f.tensors) {
    if (tensor_name.find(part) == std::string::npos) continue;
    t = StoredTensor::from_tensor(Tensor::zeros({3}));
    break;
  }
  write_safetensors(path(name), f.tensors, f.metadata);
  return path(name);
}

std::string truncated_copy(const std::string& source, const std::string& name) {
  const std::string bytes = read_file(source);
  return write_bytes(name, bytes.substr(0, bytes.size() / 2));
}

// An IDX file of unsigned bytes with `dims` (big-endian): byte i is i % `modulus` (0: all zero).
void write_idx(const std::string& file, const std::vector<uint32_t>& dims, uint32_t modulus) {
  std::string bytes = {0, 0, 8, static_cast<char>(dims.size())};
  size_t n = 1;
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((d >> shift) & 0xff));
    n *= d;
  }
  for (size_t i = 0; i < n; ++i) bytes.push_back(static_cast<char>(modulus == 0 ? 0 : i % modulus));
  write_file_atomic(file, bytes);
}

// A Fashion-MNIST-like folder of 10 images of size x size, in 10 classes; constant images are all black.
std::string idx_folder(const std::string& name, uint32_t size, bool constant = false) {
  const std::string d = path(name);
  fs::create_directories(d);
  for (const char* split : {"train", "t10k"}) {
    write_idx(d + "/" + split + "-images-idx3-ubyte", {10, size, size}, constant ? 0 : 251);
    write_idx(d + "/" + split + "-labels-idx1-ubyte", {10}, 10);
  }
  return d;
}

// A small trained LeNet-5 checkpoint and a finished INQ checkpoint made from it, once per process.
const std::string& fp32_checkpoint() {
  static const std::string p = [] {
    TrainConfig c = test::small_lenet5_config(path("fp32"), /*train_limit=*/128);
    c.data.test_limit = 100;
    return test::train_fp32_for_inq(c);
  }();
  return p;
}
const std::string& inq_checkpoint() {
  static const std::string p = [] {
    std::string out;
    const int status = run_cli("quantize --arch lenet5 --weights " + fp32_checkpoint() +
                                   " --bits 4 --portions 0.5,1 --epochs-per-step 1 --bn-batches 1" + kSlice +
                                   " --out " + path("inq"),
                               &out);
    EXPECT_EQ(status, 0) << out;
    return path("inq") + "/final.safetensors";
  }();
  return p;
}

}  // namespace

TEST(HostileInputs, BadFilesNameTheFileOnTheFirstLine) {
  const std::string garbage = write_bytes("garbage.safetensors", "this is not a safetensors file at all");
  const std::string short_file = write_bytes("short.safetensors", "abc");
  const std::string ok_input = write_tensors("input28.safetensors", {{"input", Tensor::zeros({1, 1, 28, 28})}});
  const std::string truncated_input = truncated_copy(ok_input, "input_truncated.safetensors");
  const std::string out = path("out.safetensors");
  const std::string run = "run --arch lenet5 --num-classes 10 --output " + out;

  expect_refusal("garbage --weights for run", run + " --input " + ok_input + " --weights " + garbage, {garbage});
  expect_refusal("short --weights for run", run + " --input " + ok_input + " --weights " + short_file, {short_file});
  expect_refusal("truncated --input", run + " --input " + truncated_input + " --weights " + garbage,
                 {truncated_input});
  expect_refusal("garbage --input", run + " --input " + garbage + " --weights " + garbage, {garbage});
  expect_refusal("garbage --weights for eval", "eval --arch lenet5 --weights " + garbage, {garbage});

  // Weights that lack the model's tensors: named, and no note about channels (nothing to do with them).
  const std::string unrelated = write_tensors("unrelated.safetensors", {{"w", Tensor::zeros({2})}});
  std::string log;
  EXPECT_EQ(run_cli(run + " --input " + ok_input + " --weights " + unrelated, &log), 1) << log;
  EXPECT_NE(first_error_line(log).find(unrelated), std::string::npos) << log;
  EXPECT_EQ(log.find("input channels"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out));
}

TEST(HostileInputs, InputSizesTheArchitectureCannotTakeAreRefusedBeforeTheForwardPass) {
  const std::string weights = write_tensors("w.safetensors", {{"w", Tensor::zeros({2})}});
  struct Case {
    std::string arch;
    int64_t size;
    std::string needs;
  };
  const std::vector<Case> cases = {
      {"lenet5", 4, "28x28 images"}, {"lenet5", 1, "28x28 images"},  {"lenet5", 32, "28x28 images"},
      {"alexnet", 32, "63x63 images or larger"}, {"vgg16", 16, "32x32 images or larger"},
      {"googlenet", 8, "15x15 images or larger"},
  };
  for (const auto& c : cases) {
    const std::string input = write_tensors(fmt::format("input_{}_{}.safetensors", c.arch, c.size),
                                            {{"input", Tensor::zeros({1, 3, c.size, c.size})}});
    expect_refusal(c.arch + " on " + std::to_string(c.size),
                   "run --arch " + c.arch + " --num-classes 10 --weights " + weights + " --input " + input +
                       " --output " + path("out.safetensors"),
                   {"--input '" + input + "'", c.needs});
  }
}

TEST(HostileInputs, ImageFolderCropsTooSmallForTheArchitectureNameDataAndImageSize) {
  const std::string images = path("images");
  test::write_image_folder(images + "/train", {"a", "b"}, 2, 14, 40, 1);
  test::write_image_folder(images + "/val", {"a", "b"}, 1, 14, 40, 2);
  expect_refusal("alexnet on 16x16 crops",
                 "train --arch alexnet --epochs 1 -b 2 --threads 1 -j 1 --image-size 16 --resize-size 20 --out " +
                     path("alexnet_run") + " --data " + images,
                 {"--data '" + images + "'", "--image-size 16", "63x63 images or larger"});
}

TEST(HostileInputs, BadFlagsNameTheFlag) {
  expect_refusal("unknown arch", "train --arch nosuchnet", {"--arch"});
  expect_refusal("negative epochs", "train --arch lenet5 --epochs -1", {"--epochs"});
  expect_refusal("zero batch size", "train --arch lenet5 -b 0", {"--batch-size"});
  expect_refusal("bits out of range", "quantize --arch lenet5 --bits 1 --weights /etc/hostname", {"--bits"});
  expect_refusal("missing --weights file", "eval --arch lenet5 --weights " + path("nonexistent.safetensors"),
                 {"--weights"});
}

TEST(HostileInputs, BadCheckpointsNameTheCheckpoint) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);
  const std::string ckpt = fp32_checkpoint();
  const std::string resume = "train --out " + path("resumed") + " --resume ";

  const std::string truncated = truncated_copy(ckpt, "truncated.safetensors");
  expect_refusal("truncated --resume", resume + truncated, {truncated});
  const std::string garbage = write_bytes("garbage_ckpt.safetensors", std::string(64, '\x7f'));
  expect_refusal("garbage --resume", resume + garbage, {garbage});
  const std::string plain = write_tensors("plain.safetensors", {{"w", Tensor::zeros({2})}});
  expect_refusal("weights file as --resume", resume + plain, {plain});

  const std::string epochs = tamper(ckpt, "bad_epochs.safetensors", "config", [](const std::string& s) {
    nlohmann::json j = nlohmann::json::parse(s);
    j["epochs"] = -3;
    return j.dump();
  });
  expect_refusal("stored epochs out of range", resume + epochs, {epochs, "its stored configuration has epochs"});
  const std::string config_json = tamper(ckpt, "bad_config.safetensors", "config",
                                         [](const std::string& s) { return s.substr(0, s.size() / 2); });
  expect_refusal("config not JSON", resume + config_json, {config_json});
  const std::string unknown_key = tamper(ckpt, "unknown_key.safetensors", "config", [](const std::string& s) {
    nlohmann::json j = nlohmann::json::parse(s);
    j["surprise"] = 1;
    return j.dump();
  });
  expect_refusal("unknown key in the stored config", resume + unknown_key, {unknown_key});
  const std::string arch = tamper(ckpt, "bad_arch.safetensors", "arch", [](const std::string&) { return "nosuchnet"; });
  expect_refusal("unknown arch in the checkpoint", resume + arch, {arch, "'arch' metadata"});
  const std::string state = tamper(ckpt, "bad_state.safetensors", "training_state", [](const std::string& s) {
    nlohmann::json j = nlohmann::json::parse(s);
    j.erase("generator");
    return j.dump();
  });
  expect_refusal("incomplete training state", resume + state, {state});
  const std::string momentum = with_bad_tensor(ckpt, "bad_momentum.safetensors", "momentum_buffer");
  expect_refusal("momentum buffer of the wrong shape", resume + momentum, {momentum});
  const std::string weight = with_bad_tensor(ckpt, "bad_weight.safetensors", "model.");
  expect_refusal("model tensor of the wrong shape", resume + weight, {weight});

  // A LeNet-5 checkpoint given to another architecture.
  expect_refusal("checkpoint of another arch", "eval --arch resnet20 --weights " + ckpt + kEvalSlice, {ckpt});
  expect_refusal("a flag the resumed run cannot change", resume + ckpt + " --lr 0.5", {"--resume"});

  // Images of a size LeNet-5 cannot take.
  const std::string big = idx_folder("idx32", 32);
  expect_refusal("32x32 IDX images for eval", "eval --arch lenet5 --weights " + ckpt + " --data " + big,
                 {"--data '" + big + "'", "28x28"});
  const std::string black = idx_folder("idx_black", 28, /*constant=*/true);
  expect_refusal("constant images", "eval --arch lenet5 --weights " + ckpt + " --data " + black,
                 {"--data '" + black + "'"});
  expect_refusal("32x32 IDX images for train", "train --arch lenet5 --epochs 1 --out " + path("idx_run") +
                 " --data " + big, {"--data '" + big + "'", "28x28"});
}

TEST(HostileInputs, BadInqStateAndCodebooksNameTheFile) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);
  const std::string ckpt = inq_checkpoint();
  const std::string resume = "quantize --out " + path("inq_resumed") + " --resume ";

  // The INQ state says 5 bits while the stored config says 4: both come from the file.
  const std::string bits = tamper(ckpt, "inq_bits.safetensors", "inq_state", [](const std::string& s) {
    nlohmann::json j = nlohmann::json::parse(s);
    j["bits"] = 5;
    return j.dump();
  });
  std::string out;
  EXPECT_NE(run_cli(resume + bits, &out), 0) << out;
  EXPECT_NE(first_error_line(out).find("--resume '" + bits + "'"), std::string::npos) << out;
  EXPECT_NE(out.find("the options stored in the checkpoint's config"), std::string::npos) << out;
  EXPECT_EQ(out.find("this run's options"), std::string::npos) << out;

  const std::string mask = with_bad_tensor(ckpt, "inq_mask.safetensors", "inq_mask");
  expect_refusal("INQ mask of the wrong shape", resume + mask, {mask});
  expect_refusal("plain checkpoint to quantize --resume", resume + fp32_checkpoint(), {fp32_checkpoint()});
  expect_refusal("INQ checkpoint to train --resume", "train --out " + path("train_resumed") + " --resume " + ckpt,
                 {ckpt});
  const std::string not_json =
      tamper(ckpt, "inq_json.safetensors", "inq_state", [](const std::string&) { return "{\"format\": "; });
  expect_refusal("INQ state not JSON", resume + not_json, {not_json});

  // A codebook whose n2 does not follow from n1 and the bits, in the checkpoint and in a packed model.
  const std::string codebook = tamper(ckpt, "inq_codebook.safetensors", "inq_state", [](const std::string& s) {
    nlohmann::json j = nlohmann::json::parse(s);
    for (auto& t : j["tensors"]) t["n2"] = t["n2"].get<int>() - 1;
    return j.dump();
  });
  expect_refusal("bad codebook in a checkpoint (pack)", "pack " + codebook + " -o " + path("p.safetensors"),
                 {codebook});
  expect_refusal("bad codebook in a checkpoint (verify)", "verify " + codebook, {codebook});

  const std::string packed = path("packed.safetensors");
  ASSERT_EQ(run_cli("pack " + ckpt + " -o " + packed, &out), 0) << out;
  const std::string bad_packed = tamper(packed, "bad_packed.safetensors", "quantized", [](const std::string& s) {
    nlohmann::json j = nlohmann::json::parse(s);
    for (auto& t : j) t["n2"] = t["n2"].get<int>() - 1;
    return j.dump();
  });
  expect_refusal("bad codebook in a packed model (unpack)", "unpack " + bad_packed + " -o " + path("u.safetensors"),
                 {bad_packed});
  expect_refusal("bad codebook in a packed model (verify)", "verify " + bad_packed, {bad_packed});
  expect_refusal("bad codebook in a packed model (eval)", "eval --arch lenet5 --weights " + bad_packed + kEvalSlice,
                 {bad_packed});
}

TEST(HostileInputs, CleanUp) { fs::remove_all(dir()); }

// models/registry.h input_size_rule is what a forward pass takes: each architecture runs at its
// smallest accepted size, and one pixel less fails inside the model (which check_input_size spares
// the user).
TEST(HostileInputs, InputSizeRulesMatchWhatTheModelsTake) {
  for (const std::string arch : {"lenet5", "resnet20", "googlenet", "resnet18", "alexnet", "vgg16"}) {
    const InputSizeRule rule = input_size_rule(arch);
    const int64_t channels = arch == "lenet5" ? 1 : 3;
    auto model = create_model(arch, inference_options({.num_classes = 10, .in_channels = channels}));
    model->eval();
    NoGradGuard no_grad;
    EXPECT_NO_THROW(model->forward(Tensor::zeros({1, channels, rule.size, rule.size}))) << arch;
    if (rule.size > 1) {
      EXPECT_THROW(model->forward(Tensor::zeros({1, channels, rule.size - 1, rule.size - 1})), Error) << arch;
      EXPECT_THROW(check_input_size(arch, rule.size - 1, rule.size, "--input 'x'"), Error) << arch;
    }
    EXPECT_NO_THROW(check_input_size(arch, rule.size, rule.size, "--input 'x'")) << arch;
    if (rule.exact) {
      EXPECT_THROW(check_input_size(arch, rule.size + 1, rule.size, "--input 'x'"), Error) << arch;
    }
  }
}
