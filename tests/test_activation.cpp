// ReLU: values, gradient (0 at the kink), NaN propagation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "framework/error.h"
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
