#include "layers/fold_batchnorm.h"

#include <cmath>

#include "framework/error.h"

namespace inq {

FoldedConv2d fold_batchnorm(const Tensor& conv_weight, const Tensor& conv_bias, const Tensor& bn_weight,
                            const Tensor& bn_bias, const Tensor& running_mean, const Tensor& running_var,
                            double eps) {
  INQ_CHECK(conv_weight.defined() && conv_weight.dim() == 4,
            "Given a convolution weight of shape {}, expected (K, C/groups, R, S)",
            conv_weight.defined() ? shape_str(conv_weight.shape()) : "undefined");
  const int64_t K = conv_weight.size(0), per_channel = conv_weight.numel() / K;
  for (const auto& [t, what] : {std::pair{&conv_bias, "convolution bias"}, std::pair{&bn_weight, "BatchNorm weight"},
                                std::pair{&bn_bias, "BatchNorm bias"}, std::pair{&running_mean, "running_mean"},
                                std::pair{&running_var, "running_var"}}) {
    const bool optional = t == &conv_bias || t == &bn_weight || t == &bn_bias;
    INQ_CHECK(optional || t->defined(), "Given BatchNorm folding without {}, expected running statistics", what);
    INQ_CHECK(!t->defined() || t->shape() == Shape{K},
              "Given BatchNorm folding into a convolution with {} output channels, expected {} of shape [{}], "
              "but got {}",
              K, what, K, t->defined() ? shape_str(t->shape()) : "undefined");
  }
  FoldedConv2d out{Tensor::empty(conv_weight.shape()), Tensor::empty({K})};
  for (int64_t k = 0; k < K; ++k) {
    const double gamma = bn_weight.defined() ? bn_weight.data()[k] : 1.0;
    const double beta = bn_bias.defined() ? bn_bias.data()[k] : 0.0;
    const double b = conv_bias.defined() ? conv_bias.data()[k] : 0.0;
    const double s = gamma / std::sqrt(static_cast<double>(running_var.data()[k]) + eps);
    const float* w = conv_weight.data() + k * per_channel;
    float* wf = out.weight.data() + k * per_channel;
    for (int64_t i = 0; i < per_channel; ++i) wf[i] = static_cast<float>(s * w[i]);
    out.bias.data()[k] = static_cast<float>(s * (b - running_mean.data()[k]) + beta);
  }
  return out;
}

FoldedConv2d fold_batchnorm(const Conv2d& conv, const BatchNorm2d& bn) {
  INQ_CHECK(bn.options().track_running_stats,
            "Given a BatchNorm2d without running statistics, expected one that has them to fold (eval mode "
            "normalizes with them)");
  return fold_batchnorm(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                        bn.options().eps);
}

}  // namespace inq
