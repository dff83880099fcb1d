// DataLoader: determinism across worker counts, coverage, drop_last, resume, shutdown, errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <thread>
#include <vector>

#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/transforms.h"
#include "dataloader_testing.h"
#include "framework/error.h"

using namespace inq;

namespace {

constexpr int64_t kN = 23, kC = 2, kH = 4, kW = 5, kClasses = 5;

// Example i has pixel (c, y, x) = 1000 i + 100 c + 10 y + x + 1 and label i % 5.
TensorDataset coded_dataset(int64_t n = kN) {
  std::vector<float> values;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < kC; ++c)
      for (int64_t y = 0; y < kH; ++y)
        for (int64_t x = 0; x < kW; ++x) values.push_back(1000.0f * i + 100.0f * c + 10.0f * y + x + 1);
    labels.push_back(i % kClasses);
  }
  return TensorDataset(Tensor::from_vector({n, kC, kH, kW}, values), labels, kClasses);
}

// Wraps a dataset: optionally sleeps in get(), throws for one index, or returns a bad label.
class FaultyDataset final : public Dataset {
 public:
  explicit FaultyDataset(const Dataset& inner) : inner_(inner) {}
  int64_t size() const override { return inner_.size(); }
  Shape image_shape() const override { return inner_.image_shape(); }
  int64_t num_classes() const override { return inner_.num_classes(); }
  void get(int64_t index, float* image_out, int64_t* label_out) const override {
    calls.fetch_add(1);
    if (sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    INQ_CHECK(index != throw_at, "Given example {}, expected a readable file, but 'bad.png' is corrupt",
              index);
    inner_.get(index, image_out, label_out);
    if (index == bad_label_at) *label_out = num_classes();
  }
  int sleep_ms = 0;
  int64_t throw_at = -1;
  int64_t bad_label_at = -1;
  mutable std::atomic<int64_t> calls{0};

 private:
  const Dataset& inner_;
};

using test::run_epoch;

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].index, b[i].index) << what;
    EXPECT_EQ(a[i].epoch, b[i].epoch) << what;
    EXPECT_EQ(a[i].labels, b[i].labels) << what << " batch " << i;
    EXPECT_EQ(a[i].example_indices, b[i].example_indices) << what << " batch " << i;
    ASSERT_EQ(a[i].images.shape(), b[i].images.shape()) << what;
    EXPECT_EQ(a[i].images.to_vector(), b[i].images.to_vector()) << what << " batch " << i;  // bitwise
  }
}

DataLoaderOptions augmenting_options(int64_t workers) {
  return DataLoaderOptions{
      .batch_size = 4,
      .shuffle = true,
      .seed = 77,
      .workers = workers,
      .transforms = {random_horizontal_flip(), random_crop(1), normalize({3.0f}, {2.0f})}};
}

}  // namespace

TEST(DataLoader, SameSeedSameBatchesRegardlessOfWorkerCount) {
  const TensorDataset ds = coded_dataset();
  DataLoader reference(ds, augmenting_options(0));
  const std::vector<Batch> e0 = run_epoch(reference, 0), e1 = run_epoch(reference, 1);
  ASSERT_EQ(e0.size(), 6u);
  // Different epochs shuffle and augment differently.
  EXPECT_NE(e0[0].example_indices, e1[0].example_indices);
  for (int64_t workers : {1, 3}) {
    for (int64_t prefetch : {0, 1, 5}) {
      DataLoaderOptions opt = augmenting_options(workers);
      opt.prefetch_batches = prefetch;
      DataLoader loader(ds, opt);
      const std::string what = "workers " + std::to_string(workers) + " prefetch " + std::to_string(prefetch);
      expect_same_batches(run_epoch(loader, 0), e0, what);
      expect_same_batches(run_epoch(loader, 1), e1, what);
    }
  }
  // The augmentation really changed something, and a different seed gives different batches.
  DataLoaderOptions plain = augmenting_options(0);
  plain.transforms = {};
  DataLoader unaugmented(ds, plain);
  const std::vector<Batch> u0 = run_epoch(unaugmented, 0);
  EXPECT_EQ(u0[0].example_indices, e0[0].example_indices);
  EXPECT_NE(u0[0].images.to_vector(), e0[0].images.to_vector());
  DataLoaderOptions other = augmenting_options(0);
  other.seed = 78;
  DataLoader reseeded(ds, other);
  EXPECT_NE(run_epoch(reseeded, 0)[0].example_indices, e0[0].example_indices);
}

