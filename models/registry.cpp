#include "models/registry.h"

#include <functional>
#include <map>

#include "framework/error.h"
#include "models/googlenet.h"

namespace inq {

namespace {
using Factory = std::function<std::shared_ptr<Module>(const ModelOptions&)>;
const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> table = {
      {"alexnet", alexnet},     {"googlenet", googlenet}, {"lenet5", lenet5},
      {"resnet18", resnet18},   {"resnet20", resnet20},   {"resnet34", resnet34},
      {"resnet50", resnet50},   {"vgg16", vgg16},
  };
  return table;
}
}  // namespace

std::shared_ptr<Module> create_model(const std::string& arch, const ModelOptions& options) {
  INQ_CHECK(options.num_classes > 0 && options.in_channels > 0,
            "Given num_classes {} and in_channels {}, expected both positive", options.num_classes,
            options.in_channels);
  auto it = factories().find(arch);
  INQ_CHECK(it != factories().end(), "Given --arch '{}', expected one of: {}", arch,
            fmt::join(available_models(), ", "));
  return it->second(options);
}

ModelOptions inference_options(ModelOptions options) {
  options.aux_logits = false;
  return options;
}

NamePredicate optional_weight_names(const Module& model) {
  if (dynamic_cast<const GoogLeNet*>(&model)) return is_googlenet_aux_name;
  return {};
}

std::vector<std::string> available_models() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories()) names.push_back(name);
  return names;
}

}  // namespace inq
