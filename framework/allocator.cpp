#include "framework/allocator.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "framework/error.h"

namespace inq {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCacheByDefault = false;
#else
constexpr bool kCacheByDefault = true;
#endif

size_t round_to_line(size_t bytes) { return (std::max<size_t>(bytes, 1) + 63) / 64 * 64; }

size_t default_limit() {
  if (const char* mb = std::getenv("INQ_ALLOCATOR_CACHE_MB")) return static_cast<size_t>(std::stoull(mb)) << 20;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  const size_t physical = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
  return std::min<size_t>(physical / 4, size_t{8} << 30);
}

struct Cache {
  std::mutex mutex;
  std::multimap<size_t, void*> idle;  // block size (rounded) -> block
  size_t idle_bytes = 0;
  size_t limit = default_limit();
  bool on = kCacheByDefault;
  int64_t requests = 0, system_allocations = 0;
  size_t live_bytes = 0, peak_live = 0, peak_held = 0;

  void note_handed_out(size_t size) {
    live_bytes += size;
    peak_live = std::max(peak_live, live_bytes);
    peak_held = std::max(peak_held, live_bytes + idle_bytes);
  }

  void release_all() {
    for (auto& [size, p] : idle) std::free(p);
    idle.clear();
    idle_bytes = 0;
  }
};

// Never destroyed: tensors in static storage may be freed after every other static is gone.
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

}  // namespace

void* allocate_block(size_t bytes) {
  const size_t size = round_to_line(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    ++c.requests;
    if (auto it = c.idle.find(size); it != c.idle.end()) {
      void* p = it->second;
      c.idle.erase(it);
      c.idle_bytes -= size;
      c.note_handed_out(size);
      return p;
    }
    ++c.system_allocations;
    c.note_handed_out(size);
  }
  void* p = std::aligned_alloc(64, size);
  INQ_CHECK(p != nullptr, "Given a request for {} bytes, expected an allocation, but it failed", size);
  return p;
}

void free_block(void* p, size_t bytes) {
  if (p == nullptr) return;
  const size_t size = round_to_line(bytes);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.live_bytes -= size;
    if (c.on && c.idle_bytes + size <= c.limit) {
      c.idle.emplace(size, p);
      c.idle_bytes += size;
      return;
    }
  }
  std::free(p);
}

AllocatorStats allocator_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return {.requests = c.requests,
          .system_allocations = c.system_allocations,
          .idle_blocks = static_cast<int64_t>(c.idle.size()),
          .idle_bytes = static_cast<int64_t>(c.idle_bytes),
          .live_bytes = static_cast<int64_t>(c.live_bytes),
          .peak_live_bytes = static_cast<int64_t>(c.peak_live),
          .peak_held_bytes = static_cast<int64_t>(c.peak_held)};
}

void reset_allocator_counters() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.requests = c.system_allocations = 0;
  c.peak_live = c.live_bytes;
  c.peak_held = c.live_bytes + c.idle_bytes;
}

void release_cached_memory() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.release_all();
}

bool set_allocator_caching(bool on) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  const bool previous = c.on;
  c.on = on;
  if (!on) c.release_all();
  return previous;
}

bool allocator_caching() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.on;
}

}  // namespace inq
