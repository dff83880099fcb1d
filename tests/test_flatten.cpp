// Flatten: shapes, view semantics, gradients, dim errors.
#include <gtest/gtest.h>

#include "framework/error.h"
#include "gradcheck.h"
#include "layers/flatten.h"

using namespace inq;

TEST(Flatten, ShapesAndView) {
  Tensor x = Tensor::zeros({2, 3, 4, 5});
  Flatten f;
  Tensor y = f(x);
  EXPECT_EQ(y.shape(), (Shape{2, 60}));
  EXPECT_TRUE(y.same_storage(x));
  EXPECT_EQ(flatten(x).shape(), (Shape{120}));
  EXPECT_EQ(flatten(x, 1, 2).shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(flatten(x, -2, -1).shape(), (Shape{2, 3, 20}));
  EXPECT_EQ(flatten(x, 3, 3).shape(), (Shape{2, 3, 4, 5}));
  EXPECT_EQ(flatten(Tensor::zeros({})).shape(), (Shape{1}));
  EXPECT_EQ(Flatten({.start_dim = 1})(Tensor::zeros({7, 3})).shape(), (Shape{7, 3}));
}

TEST(Flatten, Gradients) {
  Generator gen(51);
  Flatten f;
  EXPECT_GT(test::check_module_gradients(f, test::random_tensor({2, 3, 2, 2}, gen)), 0);
}

TEST(Flatten, RejectsBadDims) {
  Tensor x = Tensor::zeros({2, 3, 4});
  EXPECT_THROW(flatten(x, 3), Error);
  EXPECT_THROW(flatten(x, 2, 1), Error);
  EXPECT_THROW(flatten(x, -4), Error);
  EXPECT_THROW(Flatten()(Tensor::zeros({5})), Error);  // start_dim 1 on a 1-d tensor
}