TEST(DataLoader, EveryExampleExactlyOncePerEpochWithItsOwnImageAndLabel) {
  const TensorDataset ds = coded_dataset();
  for (bool shuffle : {false, true}) {
    DataLoader loader(ds, {.batch_size = 5, .shuffle = shuffle, .seed = 3, .workers = 2});
    EXPECT_EQ(loader.batches_per_epoch(), 5);
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      const std::vector<Batch> batches = run_epoch(loader, epoch);
      std::vector<int64_t> seen;
      for (size_t b = 0; b < batches.size(); ++b) {
        const Batch& batch = batches[b];
        EXPECT_EQ(batch.index, static_cast<int64_t>(b));
        EXPECT_EQ(batch.epoch, epoch);
        const int64_t B = batch.images.size(0);
        EXPECT_EQ(batch.images.shape(), (Shape{B, kC, kH, kW}));
        EXPECT_EQ(B, b + 1 < batches.size() ? 5 : 3);
        for (int64_t i = 0; i < B; ++i) {
          const int64_t idx = batch.example_indices[static_cast<size_t>(i)];
          EXPECT_EQ(batch.labels[static_cast<size_t>(i)], idx % kClasses);
          EXPECT_EQ(batch.images.data()[i * kC * kH * kW], 1000.0f * idx + 1);  // the image belongs to idx
          seen.push_back(idx);
        }
      }
      const std::vector<int64_t> order = DataLoader::epoch_order(kN, shuffle, 3, epoch);
      EXPECT_EQ(seen, order);
      std::sort(seen.begin(), seen.end());
      std::vector<int64_t> all(kN);
      std::iota(all.begin(), all.end(), 0);
      EXPECT_EQ(seen, all) << "shuffle " << shuffle << " epoch " << epoch;
      if (shuffle) {
        EXPECT_NE(order, all);
      } else {
        EXPECT_EQ(order, all);
      }
    }
  }
}

TEST(DataLoader, DropLastDropsOnlyTheShortFinalBatch) {
  const TensorDataset ds = coded_dataset();
  for (int64_t workers : {0, 2}) {
    DataLoader dropping(ds, {.batch_size = 5, .drop_last = true, .workers = workers});
    EXPECT_EQ(dropping.batches_per_epoch(), 4);
    const std::vector<Batch> batches = run_epoch(dropping, 0);
    ASSERT_EQ(batches.size(), 4u);
    for (const Batch& b : batches) EXPECT_EQ(b.images.size(0), 5);
    EXPECT_EQ(batches.back().example_indices.back(), 19);
  }
  // An exact multiple loses nothing; a batch bigger than the dataset gives nothing with drop_last.
  const TensorDataset twenty = coded_dataset(20);
  EXPECT_EQ(DataLoader(twenty, {.batch_size = 5, .drop_last = true}).batches_per_epoch(), 4);
  EXPECT_EQ(DataLoader(twenty, {.batch_size = 50, .drop_last = true}).batches_per_epoch(), 0);
  EXPECT_EQ(DataLoader(twenty, {.batch_size = 50}).batches_per_epoch(), 1);
}

TEST(DataLoader, StartBatchResumesMidEpochIdentically) {
  const TensorDataset ds = coded_dataset();
  DataLoader reference(ds, augmenting_options(0));
  const std::vector<Batch> full = run_epoch(reference, 4);
  for (int64_t workers : {0, 3}) {
    DataLoader loader(ds, augmenting_options(workers));
    for (int64_t start : {1, 3, 5}) {
      const std::vector<Batch> resumed = run_epoch(loader, 4, start);
      expect_same_batches(resumed, std::vector<Batch>(full.begin() + start, full.end()),
                          "start " + std::to_string(start));
    }
    EXPECT_TRUE(run_epoch(loader, 4, 6).empty());  // resuming at the end: nothing left
    EXPECT_THROW(loader.start_epoch(4, 7), Error);
    EXPECT_THROW(loader.start_epoch(4, -1), Error);
    EXPECT_THROW(loader.start_epoch(-1), Error);
  }
}

