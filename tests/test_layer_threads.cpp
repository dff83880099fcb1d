// Every layer in this folder on inputs big enough to take its OpenMP path: forward and backward are
// bit-identical with 1 and 2 threads (static partitioning, no shared float accumulators).
#include <gtest/gtest.h>

#include <functional>

#include "framework/threading.h"
#include "gradcheck.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/concat.h"
#include "layers/dropout.h"
#include "layers/loss.h"
#include "layers/lrn.h"
#include "layers/pooling.h"

using namespace inq;

namespace {

struct Result {
  std::vector<float> y, dx;
};

// Runs f on a fresh copy of x (seeded objective weights) and returns the output and input gradient.
Result run(const std::function<Tensor(const Tensor&)>& f, const Tensor& x0, int threads) {
  set_num_threads(threads);
  Tensor x = x0.clone();
  x.set_requires_grad(true);
  Tensor y = f(x);
  Generator gen(99);
  y.backward(test::random_tensor(y.shape(), gen));
  return {y.to_vector(), x.grad().to_vector()};
}

void expect_thread_independent(const char* what, const std::function<Tensor(const Tensor&)>& f,
                               const Shape& shape) {
  Generator gen(5);
  const Tensor x = test::random_tensor(shape, gen);
  const Result one = run(f, x, 1), two = run(f, x, 2);
  EXPECT_TRUE(one.y == two.y) << what << ": forward differs between 1 and 2 threads";
  EXPECT_TRUE(one.dx == two.dx) << what << ": backward differs between 1 and 2 threads";
}

}  // namespace

TEST(LayerThreads, BitIdenticalAcrossThreadCounts) {
  const int saved = get_num_threads();
  const Shape big = {4, 16, 32, 34};  // 69632 elements: above every layer's parallel threshold
  expect_thread_independent(
      "relu", [](const Tensor& x) { return relu(x); }, big);
  BatchNorm2d bn(16);
  expect_thread_independent(
      "batchnorm train", [&](const Tensor& x) { return bn(x); }, big);
  expect_thread_independent(
      "batchnorm+relu train", [&](const Tensor& x) { return bn.forward_relu(x); }, big);
  // More images than BatchNorm's 16 parts of the batch (1 or 2 images each).
  BatchNorm2d bn20(4);
  expect_thread_independent(
      "batchnorm+relu train, 20 images", [&](const Tensor& x) { return bn20.forward_relu(x); }, {20, 4, 30, 31});
  bn.eval();
  expect_thread_independent(
      "batchnorm eval", [&](const Tensor& x) { return bn(x); }, big);
  expect_thread_independent(
      "batchnorm+relu eval", [&](const Tensor& x) { return bn.forward_relu(x); }, big);
  expect_thread_independent(
      "max_pool2d",
      [](const Tensor& x) { return max_pool2d(x, {.kernel_size = 3, .stride = 2, .ceil_mode = true}); }, big);
  expect_thread_independent(
      "avg_pool2d",
      [](const Tensor& x) { return avg_pool2d(x, {.kernel_size = 3, .stride = 1, .padding = 1}); }, big);
  expect_thread_independent(
      "adaptive_avg_pool2d", [](const Tensor& x) { return adaptive_avg_pool2d(x, 5, 7); }, big);
  expect_thread_independent(
      "lrn", [](const Tensor& x) { return local_response_norm(x, {.size = 5, .alpha = 0.1}); }, big);
  expect_thread_independent(
      "dropout",
      [](const Tensor& x) {
        Generator g(3);
        return dropout(x, 0.5, true, g);
      },
      big);
  expect_thread_independent(
      "concat",
      [](const Tensor& x) {
        return concat_channels({x, x});
      },
      big);
  expect_thread_independent("cross_entropy",
                            [](const Tensor& x) {
                              std::vector<int64_t> t(static_cast<size_t>(x.size(0)));
                              for (size_t i = 0; i < t.size(); ++i)
                                t[i] = static_cast<int64_t>(i * 7 % x.size(1));
                              return cross_entropy(x, t);
                            },
                            {64, 1100});
  set_num_threads(saved);
}
