#pragma once
// Tensor: a float32, contiguous, row-major array with shared, 64-byte-aligned storage, plus the
// autograd fields a reverse-mode graph needs. A Tensor is a cheap handle (shared_ptr); copying a
// Tensor aliases the same data, clone() copies it. Views (reshape, detach) share storage.
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace inq {

using Shape = std::vector<int64_t>;

// "[2, 3, 4]": used in every shape error message.
std::string shape_str(const Shape& shape);
// Product of the dims; throws on negative dims or 64-bit overflow.
int64_t shape_numel(const Shape& shape);

class Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // undefined tensor (no storage); defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories. Memory is 64-byte aligned; empty() leaves it uninitialized.
  static Tensor empty(const Shape& shape);
  static Tensor zeros(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  float* data();
  const float* data() const;
  std::vector<float> to_vector() const;
  float item() const;  // the single value of a one-element tensor

  // Autograd-aware view with a new shape (same numel); one dim may be -1.
  Tensor reshape(const Shape& shape) const;
  // Same storage, no autograd history and requires_grad false.
  Tensor detach() const;
  // Deep copy of the data, no autograd history.
  Tensor clone() const;
  void fill_(float value);
  void copy_from(const Tensor& src);  // shapes must have equal numel

  // ---- autograd ----
  bool requires_grad() const;  // a leaf with the flag set, or the output of a recorded op
  Tensor& set_requires_grad(bool on);  // only on leaves
  bool is_leaf() const;
  Tensor grad() const;  // accumulated gradient, undefined until a backward pass reaches it
  void set_grad(const Tensor& g);  // replace (undefined clears it)
  void zero_grad();                // fill the gradient with zeros if it exists
  const std::shared_ptr<Node>& grad_fn() const;
  // Backpropagates from this tensor. Without an argument the tensor must hold one element and
  // the seed is 1; otherwise `seed` must have this tensor's shape.
  void backward(const Tensor& seed = Tensor()) const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same_storage(const Tensor& other) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<float> storage;  // 64-byte aligned, shared among views
  int64_t offset = 0;              // in floats from the start of storage
  Shape shape;
  int64_t numel = 0;
  bool requires_grad = false;          // meaningful on leaves only
  std::shared_ptr<TensorImpl> grad;    // accumulated gradient (a leaf's)
  std::shared_ptr<Node> grad_fn;       // the op that produced this tensor (non-leaves)
  std::shared_ptr<Node> grad_accumulator;  // created lazily for leaves that require grad
};

// Allocates `count` floats, 64-byte aligned, through the caching allocator (framework/allocator.h):
// the contents are undefined (fresh memory or a reused block's old values) unless a
// PoisonFreshBuffersGuard is alive.
std::shared_ptr<float> allocate_floats(int64_t count);

// Test hook: while a guard is alive, every buffer allocate_floats() hands out (so Tensor::empty()
// and everything built on it) is filled with `value` instead of being left uninitialized. Code that
// reads an entry it never wrote, or accumulates into a fresh buffer it never zeroed, then meets
// `value` (NaN by default) rather than whatever the allocator returned, which is often zero and
// hides the bug. tests/gradcheck.h holds one around backward(), which poisons the gradient buffers
// backward functions allocate and write into (after dlib's test_layer). Process-wide, since
// kernels may allocate on worker threads; guards nest (the innermost value wins), but must not be
// created on several threads at once. Off, it costs one atomic load per allocation.
class PoisonFreshBuffersGuard {
 public:
  explicit PoisonFreshBuffersGuard(float value = std::numeric_limits<float>::quiet_NaN());
  ~PoisonFreshBuffersGuard();
  PoisonFreshBuffersGuard(const PoisonFreshBuffersGuard&) = delete;
  PoisonFreshBuffersGuard& operator=(const PoisonFreshBuffersGuard&) = delete;

 private:
  bool previous_on_;
  float previous_value_;
};

}  // namespace inq
