#pragma once
// Optimizer base: parameter groups, the learning rate, gradient clearing, and the contract for
// per-parameter state. State is one record per parameter keyed by the parameter's dotted name
// (PyTorch's SGDParamState{momentum_buffer}), created lazily on the first step that needs it, and
// serialized as named tensors "<param name>.<field>" (e.g. "layer1.0.conv1.weight.momentum_buffer")
// so checkpoints stay readable and survive reordering of the model's parameters.
#include <string>
#include <utility>
#include <vector>

#include "framework/state_dict.h"  // NamedTensorList
#include "layers/module.h"

namespace inq {

// Parameters that share hyper-parameters. The effective learning rate of a group is
// optimizer.lr() * lr_scale.
struct ParamGroup {
  std::vector<NamedParameter> params = {};
  double weight_decay = 0;
  double lr_scale = 1;
};

// Which roles get weight decay in make_param_groups. Weights always do.
struct DecayGroupOptions {
  bool decay_bias = false;
  bool decay_norm = false;
};

// The usual split: group 0 holds the decayed parameters (weight_decay), group 1 the others
// (weight decay 0). Empty groups are left out. Order within a group follows `params`.
std::vector<ParamGroup> make_param_groups(const std::vector<NamedParameter>& params, double weight_decay,
                                          const DecayGroupOptions& options = {});

class Optimizer {
 public:
  // Validates the groups: defined tensors, unique names, no tensor in two places, weight_decay and
  // lr_scale finite and >= 0, lr finite and >= 0.
  Optimizer(std::vector<ParamGroup> groups, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient; parameters without one are skipped.
  virtual void step() = 0;
  // Drops every parameter's gradient (so the next backward starts from nothing, and a parameter
  // that backward does not reach is skipped by step()); with set_to_none false, fills the existing
  // gradients with zeros instead (Module::zero_grad says more).
  void zero_grad(bool set_to_none = true);

  double lr() const { return lr_; }
  void set_lr(double lr);
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // nullptr when no parameter has that name.
  const NamedParameter* find_parameter(const std::string& name) const;

  // The per-parameter state as named tensors (copies), sorted by name.
  virtual NamedTensorList state_tensors() const = 0;
  // Replaces the whole state. Strict: every name must be "<known parameter>.<known field>" with the
  // parameter's shape, each at most once; all problems are reported in one error and nothing is
  // changed when there are any. Parameters absent from `state` start with no state.
  virtual void load_state_tensors(const NamedTensorList& state) = 0;
  // Forgets all per-parameter state (INQ resets momentum at every quantization step).
  virtual void reset_state() = 0;

 protected:
  std::vector<ParamGroup> groups_;
  double lr_;
};

}  // namespace inq
