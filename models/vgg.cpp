// VGG-16 (Simonyan & Zisserman 2015, configuration D) as torchvision builds it: thirteen 3x3 convs
// (pad 1) with ReLU in five stages of 64, 128, 256, 512, 512 channels, each closed by a 2x2 max-pool,
// no BatchNorm; an adaptive 7x7 average pool; and the classifier FC 4096, ReLU, dropout, FC 4096,
// ReLU, dropout, FC classes. Names are torchvision's: features.{0,2,5,...,28}, classifier.{0,3,6}.
#include "layers/activation.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "models/image_input.h"
#include "models/registry.h"

namespace inq {

namespace {

// Five 2x2 max-pools with floor rounding need at least 2^5 pixels.
constexpr int64_t kVggMinSize = 32;

class Vgg16 : public Module {
 public:
  explicit Vgg16(const ModelOptions& options) : in_channels_(options.in_channels) {
    // Configuration D; 0 marks a max-pool.
    const int64_t config[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
    features_ = register_module("features", std::make_shared<Sequential>());
    int64_t in = options.in_channels;
    for (int64_t width : config) {
      if (width == 0) {
        features_->add(std::make_shared<MaxPool2d>(MaxPool2dOptions{.kernel_size = 2, .stride = 2}));
        continue;
      }
      features_->add(std::make_shared<Conv2d>(
          Conv2dOptions{.in_channels = in, .out_channels = width, .kernel_size = 3, .padding = 1}));
      features_->add(std::make_shared<ReLU>());
      in = width;
    }
    avgpool_ = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(
                                              AdaptiveAvgPool2dOptions{.output_h = 7, .output_w = 7}));
    classifier_ = register_module("classifier", std::make_shared<Sequential>());
    classifier_->add(std::make_shared<Linear>(LinearOptions{.in_features = 512 * 7 * 7, .out_features = 4096}))
        .add(std::make_shared<ReLU>())
        .add(std::make_shared<Dropout>(0.5))
        .add(std::make_shared<Linear>(LinearOptions{.in_features = 4096, .out_features = 4096}))
        .add(std::make_shared<ReLU>())
        .add(std::make_shared<Dropout>(0.5))
        .add(std::make_shared<Linear>(LinearOptions{.in_features = 4096, .out_features = options.num_classes}));
    // torchvision's VGG init: He-normal (fan_out) convs, N(0, 0.01) FC weights, zero biases.
    for (auto& p : named_parameters()) {
      if (p.role == ParamRole::Bias) constant_(p.tensor, 0.0);
      else if (p.tensor.dim() == 4) kaiming_normal_(p.tensor, FanMode::FanOut);
      else normal_(p.tensor, 0.0, 0.01);
    }
  }

  Tensor forward(const Tensor& x) override {
    check_image_batch("vgg16", x, in_channels_, kVggMinSize);
    Tensor y = avgpool_->forward(features_->forward(x));
    return classifier_->forward(flatten(y, 1));
  }
  std::string type_name() const override { return "VGG16"; }

 private:
  int64_t in_channels_;
  std::shared_ptr<Sequential> features_, classifier_;
  std::shared_ptr<AdaptiveAvgPool2d> avgpool_;
};

}  // namespace

std::shared_ptr<Module> vgg16(const ModelOptions& options) { return std::make_shared<Vgg16>(options); }

}  // namespace inq
