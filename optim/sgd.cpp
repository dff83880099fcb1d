#include "optim/sgd.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "framework/error.h"

namespace inq {

namespace {

constexpr const char* kMomentumSuffix = ".momentum_buffer";

// A 1-D tensor of the first n floats of `buffer`'s storage.
Tensor front_view(const Tensor& buffer, int64_t n) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = buffer.impl()->storage;
  impl->shape = {n};
  impl->numel = n;
  return Tensor(impl);
}

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
  // One scratch chunk per thread that the parallel loops below may use.
  const size_t threads = static_cast<size_t>(std::max(1, omp_get_max_threads()));
  while (scratch_.size() < threads) scratch_.push_back(Tensor::empty({kSgdChunk}));
  for (const ParamGroup& group : groups_) {
    const double lr = lr_ * group.lr_scale;
    for (const NamedParameter& p : group.params) {
      if (!p.tensor.grad().defined()) continue;
      const Tensor mask = update_mask(p);
      if (mask.defined())
        INQ_CHECK(mask.shape() == p.tensor.shape(),
                  "Given the update mask of parameter '{}' with shape {}, expected the parameter's shape {}",
                  p.name, shape_str(mask.shape()), shape_str(p.tensor.shape()));
      // The record is created here, on the parameter's first step, and filled by apply_momentum.
      SgdParamState* state = options_.momentum != 0 ? &state_[p.name] : nullptr;
      bool first_momentum_step = false;
      if (state != nullptr && !state->momentum_buffer.defined()) {
        state->momentum_buffer = Tensor::empty(p.tensor.shape());
        first_momentum_step = true;
      }
      const int64_t n = p.tensor.numel();
      const int64_t chunks = (n + kSgdChunk - 1) / kSgdChunk;
      // Every entry is computed alone (no sums), so the result does not depend on the thread count.
#pragma omp parallel for schedule(static) if (chunks > 1)
      for (int64_t c = 0; c < chunks; ++c) {
        const Chunk chunk{.begin = c * kSgdChunk,
                          .size = std::min(kSgdChunk, n - c * kSgdChunk),
                          .first_momentum_step = first_momentum_step};
        Tensor direction = front_view(scratch_[static_cast<size_t>(omp_get_thread_num())], chunk.size);
        regularize(p, group, chunk, direction);
        if (mask.defined()) mask_direction(p, mask, chunk, direction);
        if (state != nullptr) apply_momentum(p, *state, chunk, direction);
        apply_update(p, mask, lr, chunk, direction);
      }
    }
  }
}

void Sgd::regularize(const NamedParameter& p, const ParamGroup& group, const Chunk& chunk, Tensor& direction) {
  const float* g = p.tensor.grad().data() + chunk.begin;
  const float* w = p.tensor.data() + chunk.begin;
  float* d = direction.data();
  const float wd = static_cast<float>(group.weight_decay);
  if (wd == 0) {
    // Skipping the multiply keeps d == g exactly, even where p holds Inf or NaN.
    for (int64_t i = 0; i < chunk.size; ++i) d[i] = g[i];
  } else {
    for (int64_t i = 0; i < chunk.size; ++i) d[i] = g[i] + wd * w[i];
  }
}

void Sgd::mask_direction(const NamedParameter& p, const Tensor& mask, const Chunk& chunk, Tensor& direction) {
  const float* m = mask.data() + chunk.begin;
  float* d = direction.data();
  for (int64_t i = 0; i < chunk.size; ++i)
    if (m[i] == 0) d[i] = 0;
}

void Sgd::apply_momentum(const NamedParameter& p, SgdParamState& state, const Chunk& chunk, Tensor& direction) {
  float* d = direction.data();
  float* buf = state.momentum_buffer.data() + chunk.begin;
  const float mu = static_cast<float>(options_.momentum);
  if (chunk.first_momentum_step) {
    // First step: the buffer starts as the direction itself, without dampening (as PyTorch).
    for (int64_t i = 0; i < chunk.size; ++i) buf[i] = d[i];
  } else {
    const float keep = static_cast<float>(1.0 - options_.dampening);
    for (int64_t i = 0; i < chunk.size; ++i) buf[i] = mu * buf[i] + keep * d[i];
  }
  if (options_.nesterov) {
    for (int64_t i = 0; i < chunk.size; ++i) d[i] = d[i] + mu * buf[i];
  } else {
    for (int64_t i = 0; i < chunk.size; ++i) d[i] = buf[i];
  }
}

void Sgd::apply_update(const NamedParameter& p, const Tensor& mask, double lr, const Chunk& chunk,
                       const Tensor& direction) {
  Tensor param = p.tensor;  // a handle: p is const, its values are not
  float* w = param.data() + chunk.begin;
  const float* d = direction.data();
  const float step = static_cast<float>(lr);
  if (mask.defined()) {
    // The final guarantee for frozen entries: they are not written at all, whatever the earlier
    // steps (or a subclass overriding them) left in the direction.
    const float* m = mask.data() + chunk.begin;
    for (int64_t i = 0; i < chunk.size; ++i)
      if (m[i] != 0) w[i] = w[i] - step * d[i];
  } else {
    for (int64_t i = 0; i < chunk.size; ++i) w[i] = w[i] - step * d[i];
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
