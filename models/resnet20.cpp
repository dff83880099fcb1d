// CIFAR-style ResNet-20 (He et al. 2016, section 4.2) for small images, as specified in
// docs/REPRODUCTION.md section 1: conv3x3(16)+BN+ReLU, three stages of three BasicBlocks with 16, 32
// and 64 channels (stride 2 at the first block of stages 2 and 3), a 1x1 conv + BN projection
// shortcut wherever the shape changes, global average pooling and Linear(64, classes).
// Names follow torchvision's ResNet (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc).
#include "framework/ops.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/flatten.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "models/basic_block.h"
#include "models/registry.h"

namespace inq {

namespace {

class ResNet20 : public Module {
 public:
  explicit ResNet20(const ModelOptions& options) {
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(Conv2dOptions{
                                          .in_channels = options.in_channels, .out_channels = 16,
                                          .kernel_size = 3, .padding = 1, .bias = false}));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(BatchNorm2dOptions{.num_features = 16}));
    int64_t in = 16;
    const int64_t widths[3] = {16, 32, 64};
    for (int stage = 0; stage < 3; ++stage) {
      auto layer = std::make_shared<Sequential>();
      for (int block = 0; block < 3; ++block) {
        const int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
        layer->add(std::make_shared<BasicBlock>(in, widths[stage], stride));
        in = widths[stage];
      }
      layers_[stage] = register_module("layer" + std::to_string(stage + 1), layer);
    }
    pool_ = std::make_shared<AdaptiveAvgPool2d>(AdaptiveAvgPool2dOptions{.output_h = 1, .output_w = 1});
    fc_ = register_module("fc", std::make_shared<Linear>(LinearOptions{.in_features = 64,
                                                                         .out_features = options.num_classes}));
    // Kaiming-normal (fan_out) for convs, as torchvision's ResNet and docs/REPRODUCTION.md specify.
    for (auto& p : named_parameters()) {
      if (p.role == ParamRole::Weight && p.tensor.dim() == 4) kaiming_normal_(p.tensor, FanMode::FanOut);
    }
  }

  Tensor forward(const Tensor& x) override {
    Tensor y = bn1_->forward_relu(conv1_->forward(x));
    for (auto& layer : layers_) y = layer->forward(y);
    y = pool_->forward(y);
    return fc_->forward(y.reshape({y.size(0), -1}));
  }
  std::string type_name() const override { return "ResNet20"; }
  std::vector<std::pair<std::string, std::string>> conv_batchnorm_pairs() const override { return {{"conv1", "bn1"}}; }

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Sequential> layers_[3];
  std::shared_ptr<AdaptiveAvgPool2d> pool_;
  std::shared_ptr<Linear> fc_;
};

}  // namespace

std::shared_ptr<Module> resnet20(const ModelOptions& options) { return std::make_shared<ResNet20>(options); }

}  // namespace inq
