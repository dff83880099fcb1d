#pragma once
// Small tensor ops that are not layers: views, element-wise arithmetic, reductions used by tests
// and the training loop. Ops that take tensors which require grad record a Node (see autograd.h).
#include <vector>

#include "framework/tensor.h"

namespace inq::ops {

// View with a new shape (same element count; one dim may be -1). Records a Node.
Tensor reshape(const Tensor& x, const Shape& shape);
// a + b, same shapes (the residual add). Records a Node.
Tensor add(const Tensor& a, const Tensor& b);
// alpha * x (weighting a term of a loss, e.g. GoogLeNet's auxiliary losses). Records a Node.
Tensor scale(const Tensor& x, float alpha);
// Per-channel affine map with constant coefficients (no gradient for them), e.g. a change of input
// normalization inside a model:
//   x, y   (N, C, *)      y[n, c, ...] = x[n, c, ...] * scale[c] + shift[c]
// computed in float. scale and shift hold C values each. Records a Node.
Tensor affine_channels(const Tensor& x, const std::vector<float>& scale, const std::vector<float>& shift);
// sum of all elements as a one-element tensor of shape []. Records a Node.
Tensor sum(const Tensor& x);
// sum(a * b) over all elements (the gradient checker's objective). Records a Node.
Tensor dot(const Tensor& a, const Tensor& b);

// ---- kernels without autograd ----
// dst += src (same element count).
void add_into(Tensor& dst, const Tensor& src);
// dst += alpha * src.
void axpy_into(Tensor& dst, float alpha, const Tensor& src);
// true when every element is finite.
bool all_finite(const Tensor& x);

}  // namespace inq::ops
