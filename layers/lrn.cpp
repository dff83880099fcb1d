#include "layers/lrn.h"

#include <algorithm>
#include <cmath>

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq {

namespace {

void check_options(const LocalResponseNormOptions& o) {
  INQ_CHECK(o.size > 0, "Given LocalResponseNorm size {}, expected a positive window", o.size);
  INQ_CHECK(std::isfinite(o.alpha) && o.alpha >= 0.0,
            "Given LocalResponseNorm alpha {}, expected a finite value >= 0", o.alpha);
  INQ_CHECK(std::isfinite(o.beta), "Given LocalResponseNorm beta {}, expected a finite value", o.beta);
  INQ_CHECK(std::isfinite(o.k) && o.k > 0.0, "Given LocalResponseNorm k {}, expected a finite value > 0",
            o.k);
}

// Output channel c reads input channels [c - before, c + after]; input channel j is therefore read
// by output channels [j - after, j + before].
struct Window {
  int64_t before, after;
};
Window window_of(int64_t size) { return {size / 2, (size - 1) / 2}; }

// Saves the input, the output and the denominator base (Caffe's scale_): the output and input are
// aliases of tensors that exist anyway, the scale is the one extra buffer.
struct LocalResponseNormBackward : Node {
  LocalResponseNormOptions o;
  Tensor x, y, scale;  // (N, C, inner) flattened; scale = k + alpha/size * window sum of x^2

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const int64_t n = x.size(0), c = x.size(1);
    const LrnShape shape{.n = n, .c = c, .inner = x.numel() / std::max<int64_t>(1, n * c)};
    Tensor dx = Tensor::empty(x.shape()), scratch = Tensor::empty(x.shape());
    local_response_norm_backward(dx.data(), scratch.data(), grad_output.data(), x.data(), y.data(), scale.data(),
                                 shape, o);
    return {dx};
  }
  void release() override { x = y = scale = Tensor(); }
  std::string name() const override { return "LocalResponseNormBackward"; }
};

}  // namespace

void local_response_norm_forward(float* y, float* scale, const float* x, const LrnShape& shape,
                                 const LocalResponseNormOptions& options) {
  const int64_t channels = shape.c, inner = shape.inner, planes = shape.n * shape.c;
  const Window win = window_of(options.size);
  const float k = static_cast<float>(options.k);
  const float alpha_over_size = static_cast<float>(options.alpha / static_cast<double>(options.size));
  const float neg_beta = static_cast<float>(-options.beta);
  // One output plane per iteration, its window summed in channel order: deterministic.
#pragma omp parallel for schedule(static) if (planes * inner > 65536)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t n = p / channels, c = p % channels;
    const int64_t lo = std::max<int64_t>(0, c - win.before), hi = std::min(channels - 1, c + win.after);
    float* ss = scale + p * inner;
    for (int64_t i = 0; i < inner; ++i) ss[i] = 0.0f;
    for (int64_t cc = lo; cc <= hi; ++cc) {
      const float* xs = x + (n * channels + cc) * inner;
      for (int64_t i = 0; i < inner; ++i) ss[i] += xs[i] * xs[i];
    }
    const float* xs = x + p * inner;
    float* ys = y + p * inner;
    for (int64_t i = 0; i < inner; ++i) {
      ss[i] = k + alpha_over_size * ss[i];
      ys[i] = xs[i] * std::pow(ss[i], neg_beta);
    }
  }
}

void local_response_norm_backward(float* dx, float* scratch, const float* dy, const float* x, const float* y,
                                  const float* scale, const LrnShape& shape, const LocalResponseNormOptions& o) {
  const int64_t channels = shape.c, inner = shape.inner, planes = shape.n * shape.c, total = planes * inner;
  const Window win = window_of(o.size);
  const float neg_beta = static_cast<float>(-o.beta);
  const float coeff = static_cast<float>(2.0 * o.alpha * o.beta / static_cast<double>(o.size));
  // t = dy * y / scale, the factor every window member's gradient shares.
  float* t = scratch;
#pragma omp parallel for schedule(static) if (total > 65536)
  for (int64_t i = 0; i < total; ++i) t[i] = dy[i] * y[i] / scale[i];
#pragma omp parallel for schedule(static) if (total > 65536)
  for (int64_t p = 0; p < planes; ++p) {
    const int64_t n = p / channels, j = p % channels;
    const int64_t lo = std::max<int64_t>(0, j - win.after), hi = std::min(channels - 1, j + win.before);
    const float* xs = x + p * inner;
    const float* ss = scale + p * inner;
    const float* gs = dy + p * inner;
    float* ds = dx + p * inner;
    // ds first collects the window sum of t (channel-outer, so the inner loop is contiguous).
    for (int64_t i = 0; i < inner; ++i) ds[i] = 0.0f;
    for (int64_t c = lo; c <= hi; ++c) {
      const float* ts = t + (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) ds[i] += ts[i];
    }
    for (int64_t i = 0; i < inner; ++i) ds[i] = gs[i] * std::pow(ss[i], neg_beta) - coeff * xs[i] * ds[i];
  }
}

Tensor local_response_norm(const Tensor& x, const LocalResponseNormOptions& options) {
  check_options(options);
  INQ_CHECK(x.defined() && x.dim() >= 3,
            "Given local_response_norm input of shape {}, expected at least 3 dims (N, C, *)",
            x.defined() ? shape_str(x.shape()) : "undefined");
  const int64_t n_batch = x.size(0), channels = x.size(1);
  const int64_t planes = n_batch * channels;
  const int64_t inner = planes == 0 ? 0 : x.numel() / planes;
  Tensor scale = Tensor::empty(x.shape());
  Tensor y = Tensor::empty(x.shape());
  local_response_norm_forward(y.data(), scale.data(), x.data(), {.n = n_batch, .c = channels, .inner = inner}, options);

  if (needs_grad({&x})) {
    auto node = std::make_shared<LocalResponseNormBackward>();
    node->o = options;
    node->x = x.detach();
    node->y = y.detach();
    node->scale = scale;
    record(y, node, {&x});
  }
  return y;
}

LocalResponseNorm::LocalResponseNorm(const LocalResponseNormOptions& options) : options_(options) {
  check_options(options);
}

}  // namespace inq
