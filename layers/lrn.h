#pragma once
// Local response normalization across channels (AlexNet, GoogLeNet v1), as PyTorch defines it:
//   b[n,c,...] = a[n,c,...] / (k + alpha/size * sum_{c' in window(c)} a[n,c',...]^2)^beta
// where window(c) = [c - size/2, c + (size-1)/2] (integer division) clipped to [0, C), i.e. zero
// padding; note alpha is divided by size, as in PyTorch and Caffe (not in the AlexNet paper).
//   x, y   (N, C, *)   any trailing dims (usually H, W)
#include <cstdint>

#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

struct LocalResponseNormOptions {
  int64_t size = 0;  // channels in the window, > 0
  double alpha = 1e-4;
  double beta = 0.75;  // >= 0
  double k = 1.0;      // > 0 keeps the denominator positive
};

// The kernels, outputs first, on (n, c, inner) with inner the trailing dims flattened.
struct LrnShape {
  int64_t n = 0, c = 0, inner = 0;
};
// y (n, c, inner) and scale (n, c, inner) = k + alpha/size * window sum of x^2 (backward needs it).
void local_response_norm_forward(float* y, float* scale, const float* x, const LrnShape& shape,
                                 const LocalResponseNormOptions& options);
// dx (n, c, inner) from dy, x, y and scale: dx = dy * scale^-beta - 2 alpha beta / size * x *
// (window sum of dy * y / scale) (the window transposed: input channel j is read by outputs
// [j - after, j + before]). scratch: n * c * inner floats.
void local_response_norm_backward(float* dx, float* scratch, const float* dy, const float* x, const float* y,
                                  const float* scale, const LrnShape& shape, const LocalResponseNormOptions& options);

// Exact backward (through the window sums).
Tensor local_response_norm(const Tensor& x, const LocalResponseNormOptions& options);

class LocalResponseNorm : public Module {
 public:
  explicit LocalResponseNorm(const LocalResponseNormOptions& options);
  Tensor forward(const Tensor& input) override { return local_response_norm(input, options_); }
  std::string type_name() const override { return "LocalResponseNorm"; }
  const LocalResponseNormOptions& options() const { return options_; }

 private:
  LocalResponseNormOptions options_;
};

}  // namespace inq
