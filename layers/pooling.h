#pragma once
// 2-d pooling over the spatial dims of an NCHW tensor, with PyTorch's shape and divisor rules.
//   x    (N, C, H, W)
//   y    (N, C, OH, OW)
// Kernels are square (every pooling layer of the supported models is).
#include <cstdint>

#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

// PyTorch's pooling output size along one dim:
//   out = floor_or_ceil((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1,
// and in ceil mode the last window must start inside the input or the left padding, otherwise it is
// dropped: if (out - 1) * stride >= in + pad then out -= 1. May return a value < 1 (caller checks).
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                         bool ceil_mode);

// The resolved geometry of one pooling call, computed once and shared by forward and backward.
struct Pool2dGeometry {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t oh = 0, ow = 0;              // output
  int64_t kernel = 0, stride = 0, padding = 0, dilation = 1;
};

struct MaxPool2dOptions {
  int64_t kernel_size = 0;  // > 0
  int64_t stride = 0;       // 0 means kernel_size
  int64_t padding = 0;      // <= kernel_size / 2; implicit -inf
  int64_t dilation = 1;     // > 0
  bool ceil_mode = false;
};

struct AvgPool2dOptions {
  int64_t kernel_size = 0;  // > 0
  int64_t stride = 0;       // 0 means kernel_size
  int64_t padding = 0;      // <= kernel_size / 2; implicit zeros
  bool ceil_mode = false;
  // Divide by the window size clipped to the padded input (true) or by the number of input
  // elements in the window (false). Either way a ceil-mode window hanging past the right padding
  // is not counted, as in PyTorch.
  bool count_include_pad = true;
};

// Validates x and the options; throws inq::Error naming the shapes on any violation.
Pool2dGeometry max_pool2d_geometry(const Shape& x_shape, const MaxPool2dOptions& options);
Pool2dGeometry avg_pool2d_geometry(const Shape& x_shape, const AvgPool2dOptions& options);

// Max-pool kernels, outputs first: y (N, C, OH, OW) and, when not null, argmax (N, C, OH, OW) as the
// offset of each window's maximum within its input plane (-1 for a window with no input element).
// The naive one is the reference the fast one is tested against; both are deterministic.
void max_pool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dGeometry& g);
void max_pool2d_forward_naive(float* y, int32_t* argmax, const float* x, const Pool2dGeometry& g);

// Backward kernels, gradients first: dx (N, C, H, W) is overwritten from dy (N, C, OH, OW).
// Max: each output gradient goes to its window's saved argmax (adds where windows overlap).
void max_pool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dGeometry& g);
// Average: each output gradient is shared equally by its window's input elements (the forward divisor).
void avg_pool2d_backward(float* dx, const float* dy, const Pool2dGeometry& g, bool count_include_pad);

// Max over each window; NaN propagates. Backward routes each output gradient to the position of
// its window's maximum (the first one on ties, saved at forward).
Tensor max_pool2d(const Tensor& x, const MaxPool2dOptions& options);
Tensor avg_pool2d(const Tensor& x, const AvgPool2dOptions& options);
// Averages over bins start = floor(i*H/OH), end = ceil((i+1)*H/OH) (same along W); bins may overlap.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t output_h, int64_t output_w);

// Adaptive pooling's shapes: x (n, c, h, w) -> y (n, c, oh, ow).
struct AdaptivePool2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
};
// dx (n, c, h, w) overwritten: each bin's gradient shared equally by its inputs (bins may overlap).
void adaptive_avg_pool2d_backward(float* dx, const float* dy, const AdaptivePool2dShape& s);

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const MaxPool2dOptions& options);
  Tensor forward(const Tensor& input) override { return max_pool2d(input, options_); }
  std::string type_name() const override { return "MaxPool2d"; }
  const MaxPool2dOptions& options() const { return options_; }

 private:
  MaxPool2dOptions options_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const AvgPool2dOptions& options);
  Tensor forward(const Tensor& input) override { return avg_pool2d(input, options_); }
  std::string type_name() const override { return "AvgPool2d"; }
  const AvgPool2dOptions& options() const { return options_; }

 private:
  AvgPool2dOptions options_;
};

struct AdaptiveAvgPool2dOptions {
  int64_t output_h = 1;  // > 0
  int64_t output_w = 1;  // > 0
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(const AdaptiveAvgPool2dOptions& options);
  Tensor forward(const Tensor& input) override {
    return adaptive_avg_pool2d(input, options_.output_h, options_.output_w);
  }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  const AdaptiveAvgPool2dOptions& options() const { return options_; }

 private:
  AdaptiveAvgPool2dOptions options_;
};

}  // namespace inq
