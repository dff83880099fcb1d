#include "framework/autograd.h"

#include <unordered_map>

#include "framework/error.h"
#include "framework/ops.h"

namespace inq {

namespace {
thread_local bool g_grad_mode = true;
thread_local GradReadyHook g_grad_ready;
}

GradReadyHookGuard::GradReadyHookGuard(GradReadyHook hook) : previous_(std::move(g_grad_ready)) {
  g_grad_ready = std::move(hook);
}
GradReadyHookGuard::~GradReadyHookGuard() { g_grad_ready = std::move(previous_); }

bool grad_mode_enabled() { return g_grad_mode; }

NoGradGuard::NoGradGuard() : previous_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = previous_; }

namespace {

// Whether `g` can become a leaf's .grad() as it is, without a copy: nobody else holds the tensor
// or its storage (the engine's own handle is the only one), it is a whole buffer with no history,
// and it has the leaf's shape. A gradient a backward function has just written for this leaf alone
// passes; the user's seed, a view of another tensor, or a gradient handed to several inputs does not.
bool can_adopt_as_grad(const Tensor& g, const TensorImpl& leaf) {
  const TensorImpl& impl = *g.impl();
  return g.impl_ptr().use_count() == 1 && impl.storage.use_count() == 1 && impl.offset == 0 &&
         impl.grad_fn == nullptr && !impl.requires_grad && impl.shape == leaf.shape;
}

}  // namespace

std::vector<Tensor> AccumulateGrad::backward(const Tensor& grad_output) {
  std::shared_ptr<TensorImpl> leaf = leaf_.lock();
  if (!leaf) return {};  // the leaf is gone; nobody can read its gradient
  if (!leaf->grad) {
    // First gradient since zero_grad(set_to_none): adopt the buffer backward wrote when nobody else
    // can see it (no copy, no allocation), otherwise copy it.
    leaf->grad = can_adopt_as_grad(grad_output, *leaf) ? grad_output.impl_ptr() : grad_output.clone().impl_ptr();
  } else {
    Tensor g(leaf->grad);
    ops::add_into(g, grad_output);
  }
  if (g_grad_ready) g_grad_ready(*leaf);
  return {};
}

namespace {

// a + b in a new buffer with a's shape (b: the same element count, maybe another shape).
Tensor sum_in_new_buffer(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  if (a.shape() == b.shape()) return ops::add(a, b);
  Tensor sum = a.clone();
  ops::add_into(sum, b);
  return sum;
}

}  // namespace

std::vector<Tensor> Node::backward_two_parts(const Tensor& first, const Tensor& second) {
  return backward(sum_in_new_buffer(first, second));
}

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined()) return nullptr;
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return impl->grad_fn;
  if (!impl->requires_grad) return nullptr;
  if (!impl->grad_accumulator) impl->grad_accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return impl->grad_accumulator;
}

void record(Tensor& output, const std::shared_ptr<Node>& node, const std::vector<const Tensor*>& inputs) {
  node->next.clear();
  for (const Tensor* t : inputs) node->next.push_back(t ? gradient_edge(*t) : nullptr);
  output.impl()->grad_fn = node;
}

void run_backward(const Tensor& root, const Tensor& seed) {
  INQ_CHECK(root.requires_grad(), "Given backward() on a tensor of shape {}, expected it to require grad",
            shape_str(root.shape()));
  INQ_CHECK(seed.shape() == root.shape(), "Given a backward seed of shape {}, expected the output's shape {}",
            shape_str(seed.shape()), shape_str(root.shape()));
  std::shared_ptr<Node> root_node = gradient_edge(root);

  // Count, for every node reachable from the root, how many edges point at it; a node runs once
  // all of them have delivered their gradient (Kahn's topological order).
  std::unordered_map<Node*, int> pending_inputs;
  std::vector<Node*> stack{root_node.get()};
  pending_inputs[root_node.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    INQ_CHECK(!n->released, "Given a second backward() through node {}, expected each graph to be used once "
              "(its saved buffers were freed after the first)", n->name());
    for (const auto& next : n->next) {
      if (!next) continue;
      auto [it, inserted] = pending_inputs.try_emplace(next.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(next.get());
    }
  }

  // A node's gradient so far: one tensor, or the first two parts when the node takes them unsummed
  // (Node::takes_two_gradient_parts), or a sum in a buffer the engine owns.
  struct PendingGradient {
    Tensor sum, second;
    bool owned = false;  // sum is a buffer made here, safe to add into
  };
  std::unordered_map<Node*, PendingGradient> grads;
  grads[root_node.get()].sum = seed;
  // Keep the nodes alive while we walk them even if their owners drop them.
  std::vector<std::shared_ptr<Node>> ready{root_node};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.back();
    ready.pop_back();
    PendingGradient pending;
    if (auto it = grads.find(node.get()); it != grads.end()) {
      pending = std::move(it->second);
      grads.erase(it);
    }
    // A node whose every incoming gradient was undefined still runs through the loop below so
    // that the nodes after it are released in order; it just contributes nothing.
    std::vector<Tensor> grad_inputs;
    if (pending.second.defined()) {
      grad_inputs = node->backward_two_parts(pending.sum, pending.second);
    } else if (pending.sum.defined()) {
      grad_inputs = node->backward(pending.sum);
    }
    INQ_CHECK(grad_inputs.empty() || grad_inputs.size() == node->next.size(),
              "Given node {} with {} inputs, expected as many gradients, but got {} instead", node->name(),
              node->next.size(), grad_inputs.size());
    for (size_t i = 0; i < node->next.size(); ++i) {
      const std::shared_ptr<Node>& next = node->next[i];
      if (!next) continue;
      if (i < grad_inputs.size() && grad_inputs[i].defined()) {
        PendingGradient& p = grads[next.get()];
        if (!p.sum.defined()) {
          p.sum = std::move(grad_inputs[i]);
        } else if (!p.owned && !p.second.defined() && next->takes_two_gradient_parts()) {
          p.second = std::move(grad_inputs[i]);
        } else {
          // A part may alias a buffer someone else still reads (AddBackward hands the same
          // gradient to both inputs), so the first sum goes into a new buffer (one pass, rather
          // than a copy and then an add); later ones add into that buffer.
          if (p.second.defined()) {
            p.sum = sum_in_new_buffer(p.sum, p.second);
            p.second = Tensor();
            p.owned = true;
          }
          if (p.owned) {
            NoGradGuard no_grad;
            ops::add_into(p.sum, grad_inputs[i]);
          } else {
            p.sum = sum_in_new_buffer(p.sum, grad_inputs[i]);
          }
          p.owned = true;
        }
      }
      if (--pending_inputs[next.get()] == 0) ready.push_back(next);
    }
    // Free the graph as we go: saved activations first, then the edges that keep inputs alive.
    // AccumulateGrad nodes stay usable: they belong to their leaf, not to this graph.
    if (!dynamic_cast<AccumulateGrad*>(node.get())) {
      node->release();
      node->next.clear();
      node->released = true;
    }
  }
}

}  // namespace inq
