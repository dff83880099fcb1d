// The pieces of data-parallel training that run without mpirun (train/distributed.h,
// docs/DISTRIBUTED.md): the DataLoader's shards, the bucketed gradient reducer, and synchronized
// BatchNorm over a communicator of one. The runs under mpirun are tests/mpi/mpi_tests.py (ctest Mpi.*).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "data/dataloader.h"
#include "data/dataset.h"
#include "framework/autograd.h"
#include "framework/communicator.h"
#include "framework/error.h"
#include "framework/ops.h"
#include "framework/random.h"
#include "layers/batchnorm.h"
#include "train/distributed.h"

using namespace inq;

namespace {

Tensor random_tensor(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 2.0f * gen.uniform() - 1.0f;
  return t;
}

TensorDataset numbered_dataset(int64_t n) {
  std::vector<float> values;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    for (int k = 0; k < 4; ++k) values.push_back(static_cast<float>(10 * i + k));
    labels.push_back(i % 3);
  }
  return TensorDataset(Tensor::from_vector({n, 1, 2, 2}, values), labels, 3);
}

// A communicator standing for rank 0 of two whose partner always holds the same data as this
// rank: every sum doubles. Records the sizes of the all-reduces in the order they start.
class MirroredPair final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void allreduce_sum(double* data, int64_t count) override {
    for (int64_t i = 0; i < count; ++i) data[i] *= 2.0;
  }
  void allreduce_sum(int64_t* data, int64_t count) override {
    for (int64_t i = 0; i < count; ++i) data[i] *= 2;
  }
  std::unique_ptr<PendingReduce> start_allreduce_sum(float* data, int64_t count) override {
    started.push_back(count);
    for (int64_t i = 0; i < count; ++i) data[i] *= 2.0f;
    return SingleProcessCommunicator().start_allreduce_sum(data, count);
  }
  void broadcast(float*, int64_t, int) override {}
  std::vector<uint64_t> allgather(uint64_t value) override { return {value, value}; }
  std::unique_ptr<Communicator> split_off() override { return std::make_unique<MirroredPair>(); }
  [[noreturn]] void abort(int) override { std::abort(); }

  std::vector<int64_t> started;
};

}  // namespace

// Rank r takes positions r, r + N, ... of every batch; the shards together are the one-process
// batch, example for example, also for a last batch that does not split evenly.
TEST(DistributedData, ShardsOfABatchAreTheOneProcessBatch) {
  const TensorDataset data = numbered_dataset(13);
  DataLoaderOptions whole{.batch_size = 4, .shuffle = true, .seed = 7};
  DataLoader one(data, whole);
  std::vector<std::unique_ptr<DataLoader>> shards;
  for (int64_t r = 0; r < 2; ++r) {
    DataLoaderOptions o = whole;
    o.shard_rank = r;
    o.shard_count = 2;
    shards.push_back(std::make_unique<DataLoader>(data, o));
  }
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    one.start_epoch(epoch);
    for (auto& s : shards) s->start_epoch(epoch);
    Batch b, s0, s1;
    int64_t batches = 0;
    while (one.next(b)) {
      ASSERT_TRUE(shards[0]->next(s0));
      ASSERT_TRUE(shards[1]->next(s1));
      ++batches;
      EXPECT_EQ(s0.global_size, b.global_size);
      ASSERT_EQ(s0.example_indices.size() + s1.example_indices.size(), b.example_indices.size());
      for (size_t i = 0; i < b.example_indices.size(); ++i) {
        const Batch& s = i % 2 == 0 ? s0 : s1;
        const size_t k = i / 2;
        EXPECT_EQ(s.example_indices[k], b.example_indices[i]);
        EXPECT_EQ(s.labels[k], b.labels[i]);
        for (int64_t v = 0; v < 4; ++v)
          EXPECT_EQ(s.images.data()[k * 4 + v], b.images.data()[static_cast<int64_t>(i) * 4 + v]);
      }
    }
    EXPECT_EQ(batches, 4);  // 13 examples: 3 batches of 4 (2 + 2) and one of 1 (1 + 0)
    EXPECT_FALSE(shards[0]->next(s0));
  }
}

TEST(DistributedData, AGlobalBatchTheRanksCannotSplitIsRefused) {
  const TensorDataset data = numbered_dataset(8);
  EXPECT_THROW(DataLoader(data, DataLoaderOptions{.batch_size = 5, .shard_rank = 0, .shard_count = 2}), Error);
  EXPECT_THROW(DataLoader(data, DataLoaderOptions{.batch_size = 4, .shard_rank = 2, .shard_count = 2}), Error);
}

