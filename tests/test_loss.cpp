// cross_entropy and count_correct_topk: hand-computed values, large logits, gradients, errors.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/error.h"
#include "framework/ops.h"
#include "gradcheck.h"
#include "layers/loss.h"

using namespace inq;

// Row 0: logits (1, 2, 3), target 2: log(e + e^2 + e^3) - 3 = log(1 + e^-1 + e^-2) = 0.4076059.
// Row 1: logits (0.5, -1, 2), target 0: log(e^0.5 + e^-1 + e^2) - 0.5 = 1.7413113.
// Mean 1.0744586 (PyTorch 1.13 F.cross_entropy gives 1.0744586, and the gradient below).
TEST(CrossEntropy, HandComputedValueAndGradient) {
  Tensor logits = Tensor::from_vector({2, 3}, {1, 2, 3, 0.5f, -1, 2});
  logits.set_requires_grad(true);
  Tensor loss = cross_entropy(logits, {2, 0});
  EXPECT_EQ(loss.shape(), Shape{});
  const double row0 = std::log(1.0 + std::exp(-1.0) + std::exp(-2.0));
  const double row1 = std::log(std::exp(0.5) + std::exp(-1.0) + std::exp(2.0)) - 0.5;
  EXPECT_NEAR(loss.item(), (row0 + row1) / 2, 1e-6);
  EXPECT_NEAR(loss.item(), 1.0744586, 1e-6);
  loss.backward();
  const std::vector<float> expected = {0.04501529f, 0.1223642f,  -0.1673795f,
                                       -0.4123548f, 0.01955629f, 0.3927985f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(logits.grad().data()[i], expected[i], 1e-6) << i;
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
  // Row 0 target 1: 1000 - 0 = 1000 (exp(-2000) underflows harmlessly); row 1 two tied maxima: log 2.
  Tensor logits = Tensor::from_vector({2, 3}, {1000, 0, -1000, 1000, 1000, -1000});
  logits.set_requires_grad(true);
  Tensor loss = cross_entropy(logits, {1, 0});
  EXPECT_NEAR(loss.item(), (1000.0 + std::log(2.0)) / 2, 1e-3);
  loss.backward();
  EXPECT_TRUE(ops::all_finite(logits.grad()));
  EXPECT_NEAR(logits.grad().data()[0], 0.5, 1e-6);    // (1 - 0) / 2
  EXPECT_NEAR(logits.grad().data()[1], -0.5, 1e-6);   // (0 - 1) / 2
  EXPECT_NEAR(logits.grad().data()[3], -0.25, 1e-6);  // (0.5 - 1) / 2
}

TEST(CrossEntropy, Gradients) {
  Generator gen(71);
  Tensor logits = test::random_tensor({4, 5}, gen, 2.0);
  const std::vector<int64_t> targets = {0, 4, 2, 2};
  EXPECT_GT(test::check_gradients([&] { return cross_entropy(logits, targets); }, {{"logits", logits}}), 0);
}

TEST(CrossEntropy, RejectsBadTargetsAndShapes) {
  Tensor logits = Tensor::zeros({2, 3});
  EXPECT_THROW(cross_entropy(logits, {0, 3}), Error);
  EXPECT_THROW(cross_entropy(logits, {-1, 0}), Error);
  EXPECT_THROW(cross_entropy(logits, {0}), Error);
  EXPECT_THROW(cross_entropy(Tensor::zeros({2, 3, 1}), {0, 0}), Error);
  EXPECT_THROW(cross_entropy(Tensor::zeros({0, 3}), {}), Error);
  try {
    cross_entropy(logits, {0, 7});
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("7"), std::string::npos) << m;
  }
}

TEST(CountCorrectTopk, TopOneAndTopK) {
  Tensor logits = Tensor::from_vector({3, 4}, {
                                                  0.1f, 0.9f, 0.3f, 0.2f,  // order 1 2 3 0
                                                  5.0f, 1.0f, 2.0f, 3.0f,  // order 0 3 2 1
                                                  1.0f, 1.0f, 1.0f, 0.0f,  // ties among 0 1 2
                                              });
  EXPECT_EQ(count_correct_topk(logits, {1, 0, 0}, 1), 3);
  EXPECT_EQ(count_correct_topk(logits, {2, 3, 1}, 1), 0);
  EXPECT_EQ(count_correct_topk(logits, {2, 3, 1}, 2), 3);  // each ranks 2nd (row 2: tie broken by index)
  EXPECT_EQ(count_correct_topk(logits, {0, 1, 2}, 3), 1);  // row 2: class 2 is third among the ties
  EXPECT_EQ(count_correct_topk(logits, {0, 1, 3}, 4), 3);
  EXPECT_THROW(count_correct_topk(logits, {0, 1, 2}, 0), Error);
  EXPECT_THROW(count_correct_topk(logits, {0, 1, 2}, 5), Error);
  EXPECT_THROW(count_correct_topk(logits, {0, 1, 4}, 1), Error);
}
