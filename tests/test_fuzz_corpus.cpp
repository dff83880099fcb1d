// The committed fuzz corpora (tests/fuzz/corpus/<target>/), checked by the function the fuzz target
// runs on each input (tests/fuzz/fuzz_inputs.h): every valid-* file is accepted, every other file
// (invalid-* seeds, and inputs a fuzzer once crashed a parser with) is rejected with inq::Error.
// This keeps the seeds honest as the formats change, and runs the crash inputs under the normal and
// the sanitizer builds without needing clang.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "tests/fuzz/fuzz_inputs.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

using Parse = std::function<void(std::span<const uint8_t>)>;

// Every fuzz target by name (tests/fuzz/fuzz_<name>.cpp), with what it does to one input.
const std::map<std::string, Parse>& fuzz_targets() {
  static const std::map<std::string, Parse> targets = {
      {"safetensors", fuzz::safetensors_input},
      {"idx", fuzz::idx_input},
      {"checkpoint", fuzz::checkpoint_input},
      {"cifar10", fuzz::cifar10_input},
      {"image", fuzz::image_input},
  };
  return targets;
}

const fs::path kFuzzDir = fs::path(INQ_SOURCE_DIR) / "tests" / "fuzz";

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// libFuzzer's default maximum input length is 4096 bytes, or the largest seed's: tiny seeds keep
// the mutations small and fast.
constexpr uintmax_t kMaxSeedBytes = 4096;

}  // namespace

TEST(FuzzCorpus, EveryTargetHasACorpusAndAnEntryHere) {
  std::vector<std::string> sources;
  for (const auto& entry : fs::directory_iterator(kFuzzDir)) {
    const std::string file = entry.path().filename().string();
    if (file.rfind("fuzz_", 0) == 0 && entry.path().extension() == ".cpp") sources.push_back(file);
  }
  EXPECT_EQ(sources.size(), fuzz_targets().size());
  for (const std::string& file : sources) {
    const std::string name = file.substr(5, file.size() - 5 - 4);
    EXPECT_EQ(fuzz_targets().count(name), 1u) << file << " has no entry in fuzz_targets()";
    EXPECT_TRUE(fs::is_directory(kFuzzDir / "corpus" / name)) << file << " has no corpus/" << name;
  }
}

TEST(FuzzCorpus, ValidSeedsAreAcceptedAndTheRestRejectedWithOurError) {
  for (const auto& [name, parse] : fuzz_targets()) {
    int valid = 0, invalid = 0;
    for (const auto& entry : fs::directory_iterator(kFuzzDir / "corpus" / name)) {
      const std::string file = entry.path().filename().string();
      SCOPED_TRACE(name + "/" + file);
      EXPECT_LT(fs::file_size(entry.path()), kMaxSeedBytes);
      const std::vector<uint8_t> bytes = read_bytes(entry.path());
      if (file.rfind("valid-", 0) == 0) {
        ++valid;
        try {
          parse(bytes);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "rejected: " << e.what();
        }
      } else {
        ++invalid;
        try {
          parse(bytes);
          ADD_FAILURE() << "accepted, but only valid-* files should be";
        } catch (const Error&) {
          // the expected rejection
        } catch (const std::exception& e) {
          ADD_FAILURE() << "rejected with something other than inq::Error: " << e.what();
        }
      }
    }
    EXPECT_GE(valid, 2) << name;
    EXPECT_GE(invalid, 2) << name;
  }
}