TEST(DataLoader, RestartingAnEpochMidwayAbandonsBatchesInFlight) {
  const TensorDataset ds = coded_dataset();
  DataLoader reference(ds, augmenting_options(0));
  const std::vector<Batch> e2 = run_epoch(reference, 2);
  DataLoader loader(ds, augmenting_options(3));
  loader.start_epoch(1);
  Batch b;
  ASSERT_TRUE(loader.next(b));
  ASSERT_TRUE(loader.next(b));
  expect_same_batches(run_epoch(loader, 2), e2, "after restart");
  // Restart while the workers are still building the old epoch's first batches (a slow dataset):
  // those batches carry the same indices as the new ones and must not be delivered.
  FaultyDataset slow(ds);
  slow.sleep_ms = 2;
  DataLoader slow_loader(slow, augmenting_options(3));
  for (int trial = 0; trial < 3; ++trial) {
    slow_loader.start_epoch(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    slow_loader.start_epoch(2);
    std::vector<Batch> got;
    Batch b2;
    while (slow_loader.next(b2)) got.push_back(b2);
    expect_same_batches(got, e2, "restart while building");
  }
}

TEST(DataLoader, EarlyDestructionDoesNotHang) {
  const TensorDataset ds = coded_dataset();
  FaultyDataset slow(ds);
  slow.sleep_ms = 5;
  const auto t0 = std::chrono::steady_clock::now();
  { DataLoader never_started(slow, {.batch_size = 2, .workers = 3}); }
  {
    DataLoader started_only(slow, {.batch_size = 2, .workers = 3});
    started_only.start_epoch(0);
  }
  int64_t calls_at_destruction = 0;
  {
    DataLoader loader(slow, {.batch_size = 2, .shuffle = true, .workers = 3, .prefetch_batches = 4});
    loader.start_epoch(0);
    Batch b;
    ASSERT_TRUE(loader.next(b));
    EXPECT_EQ(b.images.size(0), 2);
  }
  calls_at_destruction = slow.calls.load();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The workers are joined: nothing calls the dataset after the loader is gone, and they built at
  // most the prefetch window (one consumed batch + 4 ahead + 3 in hand) rather than the epoch.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(slow.calls.load(), calls_at_destruction);
  EXPECT_LE(calls_at_destruction, 2 * (2 + 5 + 3 + 1 + 4 + 3));
  EXPECT_LT(seconds, 2.0);
}

TEST(DataLoader, WorkerExceptionSurfacesOnTheConsumerThread) {
  const TensorDataset ds = coded_dataset();
  FaultyDataset faulty(ds);
  faulty.throw_at = 7;  // in batch 1 of batch_size 5, unshuffled
  for (int64_t workers : {0, 1, 3}) {
    DataLoader loader(faulty, {.batch_size = 5, .workers = workers});
    for (int attempt = 0; attempt < 2; ++attempt) {  // a fresh start_epoch fails the same way
      loader.start_epoch(0);
      Batch b;
      ASSERT_TRUE(loader.next(b));  // batch 0 is fine and arrives first
      EXPECT_EQ(b.index, 0);
      try {
        loader.next(b);
        ADD_FAILURE() << "expected the worker's error, workers " << workers;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'bad.png' is corrupt"), std::string::npos) << e.what();
      }
      EXPECT_FALSE(loader.next(b));  // the epoch ended with the error
    }
  }
  // A dataset that returns an out-of-range label is caught too.
  FaultyDataset bad_label(ds);
  bad_label.bad_label_at = 2;
  DataLoader loader(bad_label, {.batch_size = 4, .workers = 2});
  loader.start_epoch(0);
  Batch b;
  EXPECT_THROW(loader.next(b), Error);
}

TEST(DataLoader, StressManyEpochsWithATightQueueMatchesSerial) {
  const TensorDataset ds = coded_dataset(61);
  DataLoaderOptions serial_opt = augmenting_options(0);
  serial_opt.batch_size = 3;
  DataLoaderOptions threaded_opt = serial_opt;
  threaded_opt.workers = 3;
  threaded_opt.prefetch_batches = 1;
  DataLoader serial(ds, serial_opt), threaded(ds, threaded_opt);
  for (int64_t epoch = 0; epoch < 8; ++epoch) {
    expect_same_batches(run_epoch(threaded, epoch), run_epoch(serial, epoch),
                        "epoch " + std::to_string(epoch));
  }
}

namespace {

// A dataset whose loading is random: pixel 0 is a draw from the generator it is given, pixel 1
// the example's index. (Like an ImageFolder's random crop of a decoded image.)
class RandomLoadingDataset final : public Dataset {
 public:
  int64_t size() const override { return 9; }
  Shape image_shape() const override { return {1, 1, 3}; }
  int64_t num_classes() const override { return 2; }
  void get(int64_t index, float* image_out, int64_t* label_out) const override {
    Generator gen(0);
    get_with_generator(index, gen, image_out, label_out);
  }
  void get_with_generator(int64_t index, Generator& gen, float* image_out, int64_t* label_out) const override {
    image_out[0] = gen.uniform();
    image_out[1] = static_cast<float>(index);
    image_out[2] = 0.0f;
    *label_out = index % 2;
  }
};

}  // namespace

TEST(DataLoader, DatasetsDrawFromTheExamplesGeneratorAndTransformsContinueIt) {
  const RandomLoadingDataset ds;
  // The transform records the generator's next draw in pixel 2.
  const Transform record_next = [](ImageRef image, Generator& gen) { image.data[2] = gen.uniform(); };
  auto options = [&](int64_t workers) {
    return DataLoaderOptions{.batch_size = 2, .shuffle = true, .seed = 5, .workers = workers,
                             .transforms = {record_next}};
  };
  DataLoader serial(ds, options(0));
  const std::vector<Batch> e0 = run_epoch(serial, 0);
  for (const Batch& b : e0) {
    for (int64_t i = 0; i < b.images.size(0); ++i) {
      const int64_t position = b.index * 2 + i;
      Generator expected(DataLoader::example_seed(5, 0, position));
      const float* pixel = b.images.data() + i * 3;
      EXPECT_EQ(pixel[0], expected.uniform()) << "the dataset gets the example's generator";
      EXPECT_EQ(pixel[2], expected.uniform()) << "the transforms continue the same generator";
      EXPECT_EQ(pixel[1], static_cast<float>(b.example_indices[static_cast<size_t>(i)]));
    }
  }
  for (int64_t workers : {1, 3}) {
    DataLoader parallel(ds, options(workers));
    expect_same_batches(run_epoch(parallel, 0), e0, "workers " + std::to_string(workers));
  }
  EXPECT_NE(run_epoch(serial, 1)[0].images.to_vector(), e0[0].images.to_vector());
}

TEST(DataLoader, RejectsBadOptionsAndMisuse) {
  const TensorDataset ds = coded_dataset();
  EXPECT_THROW(DataLoader(ds, {.batch_size = 0}), Error);
  EXPECT_THROW(DataLoader(ds, {.workers = -1}), Error);
  EXPECT_THROW(DataLoader(ds, {.prefetch_batches = -2}), Error);
  DataLoader loader(ds, {.batch_size = 4});
  Batch b;
  EXPECT_THROW(loader.next(b), Error);  // no epoch started
  // An empty dataset has no batches.
  const TensorDataset empty(Tensor::zeros({0, 1, 2, 2}), {}, 3);
  DataLoader none(empty, {.batch_size = 4, .shuffle = true, .workers = 2});
  EXPECT_EQ(none.batches_per_epoch(), 0);
  EXPECT_TRUE(run_epoch(none, 0).empty());
}

TEST(TensorDataset, CopiesItsInputAndChecksLabels) {
  Tensor images = Tensor::full({2, 1, 1, 2}, 3.0f);
  const TensorDataset ds(images, {0, 1}, 2);
  images.fill_(9.0f);  // the dataset holds its own copy
  EXPECT_EQ(ds.example(1).image.to_vector(), (std::vector<float>{3.0f, 3.0f}));
  EXPECT_EQ(ds.example(1).label, 1);
  EXPECT_THROW(ds.example(2), Error);
  EXPECT_THROW(TensorDataset(images, {0, 2}, 2), Error);
  EXPECT_THROW(TensorDataset(images, {0}, 2), Error);
  EXPECT_THROW(TensorDataset(Tensor::zeros({2, 2}), {0, 1}, 2), Error);
}
