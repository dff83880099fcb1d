// ImageNet ResNets (He et al. 2016) as torchvision builds them: conv 7x7/2 (64) + BN + ReLU, max-pool
// 3x3/2 (pad 1), four stages of 64, 128, 256, 512 "planes" (stride 2 at the first block of stages
// 2-4), adaptive 1x1 average pool, FC. ResNet-18/34 stack BasicBlocks, ResNet-50 Bottlenecks (v1.5).
// Names are torchvision's: conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc.
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/flatten.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "models/basic_block.h"
#include "models/bottleneck.h"
#include "models/image_input.h"
#include "models/registry.h"

namespace inq {

namespace {

struct ResNetSpec {
  std::string name;
  bool bottleneck = false;
  int64_t blocks[4] = {};
};

class ResNet : public Module {
 public:
  ResNet(const ResNetSpec& spec, const ModelOptions& options) : name_(spec.name), in_channels_(options.in_channels) {
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(Conv2dOptions{
                                          .in_channels = options.in_channels, .out_channels = 64,
                                          .kernel_size = 7, .stride = 2, .padding = 3, .bias = false}));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(64));
    maxpool_ = register_module(
        "maxpool", std::make_shared<MaxPool2d>(MaxPool2dOptions{.kernel_size = 3, .stride = 2, .padding = 1}));
    const int64_t expansion = spec.bottleneck ? Bottleneck::kExpansion : 1;
    int64_t in = 64;
    for (int stage = 0; stage < 4; ++stage) {
      const int64_t planes = int64_t{64} << stage;
      auto layer = std::make_shared<Sequential>();
      for (int64_t block = 0; block < spec.blocks[stage]; ++block) {
        const int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
        if (spec.bottleneck) layer->add(std::make_shared<Bottleneck>(in, planes, stride));
        else layer->add(std::make_shared<BasicBlock>(in, planes, stride));
        in = planes * expansion;
      }
      layers_[stage] = register_module("layer" + std::to_string(stage + 1), layer);
    }
    avgpool_ = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(AdaptiveAvgPool2dOptions{}));
    fc_ = register_module("fc", std::make_shared<Linear>(LinearOptions{.in_features = 512 * expansion,
                                                                         .out_features = options.num_classes}));
    // torchvision's init: He-normal (fan_out) convs; BatchNorm 1 and 0 (already so); default FC.
    for (auto& p : named_parameters())
      if (p.role == ParamRole::Weight && p.tensor.dim() == 4) kaiming_normal_(p.tensor, FanMode::FanOut);
  }

  Tensor forward(const Tensor& x) override {
    // Every stride-2 step maps size s to floor((s - 1) / 2) + 1 >= 1: any size of at least 1 works.
    check_image_batch(name_, x, in_channels_, 1);
    Tensor y = maxpool_->forward(bn1_->forward_relu(conv1_->forward(x)));
    for (auto& layer : layers_) y = layer->forward(y);
    return fc_->forward(flatten(avgpool_->forward(y), 1));
  }
  std::string type_name() const override { return "ResNet"; }
  std::vector<std::pair<std::string, std::string>> conv_batchnorm_pairs() const override { return {{"conv1", "bn1"}}; }

 private:
  std::string name_;
  int64_t in_channels_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<MaxPool2d> maxpool_;
  std::shared_ptr<Sequential> layers_[4];
  std::shared_ptr<AdaptiveAvgPool2d> avgpool_;
  std::shared_ptr<Linear> fc_;
};

}  // namespace

std::shared_ptr<Module> resnet18(const ModelOptions& options) {
  return std::make_shared<ResNet>(ResNetSpec{.name = "resnet18", .bottleneck = false, .blocks = {2, 2, 2, 2}},
                                  options);
}

std::shared_ptr<Module> resnet34(const ModelOptions& options) {
  return std::make_shared<ResNet>(ResNetSpec{.name = "resnet34", .bottleneck = false, .blocks = {3, 4, 6, 3}},
                                  options);
}

std::shared_ptr<Module> resnet50(const ModelOptions& options) {
  return std::make_shared<ResNet>(ResNetSpec{.name = "resnet50", .bottleneck = true, .blocks = {3, 4, 6, 3}},
                                  options);
}

}  // namespace inq
