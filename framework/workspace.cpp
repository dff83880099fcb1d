#include "framework/workspace.h"

#include <atomic>
#include <cstdlib>

#include "framework/error.h"

namespace inq {

namespace {
// Bytes held by every thread's workspaces together, now and at most (for memory reports).
std::atomic<int64_t> held_bytes{0}, peak_held_bytes{0};

void add_held(int64_t bytes) {
  const int64_t now = held_bytes.fetch_add(bytes) + bytes;
  int64_t peak = peak_held_bytes.load();
  while (now > peak && !peak_held_bytes.compare_exchange_weak(peak, now)) {
  }
}
}  // namespace

int64_t workspace_bytes() { return held_bytes.load(); }
int64_t peak_workspace_bytes() { return peak_held_bytes.load(); }

Workspace::~Workspace() { release(); }

float* Workspace::floats(int64_t count) {
  INQ_CHECK(count >= 0, "Given a workspace request for {} floats, expected a non-negative count", count);
  if (count > capacity_) {
    release();
    // Grow by at least half again so a slowly rising sequence of requests does not reallocate
    // every time.
    const int64_t want =
        round_up_to_line(count > capacity_ + capacity_ / 2 ? count : capacity_ + capacity_ / 2);
    void* p = std::aligned_alloc(64, static_cast<size_t>(want) * sizeof(float));
    INQ_CHECK(p != nullptr, "Given a workspace request for {} floats, expected an allocation, but it failed",
              want);
    data_ = static_cast<float*>(p);
    capacity_ = want;
    add_held(want * static_cast<int64_t>(sizeof(float)));
  }
  return data_;
}

void Workspace::release() {
  add_held(-capacity_ * static_cast<int64_t>(sizeof(float)));
  std::free(data_);
  data_ = nullptr;
  capacity_ = 0;
}

Workspace& thread_workspace() {
  thread_local Workspace workspace;
  return workspace;
}

Workspace& thread_operand_workspace() {
  thread_local Workspace workspace;
  return workspace;
}

}  // namespace inq
