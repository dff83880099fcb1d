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
      {"lenet5-caffe", lenet5_caffe},
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

InputSizeRule input_size_rule(const std::string& arch) {
  if (arch == "lenet5" || arch == "lenet5-caffe") return {.size = 28, .exact = true};
  if (arch == "alexnet") return {.size = 63};
  if (arch == "vgg16") return {.size = 32};
  if (arch == "googlenet") return {.size = 15};
  return {.size = 1};  // resnet20 and the ImageNet ResNets
}

void check_input_size(const std::string& arch, int64_t height, int64_t width, const std::string& given) {
  const InputSizeRule rule = input_size_rule(arch);
  const bool ok = rule.exact ? height == rule.size && width == rule.size : height >= rule.size && width >= rule.size;
  INQ_CHECK(ok, "Given {} with {}x{} images, expected {}x{} images{} for {}", given, height, width, rule.size,
            rule.size, rule.exact ? "" : " or larger", arch);
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
