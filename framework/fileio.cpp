#include "framework/fileio.h"


#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "framework/atomic_file.h"
#include "framework/error.h"
#include "framework/file_lock.h"

namespace inq {

void write_file_atomic(const std::string& path, const std::string& contents) {
  write_file_atomically(path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(contents.data()),
                                                       contents.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  INQ_CHECK(in.good(), "Given the file '{}', expected to open it for reading, but could not: {}", path,
            std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  INQ_CHECK(!in.bad(), "Given the file '{}', expected to read it, but reading failed", path);
  return buffer.str();
}

void append_line_atomic(const std::string& path, const std::string& line) {
  std::string contents = file_exists(path) ? read_file(path) : std::string();
  if (!contents.empty() && contents.back() != '\n') contents += '\n';
  write_file_atomic(path, contents + line + "\n");
}

void append_line_locked(const std::string& path, const std::string& line, const std::string& header) {
  const FileLock lock(path + ".lock");
  std::string contents = file_exists(path) ? read_file(path) : std::string();
  if (contents.empty() && !header.empty()) contents = header + "\n";
  if (!contents.empty() && contents.back() != '\n') contents += '\n';
  write_file_atomic(path, contents + line + "\n");
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

bool same_file(const std::string& a, const std::string& b) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) {
    const bool same = fs::equivalent(a, b, ec);
    if (!ec) return same;
  }
  const fs::path ca = fs::weakly_canonical(fs::absolute(a, ec), ec);
  const fs::path cb = fs::weakly_canonical(fs::absolute(b, ec), ec);
  return ca == cb;
}

void check_output_is_not_input(const std::string& output_flag, const std::string& output,
                               const std::vector<std::pair<std::string, std::string>>& inputs) {
  for (const auto& [flag, path] : inputs) {
    if (path.empty() || output.empty()) continue;
    INQ_CHECK(!same_file(output, path),
              "Given {} '{}' and {} '{}', expected an output that is not one of the command's inputs, but they are "
              "the same file (writing it would destroy the input)",
              output_flag, output, flag, path);
  }
}

}  // namespace inq
