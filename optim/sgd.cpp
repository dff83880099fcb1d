#include "optim/sgd.h"

#include <cmath>
#include <set>

#include "framework/error.h"

namespace inq {

namespace {

constexpr const char* kMomentumSuffix = ".momentum_buffer";
// Below this many elements a parallel region costs more than the loop.
constexpr int64_t kParallelMin = 1 << 15;

}  // namespace

void SgdOptions::validate() const {
  INQ_CHECK(std::isfinite(lr) && lr >= 0, "Given SGD lr = {}, expected a finite value >= 0", lr);
  INQ_CHECK(std::isfinite(momentum) && momentum >= 0, "Given SGD momentum = {}, expected a finite value >= 0",
            momentum);
  INQ_CHECK(std::isfinite(dampening), "Given SGD dampening = {}, expected a finite value", dampening);
  INQ_CHECK(
      !nesterov || (momentum > 0 && dampening == 0),
      "Given SGD nesterov with momentum = {} and dampening = {}, expected momentum > 0 and dampening = 0",
      momentum, dampening);
}

Sgd::Sgd(std::vector<ParamGroup> groups, const SgdOptions& options)
    : Optimizer(std::move(groups), options.lr), options_(options) {
  options_.validate();
}

const SgdParamState* Sgd::state(const std::string& name) const {
  auto it = state_.find(name);
  return it == state_.end() ? nullptr : &it->second;
}

void Sgd::step() {
  for (const ParamGroup& group : groups_) {
    const double lr = lr_ * group.lr_scale;
    for (const NamedParameter& p : group.params) {
      if (!p.tensor.grad().defined()) continue;
      const Tensor mask = update_mask(p);
      if (mask.defined())
        INQ_CHECK(mask.shape() == p.tensor.shape(),
                  "Given the update mask of parameter '{}' with shape {}, expected the parameter's shape {}",
                  p.name, shape_str(mask.shape()), shape_str(p.tensor.shape()));
      Tensor direction = direction_scratch(p.tensor.shape());
      regularize(p, group, direction);
      if (mask.defined()) mask_direction(p, mask, direction);
      // The record is created here, on the parameter's first step, and filled by apply_momentum.
      if (options_.momentum != 0) apply_momentum(p, state_[p.name], direction);
      apply_update(p, mask, lr, direction);
    }
  }
}

Tensor Sgd::direction_scratch(const Shape& shape) {
  const int64_t n = shape_numel(shape);
  if (!scratch_.defined() || scratch_.numel() < n) scratch_ = Tensor::empty({n});
  // A tensor of `shape` over the front of the scratch storage.
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = scratch_.impl()->storage;
  impl->shape = shape;
  impl->numel = n;
  return Tensor(impl);
}

void Sgd::regularize(const NamedParameter& p, const ParamGroup& group, Tensor& direction) {
  const Tensor grad = p.tensor.grad();
  const float* g = grad.data();
  const float* w = p.tensor.data();
  float* d = direction.data();
  const int64_t n = direction.numel();
  const float wd = static_cast<float>(group.weight_decay);
  if (wd == 0) {
    // Skipping the multiply keeps d == g exactly, even where p holds Inf or NaN.
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = g[i];
  } else {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = g[i] + wd * w[i];
  }
}

void Sgd::mask_direction(const NamedParameter& p, const Tensor& mask, Tensor& direction) {
  const float* m = mask.data();
  float* d = direction.data();
  const int64_t n = direction.numel();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    if (m[i] == 0) d[i] = 0;
}

void Sgd::apply_momentum(const NamedParameter& p, SgdParamState& state, Tensor& direction) {
  const int64_t n = direction.numel();
  float* d = direction.data();
  if (!state.momentum_buffer.defined()) {
    // First step: the buffer starts as the direction itself, without dampening (as PyTorch).
    state.momentum_buffer = direction.clone();
  } else {
    float* buf = state.momentum_buffer.data();
    const float mu = static_cast<float>(options_.momentum);
    const float keep = static_cast<float>(1.0 - options_.dampening);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) buf[i] = mu * buf[i] + keep * d[i];
  }
  const float* buf = state.momentum_buffer.data();
  if (options_.nesterov) {
    const float mu = static_cast<float>(options_.momentum);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = d[i] + mu * buf[i];
  } else {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = buf[i];
  }
}

void Sgd::apply_update(const NamedParameter& p, const Tensor& mask, double lr, const Tensor& direction) {
  Tensor param = p.tensor;
  float* w = param.data();
  const float* d = direction.data();
  const int64_t n = param.numel();
  const float step = static_cast<float>(lr);
  if (mask.defined()) {
    // The final guarantee for frozen entries: they are not written at all, whatever the earlier
    // steps (or a subclass overriding them) left in the direction.
    const float* m = mask.data();
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i)
      if (m[i] != 0) w[i] = w[i] - step * d[i];
  } else {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) w[i] = w[i] - step * d[i];
  }
}

NamedTensorList Sgd::state_tensors() const {
  NamedTensorList out;
  for (const auto& [name, s] : state_)
    if (s.momentum_buffer.defined()) out.emplace_back(name + kMomentumSuffix, s.momentum_buffer.clone());
  return out;
}

void Sgd::load_state_tensors(const NamedTensorList& state) {
  const std::string suffix = kMomentumSuffix;
  std::vector<std::string> problems;
  std::set<std::string> seen;
  std::map<std::string, SgdParamState> loaded;
  for (const auto& [name, t] : state) {
    if (!seen.insert(name).second) {
      problems.push_back(fmt::format("'{}' appears more than once", name));
      continue;
    }
    const bool has_suffix =
        name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (!has_suffix) {
      problems.push_back(fmt::format("'{}' is not '<parameter>{}'", name, suffix));
      continue;
    }
    const std::string param_name = name.substr(0, name.size() - suffix.size());
    const NamedParameter* p = find_parameter(param_name);
    if (p == nullptr) {
      problems.push_back(fmt::format("'{}' names no parameter of this optimizer", name));
      continue;
    }
    if (!t.defined()) {
      problems.push_back(fmt::format("'{}' is undefined", name));
      continue;
    }
    if (t.shape() != p->tensor.shape()) {
      problems.push_back(fmt::format("'{}' has shape {} but the parameter has shape {}", name,
                                     shape_str(t.shape()), shape_str(p->tensor.shape())));
      continue;
    }
    loaded[param_name].momentum_buffer = t.clone();
  }
  if (!problems.empty()) {
    std::string m =
        "Given SGD state tensors, expected '<parameter>.momentum_buffer' entries matching the parameters, "
        "but got:";
    for (const auto& line : problems) m += "\n  " + line;
    throw Error(m);
  }
  state_ = std::move(loaded);
}

}  // namespace inq
