// tools/convert_torchvision.py, run through Debian's /usr/bin/python3 (it has python3-torch): the
// converted file, read back by the project's read_safetensors, holds exactly the tensors torch
// saved; bad names, hashes and contents give a clear error, a non-zero exit and no output file.
// The .pth inputs come from tests/torch/make_pth_fixtures.py.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

const std::string kPython = "/usr/bin/python3";
const std::string kSourceDir = INQ_SOURCE_DIR;

// Runs a shell command; returns its exit status and its stdout + stderr.
int run(const std::string& command, std::string* output) {
  const std::string log = (fs::temp_directory_path() / ("inq_convert_log_" + std::to_string(::getpid()))).string();
  const int status = std::system((command + " > " + log + " 2>&1").c_str());
  *output = read_file(log);
  fs::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string hex_of(const void* data, size_t size) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

std::vector<std::string> sorted_entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The fixtures, written once for the whole suite into a temporary folder.
class ConvertTorchvision : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixtures_ = fs::temp_directory_path() / ("inq_convert_fixtures_" + std::to_string(::getpid()));
    fs::remove_all(fixtures_);
    fs::create_directories(fixtures_);
    const int status = run(kPython + " " + kSourceDir + "/tests/torch/make_pth_fixtures.py " + fixtures_.string(),
                           &fixture_log_);
    if (status == 0) {
      expected_ = nlohmann::json::parse(read_file((fixtures_ / "expected.json").string()));
    } else if (fixture_log_.find("No module named 'torch'") != std::string::npos) {
      missing_torch_ = "PyTorch is not importable by " + kPython +
                       "; install Debian's python3-torch with: tools/install_deps.sh";
    }
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(fixtures_, ec);
  }
  void SetUp() override {
    ASSERT_TRUE(missing_torch_.empty()) << missing_torch_;
    ASSERT_TRUE(expected_.is_object()) << "tests/torch/make_pth_fixtures.py failed:\n" << fixture_log_;
    work_ = fixtures_ / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(work_);
  }

  // The fixture file `key` copied into this test's folder (under `name` if given).
  fs::path input(const std::string& key, const std::string& name = "") const {
    const std::string file = expected_.at(key).at("file").get<std::string>();
    const fs::path to = work_ / (name.empty() ? file : name);
    fs::copy_file(fixtures_ / file, to);
    return to;
  }
  int convert(const std::string& args, std::string* output) const {
    return run(kPython + " " + kSourceDir + "/tools/convert_torchvision.py " + args, output);
  }
  // The converted file holds exactly fixture `key`'s tensors, in name order, with its metadata.
  void expect_converted(const std::string& key, const fs::path& source, const fs::path& out) const {
    const SafetensorsFile file = read_safetensors(out.string());
    const nlohmann::json& want = expected_.at(key).at("tensors");
    ASSERT_EQ(file.tensors.size(), want.size());
    std::vector<std::string> names;
    for (const auto& [name, t] : file.tensors) {
      SCOPED_TRACE(name);
      names.push_back(name);
      ASSERT_TRUE(want.contains(name));
      const nlohmann::json& w = want.at(name);
      EXPECT_EQ(stored_dtype_name(t.dtype), w.at("dtype").get<std::string>());
      EXPECT_EQ(t.shape, w.at("shape").get<Shape>());
      const size_t bytes = static_cast<size_t>(t.numel() * stored_dtype_size(t.dtype));
      const std::string got = t.dtype == StoredDtype::F32 ? hex_of(t.f32.data(), bytes) : hex_of(t.i64.data(), bytes);
      EXPECT_EQ(got, w.at("hex").get<std::string>());
    }
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end())) << "tensors are not packed in name order";
    EXPECT_EQ(file.metadata.at("source"), source.filename().string());
    std::string sha;
    ASSERT_EQ(run("sha256sum " + source.string(), &sha), 0);
    EXPECT_EQ(file.metadata.at("sha256"), sha.substr(0, 64));
  }

  static inline std::string missing_torch_, fixture_log_;
  static inline fs::path fixtures_;
  static inline nlohmann::json expected_;
  fs::path work_;
};

}  // namespace

