#include "layers/module.h"

#include "framework/error.h"

namespace inq {

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

static void check_local_name(const std::string& name) {
  INQ_CHECK(!name.empty() && name.find('.') == std::string::npos,
            "Given the local name '{}', expected a non-empty name without '.'", name);
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, ParamRole role) {
  check_local_name(name);
  tensor.set_requires_grad(true);
  params_.push_back({name, tensor, role});
  return tensor;
}

void Module::drop_parameter(const std::string& name) {
  for (auto it = params_.begin(); it != params_.end(); ++it) {
    if (it->name == name) {
      params_.erase(it);
      return;
    }
  }
  throw Error(fmt::format("Given the parameter name '{}' to drop from a {}, expected a registered parameter",
                          name, type_name()));
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  check_local_name(name);
  buffers_.push_back({name, tensor});
  return tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_local_name(name);
  INQ_CHECK(module != nullptr, "Given child '{}', expected a module, but got null", name);
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, std::vector<NamedParameter>* params,
                     std::vector<NamedTensor>* buffers) const {
  if (params)
    for (const auto& p : params_) params->push_back({prefix + p.name, p.tensor, p.role});
  if (buffers)
    for (const auto& b : buffers_) buffers->push_back({prefix + b.name, b.tensor});
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, buffers);
}

std::vector<NamedParameter> Module::named_parameters() const {
  std::vector<NamedParameter> out;
  collect("", &out, nullptr);
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out;
  collect("", nullptr, &out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& p : named_parameters()) out.push_back(p.tensor);
  return out;
}

std::vector<NamedTensor> Module::state_dict() const {
  std::vector<NamedTensor> out;
  for (auto& p : named_parameters()) out.push_back({p.name, p.tensor});
  for (auto& b : named_buffers()) out.push_back(b);
  return out;
}

void Module::zero_grad(bool set_to_none) {
  for (auto& p : named_parameters()) {
    if (set_to_none) {
      p.tensor.set_grad(Tensor());
    } else {
      p.tensor.zero_grad();
    }
  }
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) {
  for (auto& m : modules) add(std::move(m));
}

Sequential& Sequential::add(std::shared_ptr<Module> module) {
  return add(std::to_string(children().size()), std::move(module));
}

Sequential& Sequential::add(const std::string& name, std::shared_ptr<Module> module) {
  register_module(name, std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const auto& [name, child] : children()) x = child->forward(x);
  return x;
}

namespace {
void visit_modules(Module& m, const std::string& prefix,
                   const std::function<void(const std::string&, Module&)>& visit) {
  visit(prefix, m);
  for (const auto& [name, child] : m.children()) visit_modules(*child, prefix + name + ".", visit);
}
}  // namespace

void for_each_module(Module& model, const std::function<void(const std::string& prefix, Module& module)>& visit) {
  visit_modules(model, "", visit);
}

}  // namespace inq
