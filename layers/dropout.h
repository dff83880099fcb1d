#pragma once
// Inverted dropout (as torch.nn.Dropout).
//   x, y   any shape
// Training: each element is zeroed with probability p and the survivors are scaled by 1/(1-p), so
// the expected output equals the input; p == 1 zeroes everything. Eval: identity (returns x itself).
// The mask is drawn serially from the generator in element order, so the same generator state gives
// the same mask whatever the thread count.
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

// p in [0, 1]. Draws one number per element from `gen` in training mode with 0 < p < 1, none otherwise.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());

struct DropoutOptions {
  double p = 0.5;  // in [0, 1]
};

class Dropout : public Module {
 public:
  explicit Dropout(const DropoutOptions& options = {});
  explicit Dropout(double p) : Dropout(DropoutOptions{.p = p}) {}
  Tensor forward(const Tensor& input) override { return dropout(input, options_.p, is_training()); }
  std::string type_name() const override { return "Dropout"; }
  const DropoutOptions& options() const { return options_; }

 private:
  DropoutOptions options_;
};

}  // namespace inq
