#pragma once
// Fully connected layer: y = x * w^T + b (as PyTorch's Linear).
//   x (N, in)   w (out, in)   b (out)   y (N, out)
#include <string>

#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

struct LinearOptions {
  int64_t in_features = 0, out_features = 0;
  bool bias = true;
};

// ---- kernels (no autograd; contiguous buffers) ----
// y = x * w^T + b; b may be null. Overwrites y.
void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t in,
                    int64_t out);
// Gradients given dy; each output may be null. x is needed only for dw, w only for dx.
// accumulate: the gradients are ADDED into dx, dw, db; otherwise they are written (the GEMMs run
// with beta = 0), so the buffers need no zeroing first and may hold anything on entry.
void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                     int64_t N, int64_t in, int64_t out, bool accumulate = true);

// Functional linear with autograd. bias is (out) or undefined. Shape errors throw inq::Error naming
// x's, weight's and bias's shapes.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// The layer. Parameters "weight" (out, in) and "bias" (out), initialized as PyTorch does: both
// U(-1/sqrt(in), 1/sqrt(in)) (weight drawn first).
class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Linear"; }
  const LinearOptions& options() const { return options_; }
  void reset_parameters();

  Tensor weight;  // (out, in)
  Tensor bias;    // (out), undefined when options.bias is false

 private:
  LinearOptions options_;
};

}  // namespace inq
