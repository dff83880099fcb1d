#pragma once
// Module: a node of the model tree (after PyTorch's nn::Module). A module registers parameters
// (trained tensors), buffers (state that is saved but not trained, e.g. BatchNorm running stats)
// and child modules, each under a local name; the tree gives every tensor a dotted name such as
// "layer1.0.conv1.weight" that matches torchvision, so converted weights load by name.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "framework/tensor.h"

namespace inq {

// What a parameter is for: optimizers use it for parameter groups (e.g. no weight decay on
// norms and biases) and INQ quantizes exactly the Weight tensors of Conv2d and Linear.
enum class ParamRole { Weight, Bias, Norm };

struct NamedParameter {
  std::string name;
  Tensor tensor;
  ParamRole role;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }
  // Short type name for printing, e.g. "Conv2d".
  virtual std::string type_name() const = 0;
  // (Conv2d, BatchNorm2d) children of this module, by their dotted names below it, where the
  // BatchNorm's input is exactly that convolution's output and nothing else reads that output:
  // what prepare_for_inference (layers/inference_prep.h) may fold. None unless a module says so.
  virtual std::vector<std::pair<std::string, std::string>> conv_batchnorm_pairs() const { return {}; }

  // Train/eval mode, applied to the whole subtree.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Recursive, in registration order, with dotted names.
  std::vector<NamedParameter> named_parameters() const;
  std::vector<NamedTensor> named_buffers() const;
  std::vector<Tensor> parameters() const;
  // Parameters then buffers, the contents of a weights file.
  std::vector<NamedTensor> state_dict() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  // set_to_none (the default, as PyTorch 2): drops every parameter's gradient, so a parameter the
  // next backward does not reach has none and the optimizer skips it; the buffer goes back to the
  // caching allocator and the next backward's gradient is adopted without a copy. Otherwise fills
  // the existing gradients with zeros and the next backward accumulates into them.
  void zero_grad(bool set_to_none = true);

 protected:
  // Registers a trained tensor (sets requires_grad) and returns the handle.
  Tensor register_parameter(const std::string& name, Tensor tensor, ParamRole role);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  // Removes a parameter registered under `name` (throws if there is none). For layers whose weight
  // is replaced by another representation (Linear::replace_weight): the tensor then leaves
  // named_parameters() and state_dict(), and its storage goes once no handle is left.
  void drop_parameter(const std::string& name);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void collect(const std::string& prefix, std::vector<NamedParameter>* params, std::vector<NamedTensor>* buffers) const;

  std::vector<NamedParameter> params_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Calls visit(prefix, module) for `model` and every module below it, parents first, in registration
// order; prefix is the module's dotted name plus "." ("" for the root), as named_parameters() names
// its tensors.
void for_each_module(Module& model, const std::function<void(const std::string& prefix, Module& module)>& visit);

// Runs its children in order; children are named "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);
  // Appends a child under the next index name (or an explicit name) and returns *this.
  Sequential& add(std::shared_ptr<Module> module);
  Sequential& add(const std::string& name, std::shared_ptr<Module> module);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return children().size(); }
};

}  // namespace inq
