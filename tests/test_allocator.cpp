// The caching allocator (framework/allocator.h) and what it is for: a training step that allocates
// nothing from the system once the loop is warm, with results bit-identical to the uncached path;
// plus the gradient-buffer rules that go with it (AccumulateGrad adopting a fresh gradient,
// zero_grad with and without set_to_none).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "framework/allocator.h"
#include "framework/autograd.h"
#include "framework/ops.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "models/registry.h"
#include "optim/sgd.h"

namespace inq {
namespace {

// Restores the caching setting a test changed.
struct CachingScope {
  explicit CachingScope(bool on) : previous(set_allocator_caching(on)) {}
  ~CachingScope() { set_allocator_caching(previous); }
  bool previous;
};

bool caching_available() {
  const bool on = set_allocator_caching(true);
  set_allocator_caching(on);
  return on;
}

TEST(Allocator, AFreedBlockServesTheNextRequestOfItsSize) {
  if (!caching_available()) GTEST_SKIP() << "the cache is off in this build (AddressSanitizer)";
  CachingScope scope(true);
  const float* first = nullptr;
  {
    Tensor a = Tensor::empty({1001});
    first = a.data();
  }
  reset_allocator_counters();
  Tensor b = Tensor::empty({1001});
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(allocator_stats().system_allocations, 0);
  EXPECT_EQ(allocator_stats().requests, 1);
  // Another size is not served by that block.
  Tensor c = Tensor::empty({5000});
  EXPECT_EQ(allocator_stats().system_allocations, 1);
}

TEST(Allocator, OffMeansEveryRequestGoesToTheSystem) {
  CachingScope scope(false);
  { Tensor a = Tensor::empty({777}); }
  reset_allocator_counters();
  { Tensor b = Tensor::empty({777}); }
  EXPECT_EQ(allocator_stats().system_allocations, 1);
  EXPECT_EQ(allocator_stats().idle_blocks, 0);
}

TEST(Allocator, PoisonAppliesToReusedBlocks) {
  // A reused block holds the previous owner's values; the poison guard must still overwrite them, or
  // a kernel that reads an entry it never wrote would see plausible numbers.
  CachingScope scope(true);
  { Tensor a = Tensor::full({64}, 3.0f); }
  PoisonFreshBuffersGuard poison;
  Tensor b = Tensor::empty({64});
  for (int64_t i = 0; i < b.numel(); ++i) EXPECT_TRUE(std::isnan(b.data()[i]));
}

// A small ResNet-20 training loop: conv, BatchNorm, ReLU, residual adds, pooling, linear, the loss
// and SGD with momentum and weight decay.
struct Loop {
  std::shared_ptr<Module> model;
  std::unique_ptr<Sgd> sgd;
  Tensor x;
  std::vector<int64_t> y;
  bool set_to_none = true;

  Loop() {
    seed_all(3);
    model = create_model("resnet20", {.num_classes = 10, .in_channels = 1});
    sgd = std::make_unique<Sgd>(make_param_groups(model->named_parameters(), 5e-4),
                                SgdOptions{.lr = 0.05, .momentum = 0.9, .dampening = 0, .nesterov = false});
    Generator gen(4);
    x = Tensor::empty({4, 1, 28, 28});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(gen.normal());
    y = {1, 7, 3, 3};
    model->train();
  }
  void step() {
    Tensor loss = cross_entropy(model->forward(x), y);
    model->zero_grad(set_to_none);
    loss.backward();
    sgd->step();
  }
  std::vector<float> weights() const {
    std::vector<float> out;
    for (const auto& t : model->state_dict()) {
      const std::vector<float> v = t.tensor.to_vector();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  }
};

TEST(Allocator, TrainingStepsAllocateNothingOnceWarm) {
  if (!caching_available()) GTEST_SKIP() << "the cache is off in this build (AddressSanitizer)";
  CachingScope scope(true);
  for (bool set_to_none : {true, false}) {
    Loop loop;
    loop.set_to_none = set_to_none;
    // Step 1 allocates everything; step 2 may need a few more blocks (step 1's gradients are still
    // alive during step 2's forward); from then on the sequence of sizes repeats.
    for (int i = 0; i < 3; ++i) loop.step();
    reset_allocator_counters();
    for (int i = 0; i < 3; ++i) loop.step();
    const AllocatorStats stats = allocator_stats();
    EXPECT_GT(stats.requests, 100) << "set_to_none " << set_to_none;
    EXPECT_EQ(stats.system_allocations, 0) << "set_to_none " << set_to_none;
  }
}

TEST(Allocator, CachedUncachedAndZeroedGradientsGiveBitIdenticalTraining) {
  std::vector<std::vector<float>> results;
  for (auto [caching, set_to_none] : {std::pair{false, true}, std::pair{true, true}, std::pair{true, false}}) {
    CachingScope scope(caching);
    Loop loop;
    loop.set_to_none = set_to_none;
    for (int i = 0; i < 4; ++i) loop.step();
    results.push_back(loop.weights());
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t r = 1; r < results.size(); ++r)
    EXPECT_EQ(std::memcmp(results[0].data(), results[r].data(), results[0].size() * sizeof(float)), 0)
        << "configuration " << r;
}

TEST(AccumulateGrad, CopiesAGradientSomeoneElseHolds) {
  // The seed of backward() on a leaf is the caller's tensor: .grad() must not alias it.
  Tensor x = Tensor::from_vector({3}, {1, 2, 3});
  x.set_requires_grad(true);
  Tensor seed = Tensor::from_vector({3}, {0.5f, -1, 2});
  x.backward(seed);
  seed.fill_(7.0f);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0.5f, -1, 2}));
}

TEST(AccumulateGrad, GradientsHandedToTwoInputsAreNotShared) {
  // a + b hands one gradient buffer to both inputs; each leaf must end with its own copy.
  Tensor a = Tensor::from_vector({2}, {1, 2}), b = Tensor::from_vector({2}, {3, 4});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  ops::add(a, b).backward(Tensor::from_vector({2}, {1, 1}));
  ASSERT_FALSE(a.grad().same_storage(b.grad()));
  a.grad().fill_(5.0f);
  EXPECT_EQ(b.grad().to_vector(), (std::vector<float>{1, 1}));
}

TEST(AccumulateGrad, SecondBackwardAccumulatesIntoAnAdoptedGradient) {
  Tensor w = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  w.set_requires_grad(true);
  Tensor x = Tensor::from_vector({1, 2}, {1, -1});
  auto run = [&] { return ops::sum(linear(x, w, Tensor())); };
  run().backward();
  const std::vector<float> once = w.grad().to_vector();
  run().backward();
  const std::vector<float> twice = w.grad().to_vector();
  for (size_t i = 0; i < once.size(); ++i) EXPECT_EQ(twice[i], 2 * once[i]);
}

}  // namespace
}  // namespace inq
