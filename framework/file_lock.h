#pragma once
// Advisory locks between processes (flock(2); released by the kernel when a holder dies, even by
// kill -9). Two kinds:
//  - FileLock: waits for exclusive use of a resource shared by concurrent writers, e.g. a results
//    CSV that several `inq eval --results` append to (fileio.h append_line_locked);
//  - RunFolderLock: claims a run folder for one run, or refuses at once naming the holder.
// Neither is meant for network file systems without working flock.
#include <string>

namespace inq {

// Holds an exclusive flock on `lock_path` (created if needed, never removed: removing a lock file
// others may be waiting on would let two holders in) for its lifetime; waits for the lock.
class FileLock {
 public:
  explicit FileLock(const std::string& lock_path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

// The lock of a run folder: `<folder>/lock`, holding "pid <pid>\nhost <host>\nstarted <UTC time>\n"
// of the run that holds it, flock'ed for the run's life and removed when the run ends. A second
// process is refused with an inq::Error naming the folder and the holder. A lock file nobody holds
// (its run was killed: the kernel dropped the flock; on this host its pid is gone) is stale: one
// line on stderr says so and the new run takes it over. Within one process the lock is shared (a
// test may build a second Trainer on a folder while the first still exists).
class RunFolderLock {
 public:
  explicit RunFolderLock(const std::string& folder);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

  static std::string lock_path(const std::string& folder) { return folder + "/lock"; }

 private:
  std::string key_;
};

// Whether process `pid` exists on this host (kill(pid, 0) succeeds or fails with EPERM).
bool process_alive(long pid);
// This host's name.
std::string host_name();

}  // namespace inq
