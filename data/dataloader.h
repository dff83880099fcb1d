#pragma once
// A batching, shuffling, multi-threaded prefetching loader over a Dataset.
//
// Determinism: an epoch's example order is the identity, or (shuffle) a Fisher-Yates shuffle drawn
// from a Generator seeded from (seed, epoch). Each example is loaded with
// Dataset::get_with_generator and then transformed, both drawing from one Generator seeded from
// (seed, epoch, position of the example in the epoch's order). So the batches depend only on
// (dataset, options, epoch), never on the number of workers or thread timing, and a run resumed
// with start_epoch(epoch, k) sees exactly the batches k, k+1, ... of an uninterrupted epoch.
//
// Threads: with workers = 0 each batch is built on the calling thread inside next(). With
// workers > 0, that many std::threads build batches ahead of the consumer (at most
// prefetch_batches batches, counting the one next() waits for, are built or ready at a time; the
// memory bound), and next() delivers them in order, whichever worker finishes first. The
// workers call only Dataset::get_with_generator and the transforms (no OpenMP, no BLAS); image
// decoding happens there, so it runs on the workers. An exception thrown while
// building a batch is rethrown by the next() that would have returned that batch; the epoch then
// ends (later next() calls return false until start_epoch). Starting a new epoch mid-epoch, or
// destroying the loader, abandons the batches in flight: the destructor waits only for batches
// already being built, never for the rest of the epoch.
//
// A DataLoader is used from one consumer thread; the Dataset must outlive it.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "data/transforms.h"
#include "framework/tensor.h"

namespace inq {

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;  // drop the final batch when it would be smaller than batch_size
  uint64_t seed = 0;
  int64_t workers = 0;                // background threads; 0 builds batches in next()
  int64_t prefetch_batches = 0;       // batches built ahead of the consumer; 0 means 2 * workers
  TransformPipeline transforms = {};  // applied to each example after Dataset::get_with_generator
  // Data-parallel training (docs/DISTRIBUTED.md): batch_size is the global batch, the epoch's
  // order is the same on every rank, and rank shard_rank of shard_count takes the positions
  // p of each batch with p % shard_count == shard_rank (DistributedSampler's interleaving; as the
  // global batch size is a multiple of shard_count, the ranks' batches together are exactly
  // the one-process batch). Each example keeps the seed of its position, so its augmentation does
  // not depend on the number of ranks.
  int64_t shard_rank = 0;
  int64_t shard_count = 1;

  // Throws inq::Error naming the offending option.
  void validate() const;
};

struct Batch {
  Tensor images;                         // (B, C, H, W)
  std::vector<int64_t> labels;           // (B)
  std::vector<int64_t> example_indices;  // (B) dataset indices of the examples
  int64_t global_size = 0;               // examples of the batch over all shards (B with one shard)
  int64_t epoch = 0;
  int64_t index = 0;  // batch index within the epoch
};

class DataLoader {
 public:
  DataLoader(const Dataset& dataset, DataLoaderOptions options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const;
  // Begins (or restarts) an epoch at batch `start_batch` in [0, batches_per_epoch()].
  void start_epoch(int64_t epoch, int64_t start_batch = 0);
  // The next batch of the current epoch in `out`; false when the epoch is done. Throws if no epoch
  // was started, or rethrows an error raised while building the batch.
  bool next(Batch& out);

  const DataLoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return dataset_; }

  // The order of dataset indices for an epoch (exposed for tests and tools).
  static std::vector<int64_t> epoch_order(int64_t dataset_size, bool shuffle, uint64_t seed, int64_t epoch);
  // The seed of the Generator that an example's loading and transforms draw from.
  static uint64_t example_seed(uint64_t seed, int64_t epoch, int64_t position);

 private:
  struct EpochPlan {
    int64_t epoch = 0;
    std::vector<int64_t> order;
    int64_t end_batch = 0;
  };
  struct Slot {
    bool ready = false;
    int64_t index = -1;
    Batch batch;
    std::exception_ptr error;
  };

  Batch make_batch(const EpochPlan& plan, int64_t batch_index) const;
  void worker_loop();
  void stop_workers();

  const Dataset& dataset_;
  const DataLoaderOptions options_;
  Shape image_shape_;  // (C, H, W)
  int64_t depth_ = 0;  // number of slots

  std::mutex mutex_;
  std::condition_variable work_cv_;        // workers wait for claimable batches or stop
  std::condition_variable ready_cv_;       // the consumer waits for its batch
  std::shared_ptr<const EpochPlan> plan_;  // null until start_epoch
  uint64_t generation_ = 0;   // bumped by start_epoch and on errors: results from older ones are dropped
  int64_t next_claim_ = 0;    // next batch a worker may start
  int64_t next_deliver_ = 0;  // next batch next() returns
  std::vector<Slot> slots_;   // batch b lives in slots_[b % depth_]
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace inq
