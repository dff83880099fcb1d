#pragma once
// Tensor storage allocator with a cache of idle blocks (after PyTorch's CUDA caching allocator, in
// its simplest form). A training step allocates the same buffer sizes in the same order every step
// (activations, their gradients, the parameters' gradients); returning each freed buffer to a cache
// keyed by its exact size and handing it out again on the next request of that size makes the
// steady state allocation-free: no malloc, and above all no fresh pages to fault in (on AlexNet,
// 26% of a training step was page faults from large buffers glibc had returned to the kernel with
// munmap and had to map again).
//
// Policy: exact sizes (rounded up to 64 bytes), so a periodic sequence of requests is served from
// the cache from its second period on: a block only ever serves requests of its own size, so the
// blocks of each size are as many as the most that were ever live at once. Idle blocks are kept up
// to a limit (INQ_ALLOCATOR_CACHE_MB, default a quarter of physical memory, at most 8 GiB); past it
// a freed block goes back to the system. Thread-safe (one mutex; a few hundred requests per step).
// Under AddressSanitizer the cache is off, so that use-after-free is still reported.
#include <cstddef>
#include <cstdint>

namespace inq {

struct AllocatorStats {
  int64_t requests = 0;            // blocks handed out since the start (or the last reset)
  int64_t system_allocations = 0;  // of those, the ones the cache could not serve (aligned_alloc)
  int64_t idle_blocks = 0;         // blocks in the cache now
  int64_t idle_bytes = 0;
  int64_t live_bytes = 0;       // handed out and not yet freed (rounded sizes)
  int64_t peak_live_bytes = 0;  // the most ever live at once
  int64_t peak_held_bytes = 0;  // the most ever live + idle at once: what the cache costs in memory
};

// 64-byte aligned memory for `bytes` bytes (at least one cache line), and its release. Blocks must
// go back through free_block with the size they were allocated with.
void* allocate_block(size_t bytes);
void free_block(void* p, size_t bytes);

AllocatorStats allocator_stats();
// Zeroes the counters (requests, system_allocations) and restarts both peaks from the current
// live and held bytes; the cache is unchanged.
void reset_allocator_counters();
// Returns every idle block to the system (e.g. after a large model is done).
void release_cached_memory();
// Turns the cache on or off (off: every free goes back to the system; the idle blocks are released).
// Returns the previous setting. Tests use it to compare both paths.
bool set_allocator_caching(bool on);
bool allocator_caching();

}  // namespace inq