// The reducer starts one all-reduce per bucket, buckets in reverse parameter order (the order
// backward finishes them), each as soon as its last gradient is ready; the result is the sum of
// the ranks' gradients scaled by each rank's share of the batch.
TEST(DistributedGradients, BucketsStartDuringBackwardInReverseOrderAndAverage) {
  std::vector<Tensor> params;
  for (int i = 0; i < 4; ++i) params.push_back(random_tensor({100}, 10 + i).set_requires_grad(true));
  MirroredPair comm;
  GradientReducer reducer(comm, params, /*bucket_bytes=*/2 * 100 * sizeof(float));  // two parameters a bucket
  ASSERT_EQ(reducer.num_buckets(), 2);
  reducer.begin(0.5);
  std::vector<size_t> started_after;  // all-reduces started when each parameter's gradient was ready
  {
    GradReadyHookGuard hook([&](TensorImpl& leaf) {
      reducer.grad_ready(leaf);
      started_after.push_back(comm.started.size());
    });
    // loss = sum_i dot(p_i, c_i), the last parameter's term added last, as a network's last
    // layer is: backward reaches parameters 3, 2, 1, 0 in that order (gradient c_i each).
    Tensor loss = ops::dot(params[0], random_tensor({100}, 20));
    for (int i = 1; i < 4; ++i) loss = ops::add(loss, ops::dot(params[i], random_tensor({100}, 20 + i)));
    loss.backward();
  }
  // The bucket {3, 2} started once 2 was ready, while backward still had 1 and 0 to do.
  EXPECT_EQ(started_after, (std::vector<size_t>{0, 1, 1, 2}));
  EXPECT_EQ(comm.started, (std::vector<int64_t>{200, 200}));
  reducer.finish();
  // Each rank's share is 0.5 and the partner's gradient equals this one's: the mean is the gradient.
  for (int i = 0; i < 4; ++i) {
    const std::vector<float> expected = random_tensor({100}, 20 + i).to_vector();
    EXPECT_EQ(params[i].grad().to_vector(), expected) << i;
  }
}

TEST(DistributedGradients, AParameterBackwardDidNotReachCountsAsZero) {
  std::vector<Tensor> params{random_tensor({3}, 1).set_requires_grad(true), random_tensor({3}, 2).set_requires_grad(true)};
  MirroredPair comm;
  GradientReducer reducer(comm, params, 1 << 20);
  reducer.begin(1.0);
  {
    GradReadyHookGuard hook([&](TensorImpl& leaf) { reducer.grad_ready(leaf); });
    ops::dot(params[1], random_tensor({3}, 3)).backward();
  }
  EXPECT_TRUE(comm.started.empty());  // the one bucket still waits for params[0]
  reducer.finish();
  EXPECT_EQ(comm.started, (std::vector<int64_t>{6}));
  EXPECT_EQ(params[0].grad().to_vector(), (std::vector<float>{0, 0, 0}));
}

// SyncBatchNorm over a communicator whose other rank mirrors this one: the global batch is two
// copies of this batch, whose statistics are this batch's, so forward and gradients equal the
// unsynchronized layer's (to rounding: the synchronized backward divides in another order).
TEST(DistributedBatchNorm, SynchronizedStatisticsOverMirroredRanksEqualTheLocalOnes) {
  const Tensor x0 = random_tensor({4, 3, 5, 5}, 5);
  const Tensor r = random_tensor({4, 3, 5, 5}, 6);
  MirroredPair comm;
  BatchNormSync sync{.comm = &comm, .weight = 0.5};
  std::vector<std::vector<float>> results[2];
  for (int synced = 0; synced < 2; ++synced) {
    BatchNorm2d bn(3);
    bn.weight.copy_from(random_tensor({3}, 7));
    bn.set_sync(synced != 0 ? &sync : nullptr);
    Tensor x = x0.clone().set_requires_grad(true);
    Tensor y = bn.forward(x);
    ops::dot(y, r).backward();
    results[synced] = {y.to_vector(), x.grad().to_vector(), bn.weight.grad().to_vector(), bn.bias.grad().to_vector(),
                       bn.running_mean.to_vector(), bn.running_var.to_vector()};
  }
  for (size_t t = 0; t < results[0].size(); ++t)
    for (size_t i = 0; i < results[0][t].size(); ++i) {
      // The running variance uses the unbiased estimate over M - 1 values: 2M - 1 for the pair.
      if (t == 5) continue;
      EXPECT_NEAR(results[1][t][i], results[0][t][i], 1e-5f * (1.0f + std::fabs(results[0][t][i]))) << t << " " << i;
    }
  // running_var = 0.9 + 0.1 * var * M' / (M' - 1): M' = 100 here, 200 synchronized.
  for (size_t i = 0; i < results[0][5].size(); ++i) {
    const double var = (results[0][5][i] - 0.9) / 0.1 * 99.0 / 100.0;
    EXPECT_NEAR(results[1][5][i], 0.9 + 0.1 * var * 200.0 / 199.0, 1e-5) << i;
  }
}
