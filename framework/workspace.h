#pragma once
// Scratch memory for kernels (im2col columns, gathered gradients): one growable, 64-byte aligned
// buffer per thread, reused from call to call so a convolution does not malloc on every forward.
// Contract: a kernel asks once per call for everything it needs and carves the buffer itself; the
// contents are undefined on entry and may be overwritten by the next kernel that runs on the same
// thread. So a buffer must not be held across a call into another op (ops never nest here).
#include <cstdint>

namespace inq {

class Workspace {
 public:
  Workspace() = default;
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // At least `count` floats, 64-byte aligned. Grows (dropping old contents) when too small.
  float* floats(int64_t count);
  int64_t capacity() const { return capacity_; }
  // Frees the memory (e.g. after the largest model has run).
  void release();

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

// The calling thread's workspace.
Workspace& thread_workspace();
// A second one, for an operand that a layer prepares and then hands to a kernel that carves
// thread_workspace() itself (a packed Winograd layer's filters, decoded and transformed for one
// call): one growable buffer instead of a tensor per layer shape, which the caching allocator would
// keep, one per shape, for the life of the process. Same contract otherwise.
Workspace& thread_operand_workspace();

// Bytes held by all threads' workspaces together: now, and the most at any time since the start.
int64_t workspace_bytes();
int64_t peak_workspace_bytes();

// Rounds a float count up to a whole number of 64-byte lines, so pieces carved one after another
// from a workspace stay 64-byte aligned.
inline int64_t round_up_to_line(int64_t floats) { return (floats + 15) / 16 * 16; }

}  // namespace inq
