// Dropout: mask statistics and scaling, determinism under a seed, eval identity, gradients.
#include <gtest/gtest.h>

#include "framework/error.h"
#include "gradcheck.h"
#include "layers/dropout.h"

using namespace inq;

TEST(Dropout, ZeroesAboutPAndScalesSurvivors) {
  Generator gen(41);
  const double p = 0.3;
  Tensor x = Tensor::full({200, 500}, 2.0f);
  Tensor y = dropout(x, p, true, gen);
  int64_t zeros = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float v = y.data()[i];
    if (v == 0.0f)
      ++zeros;
    else
      EXPECT_FLOAT_EQ(v, 2.0f / 0.7f) << "at " << i;
  }
  // 100000 Bernoulli(0.3) draws: standard deviation of the fraction is 0.00145; allow 5 of them.
  EXPECT_NEAR(static_cast<double>(zeros) / y.numel(), p, 0.0075);
  EXPECT_TRUE(x.to_vector() == std::vector<float>(100000, 2.0f));  // input untouched
}

TEST(Dropout, SameSeedSameMaskAndDefaultGenerator) {
  Tensor x = Tensor::full({1000}, 1.0f);
  default_generator().seed(5);
  Tensor a = Dropout(0.5)(x);
  default_generator().seed(5);
  Tensor b = Dropout(0.5)(x);
  Tensor c = Dropout(0.5)(x);  // the generator moved on
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_NE(a.to_vector(), c.to_vector());
  Generator g1(9), g2(9);
  EXPECT_EQ(dropout(x, 0.5, true, g1).to_vector(), dropout(x, 0.5, true, g2).to_vector());
}

TEST(Dropout, EvalIsIdentityAndEdgeProbabilities) {
  Tensor x = Tensor::from_vector({4}, {1, 2, 3, 4});
  Dropout d(0.5);
  d.eval();
  Tensor y = d(x);
  EXPECT_TRUE(y.same_storage(x));
  Generator gen(1);
  EXPECT_TRUE(dropout(x, 0.0, true, gen).same_storage(x));
  EXPECT_EQ(dropout(x, 1.0, true, gen).to_vector(), (std::vector<float>{0, 0, 0, 0}));
  EXPECT_THROW(Dropout(-0.1), Error);
  EXPECT_THROW(Dropout(1.5), Error);
  EXPECT_THROW(dropout(x, 2.0, false, gen), Error);
}

TEST(Dropout, GradientsInTrainMode) {
  Generator gen(42);
  Dropout d(0.4);
  test::GradCheckOptions opt;
  opt.reseed = [] { default_generator().seed(77); };  // the same mask for every evaluation
  EXPECT_GT(test::check_module_gradients(d, test::random_tensor({3, 4, 5}, gen), opt), 0);
  // The mask reaches the gradient: dropped entries get exactly 0, kept ones g / (1 - p).
  Tensor x = Tensor::full({50}, 1.0f);
  x.set_requires_grad(true);
  default_generator().seed(3);
  Tensor y = d(x);
  y.backward(Tensor::full({50}, 1.0f));
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(x.grad().data()[i], y.data()[i]) << i;
}

TEST(Dropout, GradientsInEvalMode) {
  Generator gen(43);
  Dropout d(0.4);
  d.eval();
  EXPECT_GT(test::check_module_gradients(d, test::random_tensor({2, 3, 4}, gen)), 0);
}

TEST(Dropout, ProbabilityOneGivesZeroGradient) {
  Tensor x = Tensor::full({3}, 1.0f);
  x.set_requires_grad(true);
  Generator gen(1);
  dropout(x, 1.0, true, gen).backward(Tensor::full({3}, 1.0f));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 0, 0}));
}
