#pragma once
// Model zoo entry point: builds a model by architecture name. Parameter names follow torchvision
// (conv1.weight, layer1.0.bn1.running_mean, fc.weight, ...), so converted weights load by name.
#include <memory>
#include <string>
#include <vector>

#include "framework/state_dict.h"
#include "layers/module.h"

namespace inq {

struct ModelOptions {
  int64_t num_classes = 10;
  int64_t in_channels = 1;
  // GoogLeNet only (the others ignore them), with torchvision's defaults:
  bool aux_logits = true;        // build the auxiliary classifiers aux1 and aux2
  bool transform_input = false;  // map ImageNet-normalized RGB to the (x - 0.5) / 0.5 scaling
};

std::shared_ptr<Module> create_model(const std::string& arch, const ModelOptions& options = {});
std::vector<std::string> available_models();

// The input heights and widths a known `arch` accepts: exactly `size` when `exact` (LeNet-5: 28),
// otherwise any of at least `size` (the smallest sizes listed below, found by running a forward).
struct InputSizeRule {
  int64_t size = 1;
  bool exact = false;
};
InputSizeRule input_size_rule(const std::string& arch);
// Throws inq::Error, naming `given` (the flag and file the input came from), when an H x W input is
// not one `arch` accepts, before a forward pass would fail deep inside a layer.
void check_input_size(const std::string& arch, int64_t height, int64_t width, const std::string& given);

// Weights for evaluation and inference (`inq eval`, `inq run`) with or without what only training
// uses. Build the model with inference_options (GoogLeNet: no aux heads) and load with
// optional_weight_names(model) (GoogLeNet: aux1.* and aux2.*, models/googlenet.h): a file's aux
// tensors are then ignored, and only those. Training builds the full model and loads its initial
// weights with optional_weight_names too: aux heads absent from the file keep their initialization.
// Every other name stays strict.
ModelOptions inference_options(ModelOptions options);
// The names a weights file may lack or have in excess for `model`; empty (none) for models
// without training-only parts.
NamePredicate optional_weight_names(const Module& model);

// LeNet-5 for 28x28 inputs (ReLU and max-pool variant).
std::shared_ptr<Module> lenet5(const ModelOptions& options = {});
// Caffe's LeNet (20 and 50 5x5 convolutions, fc 500): the LeNet-5 of Deep Compression and DNS.
std::shared_ptr<Module> lenet5_caffe(const ModelOptions& options = {});
// CIFAR-style ResNet-20 (He et al. 2016, section 4.2) with projection shortcuts.
std::shared_ptr<Module> resnet20(const ModelOptions& options = {});

// ImageNet models built as torchvision 0.14 builds them, with its parameter and buffer names and
// shapes, so its state_dicts load by name. Adaptive pools before the classifiers let inputs other
// than 224x224 through; the smallest H and W are 63 (alexnet), 32 (vgg16), 15 (googlenet) and 1 (resnets).
std::shared_ptr<Module> alexnet(const ModelOptions& options = {});  // "one weird trick" AlexNet
std::shared_ptr<Module> vgg16(const ModelOptions& options = {});    // configuration D, no BatchNorm
std::shared_ptr<Module> googlenet(const ModelOptions& options = {});  // a GoogLeNet (models/googlenet.h)
std::shared_ptr<Module> resnet18(const ModelOptions& options = {});
std::shared_ptr<Module> resnet34(const ModelOptions& options = {});
std::shared_ptr<Module> resnet50(const ModelOptions& options = {});  // Bottleneck v1.5

}  // namespace inq
