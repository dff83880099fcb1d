#pragma once
// Fully connected layer: y = x * w^T + b (as PyTorch's Linear).
//   x (N, in)   w (out, in)   b (out)   y (N, out)
#include <memory>
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

// Another representation of a Linear layer's weight (inq/packed_inference.h keeps it as b-bit
// codes). forward(x, bias) returns what linear(x, weight, bias) would for x of shape (N, in);
// inference only: no gradient reaches the weight. Lives here so the layer can call it without
// layers/ depending on who provides it.
class LinearWeightKernel {
 public:
  virtual ~LinearWeightKernel() = default;
  virtual Tensor forward(const Tensor& x, const Tensor& bias) const = 0;
};

// The layer. Parameters "weight" (out, in) and "bias" (out), initialized as PyTorch does: both
// U(-1/sqrt(in), 1/sqrt(in)) (weight drawn first).
class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Linear"; }
  const LinearOptions& options() const { return options_; }
  void reset_parameters();
  // Replaces the float weight by `kernel` for good: "weight" leaves the parameters (and
  // state_dict()), `weight` becomes undefined and its storage is released once no other handle holds
  // it; forward() calls kernel->forward(input, bias) from then on.
  void replace_weight(std::shared_ptr<const LinearWeightKernel> kernel);
  const LinearWeightKernel* weight_kernel() const { return kernel_.get(); }

  Tensor weight;  // (out, in); undefined after replace_weight
  Tensor bias;    // (out), undefined when options.bias is false

 private:
  LinearOptions options_;
  std::shared_ptr<const LinearWeightKernel> kernel_;
};

}  // namespace inq
