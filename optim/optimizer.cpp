#include "optim/optimizer.h"

#include <cmath>
#include <set>

#include "framework/error.h"

namespace inq {

std::vector<ParamGroup> make_param_groups(const std::vector<NamedParameter>& params, double weight_decay,
                                          const DecayGroupOptions& options) {
  ParamGroup decay{.params = {}, .weight_decay = weight_decay};
  ParamGroup no_decay{.params = {}, .weight_decay = 0};
  for (const auto& p : params) {
    const bool decayed = p.role == ParamRole::Weight || (p.role == ParamRole::Bias && options.decay_bias) ||
                         (p.role == ParamRole::Norm && options.decay_norm);
    (decayed ? decay : no_decay).params.push_back(p);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

static void check_rate(const char* what, double v) {
  INQ_CHECK(std::isfinite(v) && v >= 0, "Given {} = {}, expected a finite value >= 0", what, v);
}

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr) : groups_(std::move(groups)), lr_(lr) {
  check_rate("lr", lr);
  std::set<std::string> names;
  std::set<const TensorImpl*> tensors;
  for (size_t g = 0; g < groups_.size(); ++g) {
    check_rate("weight_decay", groups_[g].weight_decay);
    check_rate("lr_scale", groups_[g].lr_scale);
    for (const auto& p : groups_[g].params) {
      INQ_CHECK(p.tensor.defined(), "Given parameter '{}' in group {}, expected a defined tensor", p.name, g);
      INQ_CHECK(names.insert(p.name).second,
                "Given parameter groups, expected each parameter name once, but '{}' appears more than once",
                p.name);
      // Two names for one tensor would update it twice per step.
      INQ_CHECK(tensors.insert(p.tensor.impl()).second,
                "Given parameter groups, expected each tensor once, but '{}' is a tensor already listed "
                "under another name",
                p.name);
    }
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& g : groups_) {
    for (auto& p : g.params) {
      if (set_to_none) {
        p.tensor.set_grad(Tensor());
      } else {
        p.tensor.zero_grad();
      }
    }
  }
}

void Optimizer::set_lr(double lr) {
  check_rate("lr", lr);
  lr_ = lr;
}

const NamedParameter* Optimizer::find_parameter(const std::string& name) const {
  for (const auto& g : groups_)
    for (const auto& p : g.params)
      if (p.name == name) return &p;
  return nullptr;
}

}  // namespace inq
