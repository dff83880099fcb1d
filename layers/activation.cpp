#include "layers/activation.h"

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq {

namespace {

// The output alone decides the gradient (y > 0 exactly where x > 0), and the output is kept alive
// by the next layer anyway, so saving it costs no memory.
struct ReluBackward : Node {
  Tensor y;  // detached output, same shape as the input
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    Tensor dx = Tensor::empty(y.shape());
    const float* py = y.data();
    const float* pg = grad_output.data();
    float* pd = dx.data();
    const int64_t n = y.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) pd[i] = py[i] > 0.0f ? pg[i] : 0.0f;
    return {dx};
  }
  void release() override { y = Tensor(); }
  std::string name() const override { return "ReluBackward"; }
};

}  // namespace

Tensor relu(const Tensor& x) {
  INQ_CHECK(x.defined(), "Given relu of an undefined tensor, expected a defined one");
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = y.data();
  const int64_t n = x.numel();
  // Written as a comparison that keeps NaN (NaN > 0 is false, so std::max-style code would drop it).
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) py[i] = px[i] < 0.0f ? 0.0f : px[i];
  if (needs_grad({&x})) {
    auto node = std::make_shared<ReluBackward>();
    node->y = y.detach();
    record(y, node, {&x});
  }
  return y;
}

}  // namespace inq
