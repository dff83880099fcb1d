#pragma once
// Flatten dims [start_dim, end_dim] into one (as torch.flatten); a view, autograd through reshape.
//   (N, C, H, W) with start_dim 1, end_dim -1  ->  (N, C*H*W)
#include <cstdint>

#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

// Negative dims count from the end; requires start_dim <= end_dim after resolution. A rank-0
// tensor flattens to shape [1], as in PyTorch.
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);

struct FlattenOptions {
  int64_t start_dim = 1;
  int64_t end_dim = -1;
};

class Flatten : public Module {
 public:
  explicit Flatten(const FlattenOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& input) override {
    return flatten(input, options_.start_dim, options_.end_dim);
  }
  std::string type_name() const override { return "Flatten"; }
  const FlattenOptions& options() const { return options_; }

 private:
  FlattenOptions options_;
};

}  // namespace inq
