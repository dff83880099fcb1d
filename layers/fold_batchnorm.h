#pragma once
// Folding an eval-mode BatchNorm into the convolution that feeds it, for inference.
//   conv:  y = w * x + b            w (K, C/groups, R, S), b (K) or none
//   bn:    z = (y - mean) * s + beta,   s = gamma / sqrt(running_var + eps)   (per channel k)
// so z = w' * x + b' with, per output channel k,
//   w'[k] = s[k] * w[k]       b'[k] = s[k] * (b[k] - mean[k]) + beta[k]     (b = 0 without a bias)
// One convolution with a bias replaces a convolution and a full pass of BatchNorm over the output.
// Exact in real arithmetic; in float the folded output differs from the two-step one by rounding
// (tests/test_fold_batchnorm.cpp bounds it). Only valid while the BatchNorm uses its running
// statistics (eval mode, track_running_stats); training must keep the two layers.
#include "framework/tensor.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"

namespace inq {

struct FoldedConv2d {
  Tensor weight;  // (K, C/groups, R, S)
  Tensor bias;    // (K)
};

// The folded parameters (new tensors; conv and bn are unchanged). Computed in double.
// Throws inq::Error when bn has no running statistics or its channel count is not conv's K.
FoldedConv2d fold_batchnorm(const Conv2d& conv, const BatchNorm2d& bn);
// The same on plain tensors: conv_bias, bn_weight and bn_bias may be undefined (0, 1 and 0).
FoldedConv2d fold_batchnorm(const Tensor& conv_weight, const Tensor& conv_bias, const Tensor& bn_weight,
                            const Tensor& bn_bias, const Tensor& running_mean, const Tensor& running_var,
                            double eps);

}  // namespace inq
