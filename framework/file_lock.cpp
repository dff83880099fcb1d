#include "framework/file_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

#include "framework/error.h"

namespace inq {

namespace {

std::string read_fd(int fd) {
  std::string out;
  char buf[512];
  off_t offset = 0;
  while (true) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    offset += n;
  }
  return out;
}

// "pid 12\nhost h\nstarted t\n" as "pid 12, host h, started t".
std::string one_line(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '\n') {
      out += ", ";
    } else if (static_cast<unsigned char>(ch) >= 0x20) {
      out += ch;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ',')) out.pop_back();
  return out;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The run folder locks this process holds, by lock path: the descriptor and how many owners share it.
struct HeldLock {
  int fd = -1;
  int owners = 0;
  pid_t pid = -1;  // a forked child inherits the table, not the ownership
};
std::mutex& held_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, HeldLock>& held_locks() {
  static std::map<std::string, HeldLock> locks;
  return locks;
}

}  // namespace

bool process_alive(long pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

FileLock::FileLock(const std::string& lock_path) {
  fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  INQ_CHECK(fd_ >= 0, "Given the lock file '{}', expected to open it, but got: {}", lock_path, std::strerror(errno));
  int rc;
  while ((rc = ::flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {
  }
  if (rc != 0) {
    const int err = errno;
    ::close(fd_);
    throw Error(fmt::format("Given the lock file '{}', expected to lock it, but got: {}", lock_path, std::strerror(err)));
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

RunFolderLock::RunFolderLock(const std::string& folder) : key_(lock_path(folder)) {
  std::lock_guard<std::mutex> guard(held_mutex());
  HeldLock& held = held_locks()[key_];
  if (held.owners > 0 && held.pid == ::getpid()) {
    ++held.owners;
    return;
  }
  held_locks().erase(key_);
  const std::string& path = key_;
  for (int attempt = 0;; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    INQ_CHECK(fd >= 0, "Given run folder '{}', expected to create its lock file '{}', but got: {}", folder, path,
              std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      std::string holder;
      if (err == EWOULDBLOCK) {
        // The holder writes its identity right after locking: give it a moment.
        for (int i = 0; i < 20 && (holder = read_fd(fd)).empty(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ::close(fd);
      INQ_CHECK(err != EWOULDBLOCK,
                "Given run folder '{}', expected no other run using it, but it is locked by a running process ({}; lock "
                "file '{}'); wait for that run to end or choose another --out",
                folder, holder.empty() ? "holder not yet written" : one_line(holder), path);
      throw Error(fmt::format("Given run folder '{}', expected to lock '{}', but got: {}", folder, path,
                              std::strerror(err)));
    }
    // The previous holder may have removed the file between our open and our flock: then we hold a
    // lock on a file nobody else can see, and must start over with the file now at the path.
    struct stat by_fd {}, by_path {};
    if (::fstat(fd, &by_fd) != 0 || ::stat(path.c_str(), &by_path) != 0 || by_fd.st_ino != by_path.st_ino ||
        by_fd.st_dev != by_path.st_dev) {
      ::close(fd);
      INQ_CHECK(attempt < 100, "Given run folder '{}', expected to lock '{}', but it kept being replaced", folder, path);
      continue;
    }
    if (const std::string previous = read_fd(fd); !previous.empty()) {
      // Nobody holds the flock, so the run that wrote this is gone (killed: the kernel released its lock).
      long pid = -1;
      std::string host;
      if (const auto p = previous.find("pid "); p != std::string::npos) pid = std::strtol(previous.c_str() + p + 4, nullptr, 10);
      if (const auto h = previous.find("host "); h != std::string::npos)
        host = previous.substr(h + 5, previous.find('\n', h) == std::string::npos ? std::string::npos
                                                                                    : previous.find('\n', h) - h - 5);
      const char* why = host != host_name() ? "written on another host, and not held"
                        : process_alive(pid)  ? "its pid is alive but does not hold the lock"
                                              : "its process is gone";
      fmt::print(stderr, "inq: note: run folder '{}' has a stale lock ({}: {}); taking it over\n", folder,
                 one_line(previous), why);
    }
    const std::string contents =
        fmt::format("pid {}\nhost {}\nstarted {}\n", static_cast<long>(::getpid()), host_name(), utc_now());
    const bool written = ::ftruncate(fd, 0) == 0 &&
                         ::pwrite(fd, contents.data(), contents.size(), 0) == static_cast<ssize_t>(contents.size());
    if (!written) {
      const int err = errno;
      ::unlink(path.c_str());
      ::close(fd);
      throw Error(fmt::format("Given run folder '{}', expected to write its lock file '{}', but got: {}", folder, path,
                              std::strerror(err)));
    }
    (void)::fsync(fd);
    held_locks()[key_] = HeldLock{.fd = fd, .owners = 1, .pid = ::getpid()};
    return;
  }
}

RunFolderLock::~RunFolderLock() {
  std::lock_guard<std::mutex> guard(held_mutex());
  auto it = held_locks().find(key_);
  if (it == held_locks().end() || it->second.pid != ::getpid() || --it->second.owners > 0) return;
  // Removed while still locked, then released: a process waiting on the old file sees it replaced.
  ::unlink(key_.c_str());
  ::close(it->second.fd);
  held_locks().erase(it);
}

}  // namespace inq
