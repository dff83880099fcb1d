#pragma once
// Model zoo entry point: builds a model by architecture name. Parameter names follow torchvision
// (conv1.weight, layer1.0.bn1.running_mean, fc.weight, ...), so converted weights load by name.
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace inq {

struct ModelOptions {
  int64_t num_classes = 10;
  int64_t in_channels = 1;
};

std::shared_ptr<Module> create_model(const std::string& arch, const ModelOptions& options = {});
std::vector<std::string> available_models();

// LeNet-5 for 28x28 inputs (ReLU and max-pool variant).
std::shared_ptr<Module> lenet5(const ModelOptions& options = {});
// CIFAR-style ResNet-20 (He et al. 2016, section 4.2) with projection shortcuts.
std::shared_ptr<Module> resnet20(const ModelOptions& options = {});

}  // namespace inq
