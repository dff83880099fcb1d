#include "layers/activation.h"

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq {

// Below this many elements one thread beats waking the team.
constexpr int64_t kParallelMin = 65536;

void relu_forward(float* y, const float* x, int64_t n) {
  // Written as a comparison that keeps NaN (NaN > 0 is false, so std::max-style code would drop it).
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void add_relu_forward(float* y, const float* a, const float* b, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float s = a[i] + b[i];
    y[i] = s < 0.0f ? 0.0f : s;
  }
}

void relu_backward(float* dx, const float* dy, const float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void relu_backward_two_parts(float* dx, const float* first, const float* second, const float* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float g = first[i] + second[i];
    dx[i] = y[i] > 0.0f ? g : 0.0f;
  }
}

namespace {

// The output alone decides the gradient (y > 0 exactly where the ReLU's input > 0), and the output
// is kept alive by the next layer anyway, so saving it costs no memory. `inputs` is 1 for relu and
// 2 for add_relu, whose two inputs receive the same gradient (one buffer: the engine copies it
// before anything sums into it).
struct ReluBackward : Node {
  Tensor y;  // detached output, same shape as the input(s)
  int inputs = 1;
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    Tensor dx = Tensor::empty(y.shape());
    relu_backward(dx.data(), grad_output.data(), y.data(), y.numel());
    if (inputs == 1) return {dx};
    return {dx, dx};
  }
  // A ReLU's output feeding two consumers (a residual block's output: the next block's shortcut
  // and its first convolution) gets its gradient in two parts: summed here as they are read.
  bool takes_two_gradient_parts() const override { return true; }
  std::vector<Tensor> backward_two_parts(const Tensor& first, const Tensor& second) override {
    if (first.shape() != y.shape() || second.shape() != y.shape()) return Node::backward_two_parts(first, second);
    Tensor dx = Tensor::empty(y.shape());
    relu_backward_two_parts(dx.data(), first.data(), second.data(), y.data(), y.numel());
    if (inputs == 1) return {dx};
    return {dx, dx};
  }
  void release() override { y = Tensor(); }
  std::string name() const override { return inputs == 1 ? "ReluBackward" : "AddReluBackward"; }
};

}  // namespace

Tensor relu(const Tensor& x) {
  INQ_CHECK(x.defined(), "Given relu of an undefined tensor, expected a defined one");
  Tensor y = Tensor::empty(x.shape());
  relu_forward(y.data(), x.data(), x.numel());
  if (needs_grad({&x})) {
    auto node = std::make_shared<ReluBackward>();
    node->y = y.detach();
    record(y, node, {&x});
  }
  return y;
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  INQ_CHECK(a.defined() && b.defined(), "Given add_relu of an undefined tensor, expected defined ones");
  INQ_CHECK(a.shape() == b.shape(), "Given add_relu of shapes {} and {}, expected equal shapes",
            shape_str(a.shape()), shape_str(b.shape()));
  Tensor y = Tensor::empty(a.shape());
  add_relu_forward(y.data(), a.data(), b.data(), a.numel());
  if (needs_grad({&a, &b})) {
    auto node = std::make_shared<ReluBackward>();
    node->y = y.detach();
    node->inputs = 2;
    record(y, node, {&a, &b});
  }
  return y;
}

}  // namespace inq
