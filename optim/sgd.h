#pragma once
// Stochastic gradient descent with exactly torch.optim.SGD's semantics (momentum, dampening,
// nesterov, weight decay per parameter group), built from small overridable steps so a masked
// optimizer (INQ) overrides one hook instead of copying the update rule (docs/DESIGN.md habit 9).
//
// For each parameter p with a gradient g, with lr the group's effective rate and wd its decay:
//   d = g + wd * p
//   if momentum != 0:
//     buf = d                                         on the parameter's first step
//     buf = momentum * buf + (1 - dampening) * d      afterwards
//     d = d + momentum * buf    if nesterov, else  d = buf
//   p = p - lr * d
// Arithmetic is float32, elementwise, in this order (as PyTorch's CPU kernels do, up to fused
// multiply-adds), so results do not depend on the thread count.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace inq {

// Entries per chunk of step()'s walk over a parameter.
inline constexpr int64_t kSgdChunk = 1 << 16;

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0;
  double dampening = 0;
  bool nesterov = false;
  // lr, momentum finite and >= 0; dampening finite; nesterov needs momentum > 0 and dampening 0.
  void validate() const;
};

// The one state record per parameter.
struct SgdParamState {
  Tensor momentum_buffer;  // (shape of the parameter); undefined until its first step with momentum
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamGroup> groups, const SgdOptions& options);

  void step() override;
  const SgdOptions& options() const { return options_; }
  // nullptr before the parameter's first step (and after reset_state).
  const SgdParamState* state(const std::string& name) const;

  // "<param name>.momentum_buffer" for every parameter that has a buffer, sorted by name.
  NamedTensorList state_tensors() const override;
  void load_state_tensors(const NamedTensorList& state) override;
  void reset_state() override { state_.clear(); }

 protected:
  // step() walks each parameter with a gradient in chunks of at most kSgdChunk entries (several
  // chunks at once on several threads) and calls, for each chunk, in this order:
  //   regularize     -> direction = grad + weight_decay * p
  //   mask_direction -> direction[i] = 0 where mask[i] == 0          (after decay, before momentum)
  //   apply_momentum -> momentum buffer update, then direction = buf or direction + momentum * buf
  //   apply_update   -> p[i] -= lr * direction[i] where mask[i] != 0  (masked entries are never written)
  // `chunk` says which entries of the flattened parameter (and of its gradient, mask and momentum
  // buffer) these are; `direction` is scratch holding exactly those entries, index 0 = chunk.begin.
  // `mask` is update_mask(p), evaluated once per parameter per step; undefined means "no mask".
  // A hook must touch only its chunk's entries (other chunks run at the same time) and must not
  // throw (it runs inside a parallel loop).
  struct Chunk {
    int64_t begin = 0, size = 0;
    bool first_momentum_step = false;  // the momentum buffer is new: it starts as the direction
  };
  virtual void regularize(const NamedParameter& p, const ParamGroup& group, const Chunk& chunk, Tensor& direction);
  virtual void mask_direction(const NamedParameter& p, const Tensor& mask, const Chunk& chunk, Tensor& direction);
  virtual void apply_momentum(const NamedParameter& p, SgdParamState& state, const Chunk& chunk, Tensor& direction);
  virtual void apply_update(const NamedParameter& p, const Tensor& mask, double lr, const Chunk& chunk,
                            const Tensor& direction);

  // The masking hook. Returns a tensor of p's shape holding 0 for frozen entries and 1 for trained
  // ones, or an undefined tensor (the default) when every entry trains. A frozen entry gets no
  // weight decay, no momentum and no update: its value stays bit-identical, and its momentum buffer
  // entry stays 0 as long as the entry is frozen from (or before) the buffer's creation; call
  // reset_state() when the mask grows.
  virtual Tensor update_mask(const NamedParameter& p) const { return Tensor(); }

  SgdOptions options_;
  std::map<std::string, SgdParamState> state_;  // keyed by the parameter's dotted name

 private:
  // One chunk's direction per thread, kept from step to step, so step() allocates nothing after its
  // first call. A chunk (256 KiB of floats) instead of a whole parameter: a direction the size of
  // the largest parameter (VGG-16's fc6, 392 MiB) would stay allocated through the next forward and
  // backward passes, when memory peaks; and the four passes over a chunk stay in the L2 cache.
  std::vector<Tensor> scratch_;
};

}  // namespace inq
