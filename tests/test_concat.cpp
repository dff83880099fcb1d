// concat_channels: layout, gradient splitting, branches without gradients, shape errors.
#include <gtest/gtest.h>

#include "framework/error.h"
#include "gradcheck.h"
#include "layers/concat.h"

using namespace inq;

TEST(ConcatChannels, Layout) {
  Tensor a = Tensor::from_vector({2, 1, 1, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::from_vector({2, 2, 1, 2}, {10, 11, 12, 13, 14, 15, 16, 17});
  Tensor y = concat_channels({a, b});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 1, 2}));
  EXPECT_EQ(y.to_vector(), (std::vector<float>{1, 2, 10, 11, 12, 13, 3, 4, 14, 15, 16, 17}));
}

TEST(ConcatChannels, GradientsSplitPerBranch) {
  Generator gen(61);
  Tensor a = test::random_tensor({2, 1, 2, 3}, gen);
  Tensor b = test::random_tensor({2, 3, 2, 3}, gen);
  Tensor c = test::random_tensor({2, 2, 2, 3}, gen);
  EXPECT_GT(test::check_gradients(
                [&] {
                  return concat_channels({a, b, c});
                },
                {{"a", a}, {"b", b}, {"c", c}}),
            0);
}

TEST(ConcatChannels, BranchWithoutGradientIsSkipped) {
  Tensor a = Tensor::from_vector({1, 1, 1, 1}, {1});
  Tensor b = Tensor::from_vector({1, 2, 1, 1}, {2, 3});
  b.set_requires_grad(true);
  Tensor y = concat_channels({a, b, b});  // the same tensor twice: gradients add up
  y.backward(Tensor::from_vector({1, 5, 1, 1}, {1, 2, 3, 4, 5}));
  EXPECT_FALSE(a.grad().defined());
  EXPECT_EQ(b.grad().to_vector(), (std::vector<float>{2 + 4, 3 + 5}));
}

TEST(ConcatChannels, RejectsMismatchedShapes) {
  EXPECT_THROW(concat_channels({}), Error);
  EXPECT_THROW(concat_channels({Tensor::zeros({2, 1, 3, 3}), Tensor::zeros({2, 1, 3, 4})}), Error);
  EXPECT_THROW(concat_channels({Tensor::zeros({2, 1, 3, 3}), Tensor::zeros({1, 1, 3, 3})}), Error);
  EXPECT_THROW(concat_channels({Tensor::zeros({2, 1, 3, 3}), Tensor::zeros({2, 1, 9})}), Error);
  EXPECT_THROW(concat_channels({Tensor::zeros({4})}), Error);
  try {
    concat_channels({Tensor::zeros({2, 1, 3, 3}), Tensor::zeros({2, 5, 3, 4})});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 5, 3, 4]"), std::string::npos) << e.what();
  }
}
