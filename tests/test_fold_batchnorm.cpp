// BatchNorm folded into the convolution before it (layers/fold_batchnorm.h): the folded
// convolution's output equals conv followed by eval-mode BatchNorm, within float rounding, on odd
// shapes with and without a convolution bias, with groups, stride and padding.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/random.h"
#include "gradcheck.h"
#include "layers/fold_batchnorm.h"

using namespace inq;

TEST(FoldBatchNorm, FoldedConvolutionEqualsConvThenEvalBatchNorm) {
  const std::vector<std::pair<Conv2dOptions, Shape>> configs = {
      {{.in_channels = 3, .out_channels = 5, .kernel_size = 3, .padding = 1, .bias = false}, {2, 3, 7, 5}},
      {{.in_channels = 4, .out_channels = 6, .kernel_size = {2, 3}, .stride = 2, .groups = 2}, {3, 4, 9, 8}},
      {{.in_channels = 7, .out_channels = 3, .kernel_size = 1, .bias = false}, {1, 7, 3, 11}},
  };
  seed_all(5);
  Generator gen(6);
  for (const auto& [opt, shape] : configs) {
    Conv2d conv(opt);
    BatchNorm2d bn(BatchNorm2dOptions{.num_features = opt.out_channels, .eps = 1e-3});
    bn.weight.copy_from(test::random_tensor({opt.out_channels}, gen));
    bn.bias.copy_from(test::random_tensor({opt.out_channels}, gen));
    bn.running_mean.copy_from(test::random_tensor({opt.out_channels}, gen));
    Tensor var = test::random_tensor({opt.out_channels}, gen);
    for (int64_t k = 0; k < var.numel(); ++k) var.data()[k] = 0.05f + std::fabs(var.data()[k]);
    bn.running_var.copy_from(var);
    bn.eval();
    NoGradGuard no_grad;
    Tensor x = test::random_tensor(shape, gen);
    Tensor want = bn.forward(conv.forward(x));
    const FoldedConv2d folded = fold_batchnorm(conv, bn);
    Conv2dOptions with_bias = opt;  // the folded convolution always has a bias
    with_bias.bias = true;
    Tensor got = conv2d(x, folded.weight, folded.bias, with_bias);
    ASSERT_EQ(got.shape(), want.shape());
    double worst = 0;
    for (int64_t i = 0; i < got.numel(); ++i)
      worst = std::max<double>(worst, std::fabs(got.data()[i] - want.data()[i]) / std::max(1.0f, std::fabs(want.data()[i])));
    EXPECT_LT(worst, 1e-5) << shape_str(shape);
    // The inputs are unchanged.
    EXPECT_NE(folded.weight.data(), conv.weight.data());
  }
}

TEST(FoldBatchNorm, NeedsRunningStatisticsOfTheRightSize) {
  Conv2d conv({.in_channels = 2, .out_channels = 4, .kernel_size = 3});
  BatchNorm2d no_stats(BatchNorm2dOptions{.num_features = 4, .track_running_stats = false});
  EXPECT_THROW(fold_batchnorm(conv, no_stats), Error);
  BatchNorm2d wrong(3);
  EXPECT_THROW(fold_batchnorm(conv, wrong), Error);
}
