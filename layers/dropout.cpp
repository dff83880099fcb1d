#include "layers/dropout.h"

#include <cstdint>
#include <vector>

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq {

namespace {

void check_p(double p) {
  INQ_CHECK(p >= 0.0 && p <= 1.0, "Given dropout probability {}, expected a value in [0, 1]", p);
}

// The mask as one byte per element (a quarter of a float mask); the scale is a single number.
struct DropoutBackward : Node {
  std::vector<uint8_t> keep;  // same element count as the input
  float scale = 1.0f;         // 1 / (1 - p)
  Shape shape;

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    Tensor dx = Tensor::empty(shape);
    const float* pg = grad_output.data();
    float* pd = dx.data();
    const int64_t n = dx.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) pd[i] = keep[i] ? pg[i] * scale : 0.0f;
    return {dx};
  }
  void release() override { keep = {}; }
  std::string name() const override { return "DropoutBackward"; }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check_p(p);
  INQ_CHECK(x.defined(), "Given dropout of an undefined tensor, expected a defined one");
  if (!training || p == 0.0) return x;
  const int64_t n = x.numel();
  std::vector<uint8_t> keep(static_cast<size_t>(n), 0);
  // p == 1 keeps nothing and draws nothing (1/(1-p) would be infinite).
  const float scale = p < 1.0 ? static_cast<float>(1.0 / (1.0 - p)) : 0.0f;
  if (p < 1.0)
    for (int64_t i = 0; i < n; ++i) keep[i] = gen.bernoulli(p) ? 0 : 1;

  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = y.data();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) py[i] = keep[i] ? px[i] * scale : 0.0f;

  if (needs_grad({&x})) {
    auto node = std::make_shared<DropoutBackward>();
    node->keep = std::move(keep);
    node->scale = scale;
    node->shape = x.shape();
    record(y, node, {&x});
  }
  return y;
}

Dropout::Dropout(const DropoutOptions& options) : options_(options) { check_p(options.p); }

}  // namespace inq
