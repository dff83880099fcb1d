#include "framework/workspace.h"

#include <cstdlib>

#include "framework/error.h"

namespace inq {

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
  }
  return data_;
}

void Workspace::release() {
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