TEST_F(ConvertTorchvision, StateDictConvertsExactlyIncludingI64ScalarsAndFloat64) {
  const fs::path pth = input("state_dict");
  const fs::path out = work_ / "out.safetensors";
  std::string log;
  ASSERT_EQ(convert(pth.string() + " " + out.string(), &log), 0) << log;
  expect_converted("state_dict", pth, out);
  EXPECT_NE(log.find("'extra.float64': torch.float64 -> float32"), std::string::npos) << log;
  // The header is padded to a multiple of 8, so the data buffer starts aligned.
  const std::string bytes = read_file(out.string());
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);
}

TEST_F(ConvertTorchvision, StateDictUnderAModelKeyConverts) {
  const fs::path pth = input("wrapped");
  std::string log;
  ASSERT_EQ(convert(pth.string() + " " + (work_ / "out.safetensors").string(), &log), 0) << log;
  expect_converted("wrapped", pth, work_ / "out.safetensors");
}

TEST_F(ConvertTorchvision, WrongHashPrefixFailsAndLeavesTheOldOutputAlone) {
  const fs::path pth = input("state_dict", "resnet18-00000000.pth");
  const fs::path out = work_ / "out.safetensors";
  write_file_atomic(out.string(), "the user's old file");
  std::string log;
  EXPECT_NE(convert(pth.string() + " " + out.string(), &log), 0);
  EXPECT_NE(log.find("expected its SHA-256 to start with 00000000"), std::string::npos) << log;
  EXPECT_EQ(read_file(out.string()), "the user's old file");
  EXPECT_EQ(sorted_entries(work_), (std::vector<std::string>{"out.safetensors", "resnet18-00000000.pth"}));
}

TEST_F(ConvertTorchvision, NameWithoutHashFailsUnlessNoHashCheckWhichWarns) {
  const fs::path pth = input("state_dict", "weights.pth");
  const fs::path out = work_ / "out.safetensors";
  std::string log;
  EXPECT_NE(convert(pth.string() + " " + out.string(), &log), 0);
  EXPECT_NE(log.find("has no hash prefix"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out));
  ASSERT_EQ(convert("--no-hash-check " + pth.string() + " " + out.string(), &log), 0) << log;
  EXPECT_NE(log.find("warning: --no-hash-check"), std::string::npos) << log;
  expect_converted("state_dict", pth, out);
}

TEST_F(ConvertTorchvision, BadContentsFailWithAReasonAndNoOutput) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not_a_tensor", "'note' is str"},
      {"float64_overflow", "beyond float32's range"},
      {"int32", "dtype torch.int32"},
  };
  for (const auto& [key, reason] : cases) {
    SCOPED_TRACE(key);
    const fs::path pth = input(key);
    const fs::path out = work_ / (key + ".safetensors");
    std::string log;
    EXPECT_NE(convert(pth.string() + " " + out.string(), &log), 0);
    EXPECT_NE(log.find(reason), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(out));
  }
  EXPECT_EQ(sorted_entries(work_).size(), cases.size()) << "a temporary file was left behind";
}

TEST_F(ConvertTorchvision, NeverUnpicklesArbitraryObjects) {
  // Full unpickling of this file would run `touch <marker>`.
  const fs::path pth = input("code_on_unpickle");
  const std::string marker = expected_.at("code_on_unpickle").at("marker").get<std::string>();
  std::string log;
  EXPECT_NE(convert(pth.string() + " " + (work_ / "out.safetensors").string(), &log), 0);
  EXPECT_NE(log.find("weights_only=True"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(fixtures_ / marker));
  EXPECT_FALSE(fs::exists(work_ / "out.safetensors"));
}

TEST_F(ConvertTorchvision, HelpSaysItNeverUnpicklesFully) {
  std::string log;
  ASSERT_EQ(convert("--help", &log), 0) << log;
  EXPECT_NE(log.find("weights_only=True"), std::string::npos) << log;
  EXPECT_NE(log.find("cannot run code"), std::string::npos) << log;
}
