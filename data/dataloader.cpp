#include "data/dataloader.h"

#include <utility>

#include "framework/error.h"
#include "framework/random.h"

namespace inq {

namespace {

// splitmix64's finalizer: a bijective mix, so distinct (seed, epoch, position) tuples give
// unrelated generator seeds.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Distinct tags keep the order stream and the per-example streams apart for equal inputs.
constexpr uint64_t kOrderTag = 0x6f72646572ull;    // "order"
constexpr uint64_t kExampleTag = 0x6578616d70ull;  // "examp"

}  // namespace

void DataLoaderOptions::validate() const {
  INQ_CHECK(batch_size >= 1, "Given DataLoader batch_size {}, expected batch_size >= 1", batch_size);
  INQ_CHECK(workers >= 0 && workers <= 256, "Given DataLoader workers {}, expected workers in [0, 256]",
            workers);
  INQ_CHECK(prefetch_batches >= 0 && prefetch_batches <= 4096,
            "Given DataLoader prefetch_batches {}, expected prefetch_batches in [0, 4096]", prefetch_batches);
  INQ_CHECK(shard_count >= 1 && shard_rank >= 0 && shard_rank < shard_count,
            "Given DataLoader shard {} of {}, expected 0 <= shard < shard count", shard_rank, shard_count);
  INQ_CHECK(batch_size % shard_count == 0,
            "Given --batch-size {} over {} ranks, expected a multiple of the number of ranks (it is the global batch, "
            "split evenly)", batch_size, shard_count);
}

std::vector<int64_t> DataLoader::epoch_order(int64_t dataset_size, bool shuffle, uint64_t seed,
                                             int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(dataset_size));
  for (int64_t i = 0; i < dataset_size; ++i) order[static_cast<size_t>(i)] = i;
  if (shuffle) {
    Generator gen(mix(mix(mix(seed) ^ static_cast<uint64_t>(epoch)) ^ kOrderTag));
    for (int64_t i = dataset_size - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(gen.uniform_int(static_cast<uint64_t>(i) + 1));
      std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
    }
  }
  return order;
}

uint64_t DataLoader::example_seed(uint64_t seed, int64_t epoch, int64_t position) {
  return mix(mix(mix(mix(seed) ^ static_cast<uint64_t>(epoch)) ^ kExampleTag) ^
             static_cast<uint64_t>(position));
}

DataLoader::DataLoader(const Dataset& dataset, DataLoaderOptions options)
    : dataset_(dataset), options_((options.validate(), std::move(options))) {
  image_shape_ = dataset_.image_shape();
  INQ_CHECK(image_shape_.size() == 3 && image_shape_[0] > 0 && image_shape_[1] > 0 && image_shape_[2] > 0,
            "Given a dataset with image shape {}, expected (C, H, W) with every dimension > 0",
            shape_str(image_shape_));
  INQ_CHECK(dataset_.size() >= 0, "Given a dataset of size {}, expected a size >= 0", dataset_.size());
  if (options_.workers == 0) return;
  depth_ = options_.prefetch_batches > 0 ? options_.prefetch_batches : 2 * options_.workers;
  slots_.resize(static_cast<size_t>(depth_));
  try {
    for (int64_t w = 0; w < options_.workers; ++w) threads_.emplace_back([this] { worker_loop(); });
  } catch (...) {
    stop_workers();
    throw;
  }
}

DataLoader::~DataLoader() { stop_workers(); }

void DataLoader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = dataset_.size();
  return options_.drop_last ? n / options_.batch_size : (n + options_.batch_size - 1) / options_.batch_size;
}

void DataLoader::start_epoch(int64_t epoch, int64_t start_batch) {
  const int64_t batches = batches_per_epoch();
  INQ_CHECK(epoch >= 0, "Given start_epoch({}), expected an epoch >= 0", epoch);
  INQ_CHECK(start_batch >= 0 && start_batch <= batches,
            "Given start_epoch with start_batch {}, expected a batch index in [0, {}] ({} batches per epoch)",
            start_batch, batches, batches);
  auto plan = std::make_shared<EpochPlan>();
  plan->epoch = epoch;
  plan->order = epoch_order(dataset_.size(), options_.shuffle, options_.seed, epoch);
  plan->end_batch = batches;
  std::vector<Slot> abandoned(slots_.size());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    plan_ = std::move(plan);
    next_claim_ = start_batch;
    next_deliver_ = start_batch;
    slots_.swap(abandoned);  // freed below, outside the lock
  }
  work_cv_.notify_all();
}

