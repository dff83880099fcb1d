#pragma once
// Element-wise activations.
//   x, y   any shape
#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

// y = max(x, 0). The gradient at x == 0 is taken as 0 (as PyTorch); NaN inputs propagate.
Tensor relu(const Tensor& x);

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& input) override { return relu(input); }
  std::string type_name() const override { return "ReLU"; }
};

}  // namespace inq
