#include "framework/fileio.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "framework/error.h"

namespace inq {

void write_file_atomic(const std::string& path, const std::string& contents) {
  // mkstemp gives a unique temporary name, so concurrent writers never share one.
  std::string tmpl = path + ".tmp.XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  INQ_CHECK(fd >= 0, "Given output path '{}', expected to create a temporary file beside it, but got: {}", path,
            std::strerror(errno));
  size_t written = 0;
  while (written < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmpl.c_str());
      throw Error(fmt::format("Given output path '{}', expected to write {} bytes, but the write failed: {}", path,
                              contents.size(), std::strerror(err)));
    }
    written += static_cast<size_t>(n);
  }
  // Regular files are created 0600 by mkstemp; outputs are ordinary user files.
  ::fchmod(fd, 0644);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    throw Error(fmt::format("Given output path '{}', expected to flush it to disk, but got: {}", path,
                            std::strerror(err)));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    throw Error(fmt::format("Given output path '{}', expected to rename the finished file into place, but got: {}",
                            path, std::strerror(err)));
  }
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

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

}  // namespace inq
