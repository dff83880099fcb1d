// framework/ops: scale and affine_channels (values, gradients, shape errors).
#include <gtest/gtest.h>

#include "framework/error.h"
#include "framework/ops.h"
#include "gradcheck.h"

using namespace inq;

TEST(OpsScale, ValuesAndGradient) {
  Tensor x = Tensor::from_vector({2, 2}, {1, -2, 3, 0.5f});
  EXPECT_EQ(ops::scale(x, 0.3f).to_vector(), (std::vector<float>{0.3f * 1, 0.3f * -2, 0.3f * 3, 0.3f * 0.5f}));
  Generator gen(3);
  Tensor a = test::random_tensor({3, 4}, gen);
  EXPECT_GT(test::check_gradients([&] { return ops::scale(a, -1.7f); }, {{"a", a}}), 0);
}

TEST(OpsAffineChannels, ValuesPerChannelWithTrailingDims) {
  // (N=2, C=2, 2): channel 0 maps v -> 2v + 1, channel 1 maps v -> -v + 0.5.
  Tensor x = Tensor::from_vector({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor y = ops::affine_channels(x, {2, -1}, {1, 0.5f});
  EXPECT_EQ(y.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(y.to_vector(), (std::vector<float>{3, 5, -2.5f, -3.5f, 11, 13, -6.5f, -7.5f}));
}

TEST(OpsAffineChannels, Gradient) {
  Generator gen(5);
  Tensor x = test::random_tensor({2, 3, 2, 3}, gen);
  EXPECT_GT(test::check_gradients([&] { return ops::affine_channels(x, {0.5f, -2, 1.25f}, {0.1f, 0, -3}); },
                                  {{"x", x}}),
            0);
}

TEST(OpsAffineChannels, RejectsWrongCoefficientCounts) {
  EXPECT_THROW(ops::affine_channels(Tensor::zeros({4}), {1}, {0}), Error);
  try {
    ops::affine_channels(Tensor::zeros({1, 3, 2, 2}), {1, 1}, {0, 0, 0});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 3, 2, 2] with 2 scales and 3 shifts"), std::string::npos) << e.what();
  }
}
