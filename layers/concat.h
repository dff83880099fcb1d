#pragma once
// Channel concatenation (the join of GoogLeNet's inception branches).
//   xs[i]   (N, C_i, *)      same rank >= 2, equal in every dim but 1
//   y       (N, sum C_i, *)
// Backward splits the gradient back into the branches. Residual additions use inq::ops::add.
#include <vector>

#include "framework/tensor.h"

namespace inq {

Tensor concat_channels(const std::vector<Tensor>& xs);

}  // namespace inq
