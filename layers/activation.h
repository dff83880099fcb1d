#pragma once
// Element-wise activations.
//   x, y, dy, dx   any shape (n elements), contiguous
#include <cstdint>

#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

// ---- kernels (no autograd) ----
// y = max(x, 0), keeping NaN. Overwrites y (may be x).
void relu_forward(float* y, const float* x, int64_t n);
// y = max(a + b, 0), keeping NaN: a residual block's sum and its ReLU in one pass.
void add_relu_forward(float* y, const float* a, const float* b, int64_t n);
// dx = dy where y > 0, else 0 (the gradient at 0 is taken as 0, as PyTorch). y is the forward's
// output (of relu or add_relu: for add_relu both inputs get this dx). Overwrites dx.
void relu_backward(float* dx, const float* dy, const float* y, int64_t n);
// The same for dy = first + second (the output fed two consumers), summed as they are read: the
// same values as relu_backward on the sum, without the pass that writes the sum.
void relu_backward_two_parts(float* dx, const float* first, const float* second, const float* y, int64_t n);

// y = max(x, 0). The gradient at x == 0 is taken as 0 (as PyTorch); NaN inputs propagate.
Tensor relu(const Tensor& x);
// relu(a + b) in one pass, with the same values and gradients as the composition (its naive twin):
// one buffer and one pass less per residual block. a and b must have the same shape.
Tensor add_relu(const Tensor& a, const Tensor& b);

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& input) override { return relu(input); }
  std::string type_name() const override { return "ReLU"; }
};

}  // namespace inq