bool DataLoader::next(Batch& out) {
  std::unique_lock<std::mutex> lock(mutex_);
  INQ_CHECK(plan_ != nullptr,
            "Given a DataLoader with no epoch started, expected start_epoch() before next()");
  if (next_deliver_ >= plan_->end_batch) return false;
  const int64_t b = next_deliver_;
  if (options_.workers == 0) {
    ++next_deliver_;
    std::shared_ptr<const EpochPlan> plan = plan_;
    lock.unlock();
    try {
      out = make_batch(*plan, b);
    } catch (...) {
      next_deliver_ = plan->end_batch;  // the epoch ends with the error, as with workers
      throw;
    }
    return true;
  }
  Slot& slot = slots_[static_cast<size_t>(b % depth_)];
  ready_cv_.wait(lock, [&] { return slot.ready && slot.index == b; });
  Slot taken = std::move(slot);
  slot = Slot{};
  if (taken.error) {
    // End the epoch: workers stop claiming and drop what they are building.
    ++generation_;
    next_claim_ = next_deliver_ = plan_->end_batch;
    lock.unlock();
    std::rethrow_exception(taken.error);
  }
  ++next_deliver_;
  lock.unlock();
  work_cv_.notify_all();
  out = std::move(taken.batch);
  return true;
}

Batch DataLoader::make_batch(const EpochPlan& plan, int64_t batch_index) const {
  const int64_t n = static_cast<int64_t>(plan.order.size());
  const int64_t first = batch_index * options_.batch_size;
  const int64_t global_count = std::min(options_.batch_size, n - first);
  // This shard's positions first + shard_rank + k * shard_count inside the batch.
  const int64_t stride = options_.shard_count;
  const int64_t count = global_count > options_.shard_rank ? (global_count - options_.shard_rank + stride - 1) / stride : 0;
  const int64_t per_image = shape_numel(image_shape_);
  const int64_t num_classes = dataset_.num_classes();
  Batch batch;
  batch.epoch = plan.epoch;
  batch.index = batch_index;
  batch.global_size = global_count;
  batch.images = Tensor::empty({count, image_shape_[0], image_shape_[1], image_shape_[2]});
  batch.labels.resize(static_cast<size_t>(count));
  batch.example_indices.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t position = first + options_.shard_rank + i * stride;
    const int64_t index = plan.order[static_cast<size_t>(position)];
    float* image = batch.images.data() + i * per_image;
    int64_t label = -1;
    Generator gen(example_seed(options_.seed, plan.epoch, position));
    dataset_.get_with_generator(index, gen, image, &label);
    INQ_CHECK(label >= 0 && label < num_classes,
              "Given dataset example {}, expected a label in [0, {}), but got {} instead", index, num_classes,
              label);
    options_.transforms.apply(ImageRef{image, image_shape_[0], image_shape_[1], image_shape_[2]}, gen);
    batch.labels[static_cast<size_t>(i)] = label;
    batch.example_indices[static_cast<size_t>(i)] = index;
  }
  return batch;
}

void DataLoader::worker_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_cv_.wait(lock, [&] {
      return stopping_ ||
             (plan_ != nullptr && next_claim_ < plan_->end_batch && next_claim_ < next_deliver_ + depth_);
    });
    if (stopping_) return;
    const int64_t b = next_claim_++;
    const std::shared_ptr<const EpochPlan> plan = plan_;
    const uint64_t generation = generation_;
    lock.unlock();
    Slot result;
    result.index = b;
    try {
      result.batch = make_batch(*plan, b);
    } catch (...) {
      result.error = std::current_exception();
    }
    result.ready = true;
    lock.lock();
    if (generation == generation_) {
      slots_[static_cast<size_t>(b % depth_)] = std::move(result);
      ready_cv_.notify_all();
    } else {
      // Abandoned by start_epoch or an error: free the batch without holding the lock.
      lock.unlock();
      result = Slot{};
      lock.lock();
    }
  }
}

}  // namespace inq
