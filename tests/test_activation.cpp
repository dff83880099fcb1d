// ReLU: values, gradient (0 at the kink), NaN propagation.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "framework/error.h"
#include "framework/ops.h"
#include "gradcheck.h"
#include "layers/activation.h"

using namespace inq;

TEST(ReLU, ForwardAndBackwardValues) {
  Tensor x = Tensor::from_vector({5}, {-2, -0.5f, 0, 0.5f, 3});
  x.set_requires_grad(true);
  Tensor y = relu(x);
  EXPECT_EQ(y.to_vector(), (std::vector<float>{0, 0, 0, 0.5f, 3}));
  y.backward(Tensor::from_vector({5}, {1, 2, 3, 4, 5}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 0, 0, 4, 5}));  // 0 at x == 0, as PyTorch
}

TEST(ReLU, Gradients) {
  Generator gen(3);
  ReLU layer;
  EXPECT_GT(test::check_module_gradients(layer, test::random_tensor({2, 3, 4, 4}, gen)), 0);
  EXPECT_EQ(layer.type_name(), "ReLU");
  EXPECT_TRUE(layer.named_parameters().empty());
}

TEST(ReLU, PropagatesNaN) {
  Tensor x = Tensor::from_vector({2}, {std::numeric_limits<float>::quiet_NaN(), -1.0f});
  Tensor y = relu(x);
  EXPECT_TRUE(std::isnan(y.data()[0]));
  EXPECT_EQ(y.data()[1], 0.0f);
  EXPECT_THROW(relu(Tensor()), Error);
}

// add_relu against its naive twin relu(ops::add(a, b)): bit-identical values and gradients on odd
// sizes (both sides of the kink, NaN kept), plus the gradient checker.
TEST(AddReLU, MatchesTheComposition) {
  for (int64_t n : {1, 7, 70001}) {  // 70001: above the parallel threshold
    SCOPED_TRACE(n);
    Generator gen(static_cast<uint64_t>(n));
    Tensor a0 = test::random_tensor({n}, gen), b0 = test::random_tensor({n}, gen), dy = test::random_tensor({n}, gen);
    if (n == 7) a0.data()[3] = std::numeric_limits<float>::quiet_NaN();
    std::vector<std::vector<float>> got;
    for (bool fused : {false, true}) {
      Tensor a = a0.clone(), b = b0.clone();
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      Tensor y = fused ? add_relu(a, b) : relu(ops::add(a, b));
      {
        PoisonFreshBuffersGuard poison;
        y.backward(dy);
      }
      got.push_back(y.to_vector());
      got.push_back(a.grad().to_vector());
      got.push_back(b.grad().to_vector());
      // Each input owns its gradient.
      EXPECT_FALSE(a.grad().same_storage(b.grad()));
    }
    for (int t = 0; t < 3; ++t) {
      ASSERT_EQ(got[static_cast<size_t>(t)].size(), got[static_cast<size_t>(3 + t)].size());
      for (size_t i = 0; i < got[static_cast<size_t>(t)].size(); ++i) {
        const float u = got[static_cast<size_t>(t)][i], v = got[static_cast<size_t>(3 + t)][i];
        EXPECT_TRUE(u == v || (std::isnan(u) && std::isnan(v))) << "output " << t << " at " << i;
      }
    }
  }
}

TEST(AddReLU, GradientsAndShapeErrors) {
  Generator gen(8);
  Tensor a = test::random_tensor({2, 3, 4, 5}, gen), b = test::random_tensor({2, 3, 4, 5}, gen);
  EXPECT_GT(test::check_gradients([&] { return add_relu(a, b); }, {{"a", a}, {"b", b}}), 0);
  EXPECT_THROW(add_relu(a, test::random_tensor({2, 3, 4, 4}, gen)), Error);
}

// A ReLU whose output feeds two consumers gets its gradient as two parts, summed where it reads
// them (relu_backward_two_parts): the same bits as relu_backward on the sum, on odd sizes with
// zeros and NaN in the output; through the engine with one, two and three consumers (the third
// part makes the engine sum the parts after all).
TEST(ReLU, TwoGradientPartsMatchTheSumThenTheMask) {
  for (int64_t n : {1, 7, 70001}) {
    SCOPED_TRACE(n);
    Generator gen(static_cast<uint64_t>(n) + 11);
    Tensor y = relu(test::random_tensor({n}, gen));
    if (n == 7) y.data()[2] = std::numeric_limits<float>::quiet_NaN();
    Tensor first = test::random_tensor({n}, gen), second = test::random_tensor({n}, gen);
    Tensor sum = ops::add(first, second);
    std::vector<float> fused(static_cast<size_t>(n)), reference(static_cast<size_t>(n));
    relu_backward_two_parts(fused.data(), first.data(), second.data(), y.data(), n);
    relu_backward(reference.data(), sum.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(std::bit_cast<uint32_t>(fused[static_cast<size_t>(i)]),
                std::bit_cast<uint32_t>(reference[static_cast<size_t>(i)])) << i;
  }
  // Integer-valued gradients: every order of summation gives the same exact values.
  const std::vector<float> xs = {-2, -1, 0, 1, 2, 3}, dys = {1, -2, 3, -4, 5, -6};
  for (int consumers = 1; consumers <= 3; ++consumers) {
    {
      SCOPED_TRACE(testing::Message() << consumers << " consumers");
      Tensor x = Tensor::from_vector({2, 3}, xs);
      x.set_requires_grad(true);
      Tensor y = relu(x);
      // Consumer k scales by k + 2.
      Tensor total;
      for (int k = 0; k < consumers; ++k) {
        Tensor part = ops::scale(y, static_cast<float>(k + 2));
        total = total.defined() ? ops::add(total, part) : part;
      }
      {
        PoisonFreshBuffersGuard poison;
        total.backward(Tensor::from_vector({2, 3}, dys));
      }
      const float factor = consumers == 1 ? 2.0f : consumers == 2 ? 5.0f : 9.0f;
      for (size_t i = 0; i < xs.size(); ++i)
        EXPECT_EQ(x.grad().data()[i], xs[i] > 0 ? factor * dys[i] : 0.0f) << i;
    }
  }
}
