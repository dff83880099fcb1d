#include "framework/tensor.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "framework/allocator.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/ops.h"

namespace inq {

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    INQ_CHECK(d >= 0, "Given shape {}, expected non-negative dimensions, but got {} instead",
              shape_str(shape), d);
    INQ_CHECK(d == 0 || n <= std::numeric_limits<int64_t>::max() / d,
              "Given shape {}, expected a element count that fits in 64 bits, but it overflows",
              shape_str(shape));
    n *= d;
  }
  return n;
}

namespace {
// PoisonFreshBuffersGuard's state. The flag is read on every allocation (from any thread); the
// value is written before the flag is set, and read only after the flag was seen set.
std::atomic<bool> g_poison_on{false};
std::atomic<float> g_poison_value{0.0f};
}  // namespace

PoisonFreshBuffersGuard::PoisonFreshBuffersGuard(float value)
    : previous_on_(g_poison_on.load()), previous_value_(g_poison_value.load()) {
  g_poison_value.store(value);
  g_poison_on.store(true);
}

PoisonFreshBuffersGuard::~PoisonFreshBuffersGuard() {
  g_poison_value.store(previous_value_);
  g_poison_on.store(previous_on_);
}

std::shared_ptr<float> allocate_floats(int64_t count) {
  // Through the caching allocator (framework/allocator.h): in a training loop's steady state the
  // block comes back from the previous step instead of from the system.
  const size_t bytes = static_cast<size_t>(count > 0 ? count : 1) * sizeof(float);
  float* p = static_cast<float*>(allocate_block(bytes));
  if (g_poison_on.load(std::memory_order_acquire)) std::fill_n(p, count, g_poison_value.load());
  return std::shared_ptr<float>(p, [bytes](float* q) { free_block(q, bytes); });
}

static std::shared_ptr<TensorImpl> make_impl(const Shape& shape) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->numel = shape_numel(shape);
  impl->storage = allocate_floats(impl->numel);
  return impl;
}

Tensor Tensor::empty(const Shape& shape) { return Tensor(make_impl(shape)); }

Tensor Tensor::zeros(const Shape& shape) { return full(shape, 0.0f); }

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  Tensor t = empty(shape);
  INQ_CHECK(static_cast<int64_t>(values.size()) == t.numel(),
            "Given shape {}, expected {} values, but got {} instead", shape_str(shape), t.numel(),
            values.size());
  if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

static TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  INQ_CHECK(impl != nullptr, "Given an undefined tensor, expected a defined one");
  return *impl;
}

const Shape& Tensor::shape() const { return checked(impl_).shape; }

int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  INQ_CHECK(d >= -n && d < n, "Given a tensor of shape {}, expected a dimension index in [{}, {}), but got {} instead",
            shape_str(shape()), -n, n, d);
  return shape()[static_cast<size_t>(d < 0 ? d + n : d)];
}

int64_t Tensor::numel() const { return checked(impl_).numel; }
float* Tensor::data() { return checked(impl_).storage.get() + impl_->offset; }
const float* Tensor::data() const { return checked(impl_).storage.get() + impl_->offset; }

std::vector<float> Tensor::to_vector() const { return std::vector<float>(data(), data() + numel()); }

float Tensor::item() const {
  INQ_CHECK(numel() == 1, "Given a tensor of shape {}, expected exactly one element for item()",
            shape_str(shape()));
  return data()[0];
}

Tensor Tensor::reshape(const Shape& new_shape) const { return ops::reshape(*this, new_shape); }

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  const TensorImpl& src = checked(impl_);
  impl->storage = src.storage;
  impl->offset = src.offset;
  impl->shape = src.shape;
  impl->numel = src.numel;
  return Tensor(impl);
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape());
  if (numel() > 0) std::memcpy(t.data(), data(), static_cast<size_t>(numel()) * sizeof(float));
  return t;
}

void Tensor::fill_(float value) {
  float* p = data();
  const int64_t n = numel();
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

void Tensor::copy_from(const Tensor& src) {
  INQ_CHECK(src.numel() == numel(), "Given a copy from shape {} into shape {}, expected equal element counts",
            shape_str(src.shape()), shape_str(shape()));
  if (numel() > 0 && src.data() != data())
    std::memmove(data(), src.data(), static_cast<size_t>(numel()) * sizeof(float));
}

bool Tensor::requires_grad() const {
  const TensorImpl& impl = checked(impl_);
  return impl.requires_grad || impl.grad_fn != nullptr;
}

Tensor& Tensor::set_requires_grad(bool on) {
  INQ_CHECK(is_leaf(), "Given a non-leaf tensor of shape {}, expected a leaf for set_requires_grad",
            shape_str(shape()));
  impl_->requires_grad = on;
  return *this;
}

bool Tensor::is_leaf() const { return checked(impl_).grad_fn == nullptr; }

Tensor Tensor::grad() const { return Tensor(checked(impl_).grad); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined())
    INQ_CHECK(g.shape() == shape(), "Given a gradient of shape {}, expected the tensor's shape {}",
              shape_str(g.shape()), shape_str(shape()));
  checked(impl_).grad = g.impl_ptr();
}

void Tensor::zero_grad() {
  if (checked(impl_).grad) Tensor(impl_->grad).fill_(0.0f);
}

const std::shared_ptr<Node>& Tensor::grad_fn() const { return checked(impl_).grad_fn; }

void Tensor::backward(const Tensor& seed) const {
  if (seed.defined()) {
    run_backward(*this, seed);
    return;
  }
  INQ_CHECK(numel() == 1, "Given backward() without a seed on a tensor of shape {}, expected a one-element tensor",
            shape_str(shape()));
  run_backward(*this, Tensor::full(shape(), 1.0f));
}

bool Tensor::same_storage(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

}  // namespace inq
