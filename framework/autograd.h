#pragma once
// Reverse-mode autograd (after PyTorch's Node/Edge, micrograd's topological sort).
// Every op that records history creates one Node holding what its backward needs as plain buffers
// (never tensors with their own history, so the graph has no cycles). The op's output owns the
// Node, the Node owns edges to its inputs' Nodes, and a leaf that requires grad is reached through
// an AccumulateGrad node which adds into the leaf's .grad(). After backward every Node on the path
// drops its saved buffers and edges, so the graph is freed as soon as its outputs go away.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace inq {

class Node {
 public:
  virtual ~Node() = default;
  // Given dLoss/dOutput, returns dLoss/dInput for each input in order (an undefined Tensor where
  // an input needs no gradient). Called at most once per graph. Must not modify grad_output, which
  // may be shared with other nodes; the returned tensors may alias it.
  virtual std::vector<Tensor> backward(const Tensor& grad_output) = 0;
  // The same for dLoss/dOutput = first + second, where the output fed two consumers; called instead
  // of backward() when the node says it takes the two parts (the engine then hands over the first
  // two parts unsummed, and sums any further ones into a new buffer). A node that reads its gradient
  // once, element by element, adds the two where it reads them and saves the engine's pass over
  // memory that writes the sum. Must not modify either part.
  virtual bool takes_two_gradient_parts() const { return false; }
  virtual std::vector<Tensor> backward_two_parts(const Tensor& first, const Tensor& second);
  virtual std::string name() const = 0;
  // Frees saved buffers; called by the engine after backward.
  virtual void release() {}

  // Whether input `i` of the op needs a gradient, i.e. has an edge (false past the last input).
  // backward() may skip computing the gradients of inputs for which this is false and return an
  // undefined Tensor in their place (after PyTorch's ctx.needs_input_grad).
  bool needs_input_grad(size_t i) const { return i < next.size() && next[i] != nullptr; }

  // One entry per input of the op; nullptr where that input needs no gradient.
  std::vector<std::shared_ptr<Node>> next;
  bool released = false;
};

// Adds incoming gradients into a leaf tensor's .grad() (gradients accumulate across backward calls).
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& leaf) : leaf_(leaf) {}
  std::vector<Tensor> backward(const Tensor& grad_output) override;
  std::string name() const override { return "AccumulateGrad"; }

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

// Called on the thread running backward each time AccumulateGrad has added a backward pass's
// gradient into a leaf's .grad(): within one run_backward every leaf is reached once, so the
// gradient is final for that pass while backward goes on with the rest of the graph (a
// data-parallel reducer starts communicating it there, as DDP's autograd hooks do). Thread-local;
// none by default. The guard installs one for its lifetime.
using GradReadyHook = std::function<void(TensorImpl& leaf)>;
class GradReadyHookGuard {
 public:
  explicit GradReadyHookGuard(GradReadyHook hook);
  ~GradReadyHookGuard();
  GradReadyHookGuard(const GradReadyHookGuard&) = delete;
  GradReadyHookGuard& operator=(const GradReadyHookGuard&) = delete;

 private:
  GradReadyHook previous_;
};

// Whether ops record history (thread-local; on by default).
bool grad_mode_enabled();

// Turns recording off for its lifetime (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any of the inputs requires grad: the op must then record a Node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Connects `node` to the inputs (edges in order) and makes it `output`'s grad_fn.
void record(Tensor& output, const std::shared_ptr<Node>& node, const std::vector<const Tensor*>& inputs);

// The node through which gradient reaches `t`: its grad_fn, its AccumulateGrad (leaf that requires
// grad, created on first use), or nullptr.
std::shared_ptr<Node> gradient_edge(const Tensor& t);

// Runs backward from `root` seeded with `seed` (same shape as root).
void run_backward(const Tensor& root, const Tensor& seed);

}  // namespace inq
