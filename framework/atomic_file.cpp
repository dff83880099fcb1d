#include "framework/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "framework/error.h"

namespace inq {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Closes the descriptor and removes the temporary file unless release() was called, so every
// early exit (throw) cleans up after itself.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!released_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // Closes explicitly: close() can report a deferred write error (e.g. NFS), which must not be lost.
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }
  void release() { released_ = true; }

 private:
  std::string path_;
  int fd_;
  bool released_ = false;
};

void write_all(const TempFile& file, const std::string& target, std::span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    // Bounded chunks: some kernels refuse single writes above ~2 GiB.
    const size_t chunk = std::min<size_t>(left, size_t(1) << 30);
    ssize_t n = ::write(file.fd(), p, chunk);
    if (n < 0 && errno == EINTR) continue;
    INQ_CHECK(
        n > 0,
        "Given the output file '{}', expected to write its temporary file '{}', but the write failed: {}",
        target, file.path(), errno_text(n < 0 ? errno : EIO));
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void fsync_directory(const std::filesystem::path& dir) {
  // Makes the rename itself durable. Best effort: some file systems refuse fsync on directories,
  // and by now the new file is complete and in place either way.
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_file_atomically(const std::string& path, const std::vector<std::span<const uint8_t>>& pieces) {
  INQ_CHECK(!path.empty(), "Given an empty output path, expected a file name");
  const std::filesystem::path target(path);
  INQ_CHECK(target.has_filename(),
            "Given the output path '{}', expected a file name, but it names a directory", path);

  // Same directory as the target, so rename() is atomic (no cross-device move). The name carries
  // the pid and a counter so concurrent writers never share a temporary file.
  static std::atomic<uint64_t> counter{0};
  int fd = -1;
  std::string temp;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    temp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  INQ_CHECK(fd >= 0,
            "Given the output file '{}', expected to create a temporary file next to it, but got: {}", path,
            errno_text(errno));
  TempFile file(temp, fd);

  for (const auto& piece : pieces) write_all(file, path, piece);
  INQ_CHECK(::fsync(file.fd()) == 0,
            "Given the output file '{}', expected to flush '{}' to disk, but got: {}", path, temp,
            errno_text(errno));
  INQ_CHECK(file.close() == 0, "Given the output file '{}', expected to close '{}', but got: {}", path, temp,
            errno_text(errno));
  INQ_CHECK(
      ::rename(temp.c_str(), path.c_str()) == 0,
      "Given the output file '{}', expected to rename the complete temporary file '{}' over it, but got: {}",
      path, temp, errno_text(errno));
  file.release();
  fsync_directory(target.parent_path());
}

}  // namespace inq
