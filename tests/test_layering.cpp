// The layering of the libraries (CMakeLists.txt: one library per top-level folder, each linking
// only the folders below it): no source or header includes a header of a folder above its own.
// The linker catches calls against the grain only when the calling object is linked in; this
// catches the include before anyone calls anything.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "framework/fileio.h"

namespace fs = std::filesystem;

namespace {

// Each folder and the folders it may include from (itself included).
const std::map<std::string, std::set<std::string>>& allowed_includes() {
  static const std::map<std::string, std::set<std::string>> allowed = {
      {"framework", {"framework"}},
      {"layers", {"framework", "layers"}},
      {"models", {"framework", "layers", "models"}},
      {"data", {"framework", "data"}},
      {"optim", {"framework", "layers", "optim"}},
      {"inq", {"framework", "layers", "optim", "inq"}},
      {"train", {"framework", "layers", "models", "data", "optim", "inq", "train"}},
      {"dist", {"framework", "dist"}},
      {"apps", {"framework", "layers", "models", "data", "optim", "inq", "train", "dist", "apps"}},
  };
  return allowed;
}

// The includes of `text` (a file of `folder`) that reach a project folder it may not include from.
std::vector<std::string> against_the_grain(const std::string& folder, const std::string& text) {
  static const std::regex include(R"re(#\s*include\s*"([a-z_]+)/[^"]+")re");
  const auto& allowed = allowed_includes();
  std::vector<std::string> bad;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), include); it != std::sregex_iterator(); ++it) {
    const std::string target = (*it)[1];
    if (allowed.count(target) && !allowed.at(folder).count(target)) bad.push_back(it->str());
  }
  return bad;
}

}  // namespace

TEST(Layering, TheCheckCatchesAnIncludeAgainstTheGrain) {
  EXPECT_EQ(against_the_grain("layers", "#include \"train/trainer.h\"\n#include \"framework/tensor.h\"\n"),
            std::vector<std::string>{"#include \"train/trainer.h\""});
  EXPECT_EQ(against_the_grain("data", "#  include \"models/registry.h\""),
            std::vector<std::string>{"#  include \"models/registry.h\""});
  EXPECT_TRUE(against_the_grain("train", "#include \"data/datasets.h\"\n#include <CLI/CLI.hpp>\n").empty());
}

TEST(Layering, NoFolderIncludesAFolderAboveIt) {
  int files = 0;
  for (const auto& [folder, allowed] : allowed_includes()) {
    const fs::path dir = fs::path(INQ_SOURCE_DIR) / folder;
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string ext = entry.path().extension().string();
      if (ext != ".h" && ext != ".cpp") continue;
      ++files;
      for (const std::string& bad : against_the_grain(folder, inq::read_file(entry.path().string())))
        ADD_FAILURE() << entry.path().string() << ": " << bad << " (" << folder << "/ may include only from its own "
                      << "folder and the folders below it; see CMakeLists.txt)";
    }
  }
  EXPECT_GT(files, 100);
}

// MPI stays behind framework/communicator.h: only dist/ includes <mpi.h>, so every other library
// (and the fuzz targets, which compile framework/ whole) builds and runs without it.
TEST(Layering, OnlyDistIncludesMpi) {
  static const std::regex mpi_include(R"re(#\s*include\s*<mpi\.h>)re");
  int dist_files = 0;
  for (const auto& [folder, allowed] : allowed_includes()) {
    for (const auto& entry : fs::directory_iterator(fs::path(INQ_SOURCE_DIR) / folder)) {
      const std::string ext = entry.path().extension().string();
      if (ext != ".h" && ext != ".cpp") continue;
      const bool includes = std::regex_search(inq::read_file(entry.path().string()), mpi_include);
      if (folder == "dist") dist_files += includes ? 1 : 0;
      else EXPECT_FALSE(includes) << entry.path().string() << " includes <mpi.h>; only dist/ may";
    }
  }
  EXPECT_GE(dist_files, 1);
}
