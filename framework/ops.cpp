#include "framework/ops.h"

#include <cmath>

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq::ops {

namespace {

struct ReshapeBackward : Node {
  Shape input_shape;
  std::vector<Tensor> backward(const Tensor& g) override { return {g.detach().reshape(input_shape)}; }
  std::string name() const override { return "ReshapeBackward"; }
};

struct AddBackward : Node {
  std::vector<Tensor> backward(const Tensor& g) override { return {g, g}; }
  std::string name() const override { return "AddBackward"; }
};

struct ScaleBackward : Node {
  float alpha = 1;
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx = Tensor::empty(g.shape());
    const float* pg = g.data();
    float* pd = dx.data();
    for (int64_t i = 0; i < g.numel(); ++i) pd[i] = alpha * pg[i];
    return {dx};
  }
  std::string name() const override { return "ScaleBackward"; }
};

struct AffineChannelsBackward : Node {
  std::vector<float> scale;
  int64_t batch = 0, inner = 0;  // x is (batch, scale.size(), inner) when flattened
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor dx = Tensor::empty(g.shape());
    const float* pg = g.data();
    float* pd = dx.data();
    const int64_t channels = static_cast<int64_t>(scale.size());
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t base = (n * channels + c) * inner;
        for (int64_t i = 0; i < inner; ++i) pd[base + i] = pg[base + i] * scale[c];
      }
    return {dx};
  }
  std::string name() const override { return "AffineChannelsBackward"; }
};

struct SumBackward : Node {
  Shape input_shape;
  std::vector<Tensor> backward(const Tensor& g) override { return {Tensor::full(input_shape, g.item())}; }
  std::string name() const override { return "SumBackward"; }
};

struct DotBackward : Node {
  Tensor a, b;  // detached inputs
  std::vector<Tensor> backward(const Tensor& g) override {
    const float s = g.item();
    Tensor ga = Tensor::empty(a.shape()), gb = Tensor::empty(b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) {
      ga.data()[i] = s * b.data()[i];
      gb.data()[i] = s * a.data()[i];
    }
    return {ga, gb};
  }
  void release() override { a = b = Tensor(); }
  std::string name() const override { return "DotBackward"; }
};

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape resolved = shape;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == -1) {
      INQ_CHECK(infer_at < 0, "Given reshape of {} to {}, expected at most one -1", shape_str(x.shape()),
                shape_str(shape));
      infer_at = static_cast<int64_t>(i);
    } else {
      INQ_CHECK(resolved[i] >= 0, "Given reshape of {} to {}, expected non-negative sizes", shape_str(x.shape()),
                shape_str(shape));
      known *= resolved[i];
    }
  }
  if (infer_at >= 0) {
    INQ_CHECK(known > 0 && x.numel() % known == 0, "Given reshape of {} to {}, expected a size that divides {}",
              shape_str(x.shape()), shape_str(shape), x.numel());
    resolved[static_cast<size_t>(infer_at)] = x.numel() / known;
  }
  INQ_CHECK(shape_numel(resolved) == x.numel(), "Given reshape of {} ({} elements) to {}, expected the same element count",
            shape_str(x.shape()), x.numel(), shape_str(shape));
  Tensor out = x.detach();
  out.impl()->shape = resolved;
  if (needs_grad({&x})) {
    auto node = std::make_shared<ReshapeBackward>();
    node->input_shape = x.shape();
    record(out, node, {&x});
  }
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) {
  INQ_CHECK(a.shape() == b.shape(), "Given add of shapes {} and {}, expected equal shapes", shape_str(a.shape()),
            shape_str(b.shape()));
  Tensor out = Tensor::empty(a.shape());
  const float* pa = a.data();
  const float* pb = b.data();
  float* po = out.data();
  const int64_t n = a.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) po[i] = pa[i] + pb[i];
  if (needs_grad({&a, &b})) record(out, std::make_shared<AddBackward>(), {&a, &b});
  return out;
}

Tensor scale(const Tensor& x, float alpha) {
  INQ_CHECK(x.defined(), "Given scale of an undefined tensor, expected a defined one");
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* po = out.data();
  for (int64_t i = 0; i < x.numel(); ++i) po[i] = alpha * px[i];
  if (needs_grad({&x})) {
    auto node = std::make_shared<ScaleBackward>();
    node->alpha = alpha;
    record(out, node, {&x});
  }
  return out;
}

Tensor affine_channels(const Tensor& x, const std::vector<float>& scale, const std::vector<float>& shift) {
  INQ_CHECK(x.defined() && x.dim() >= 2,
            "Given affine_channels input of shape {}, expected at least 2 dims (N, C, *)",
            x.defined() ? shape_str(x.shape()) : "undefined");
  const int64_t channels = x.size(1);
  INQ_CHECK(static_cast<int64_t>(scale.size()) == channels && static_cast<int64_t>(shift.size()) == channels,
            "Given affine_channels input of shape {} with {} scales and {} shifts, expected {} of each",
            shape_str(x.shape()), scale.size(), shift.size(), channels);
  const int64_t batch = x.size(0);
  const int64_t inner = channels * batch == 0 ? 0 : x.numel() / (channels * batch);
  Tensor out = Tensor::empty(x.shape());
  const float* px = x.data();
  float* po = out.data();
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t base = (n * channels + c) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        // Product, then sum, as PyTorch's separate mul and add kernels (up to fused multiply-adds).
        const float product = px[base + i] * scale[c];
        po[base + i] = product + shift[c];
      }
    }
  if (needs_grad({&x})) {
    auto node = std::make_shared<AffineChannelsBackward>();
    node->scale = scale;
    node->batch = batch;
    node->inner = inner;
    record(out, node, {&x});
  }
  return out;
}

Tensor sum(const Tensor& x) {
  double s = 0.0;
  for (int64_t i = 0; i < x.numel(); ++i) s += x.data()[i];
  Tensor out = Tensor::full({}, static_cast<float>(s));
  if (needs_grad({&x})) {
    auto node = std::make_shared<SumBackward>();
    node->input_shape = x.shape();
    record(out, node, {&x});
  }
  return out;
}

Tensor dot(const Tensor& a, const Tensor& b) {
  INQ_CHECK(a.numel() == b.numel(), "Given dot of shapes {} and {}, expected equal element counts",
            shape_str(a.shape()), shape_str(b.shape()));
  double s = 0.0;
  for (int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.data()[i]) * b.data()[i];
  Tensor out = Tensor::full({}, static_cast<float>(s));
  if (needs_grad({&a, &b})) {
    auto node = std::make_shared<DotBackward>();
    node->a = a.detach();
    node->b = b.detach();
    record(out, node, {&a, &b});
  }
  return out;
}

void add_into(Tensor& dst, const Tensor& src) { axpy_into(dst, 1.0f, src); }

void axpy_into(Tensor& dst, float alpha, const Tensor& src) {
  INQ_CHECK(dst.numel() == src.numel(), "Given accumulation of {} into {}, expected equal element counts",
            shape_str(src.shape()), shape_str(dst.shape()));
  float* d = dst.data();
  const float* s = src.data();
  const int64_t n = dst.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) d[i] += alpha * s[i];
}

bool all_finite(const Tensor& x) {
  const float* p = x.data();
  for (int64_t i = 0; i < x.numel(); ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

}  // namespace inq::ops
