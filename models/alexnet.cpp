// AlexNet as torchvision builds it: the single-GPU variant of Krizhevsky's "One weird trick"
// paper (arXiv:1404.5997), with 64, 192, 384, 256, 256 conv channels, no LRN, an adaptive 6x6
// average pool (so inputs need not be 224x224) and dropout before each of the first two FC layers.
// Child and parameter names are torchvision's (features.0.weight ... classifier.6.bias).
#include "layers/activation.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "models/image_input.h"
#include "models/registry.h"

namespace inq {

namespace {

// Smallest H (and W) that survives conv 11/4 pad 2 and three 3/2 max-pools: the last pool needs a
// 3x3 input, the second one 7x7, the first one 15x15, and conv1 gives 15 from 63 (torchvision's
// documented min_size).
constexpr int64_t kAlexNetMinSize = 63;

class AlexNet : public Module {
 public:
  explicit AlexNet(const ModelOptions& options) : in_channels_(options.in_channels) {
    auto conv = [](int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
      return std::make_shared<Conv2d>(Conv2dOptions{
          .in_channels = in, .out_channels = out, .kernel_size = kernel, .stride = stride, .padding = padding});
    };
    auto pool = [] { return std::make_shared<MaxPool2d>(MaxPool2dOptions{.kernel_size = 3, .stride = 2}); };
    features_ = register_module("features", std::make_shared<Sequential>());
    features_->add(conv(options.in_channels, 64, 11, 4, 2)).add(std::make_shared<ReLU>()).add(pool());
    features_->add(conv(64, 192, 5, 1, 2)).add(std::make_shared<ReLU>()).add(pool());
    features_->add(conv(192, 384, 3, 1, 1)).add(std::make_shared<ReLU>());
    features_->add(conv(384, 256, 3, 1, 1)).add(std::make_shared<ReLU>());
    features_->add(conv(256, 256, 3, 1, 1)).add(std::make_shared<ReLU>()).add(pool());
    avgpool_ = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(
                                              AdaptiveAvgPool2dOptions{.output_h = 6, .output_w = 6}));
    classifier_ = register_module("classifier", std::make_shared<Sequential>());
    classifier_->add(std::make_shared<Dropout>(0.5))
        .add(std::make_shared<Linear>(LinearOptions{.in_features = 256 * 6 * 6, .out_features = 4096}))
        .add(std::make_shared<ReLU>())
        .add(std::make_shared<Dropout>(0.5))
        .add(std::make_shared<Linear>(LinearOptions{.in_features = 4096, .out_features = 4096}))
        .add(std::make_shared<ReLU>())
        .add(std::make_shared<Linear>(LinearOptions{.in_features = 4096, .out_features = options.num_classes}));
    // torchvision keeps PyTorch's default Conv2d / Linear initialization here, as do our layers.
  }

  Tensor forward(const Tensor& x) override {
    check_image_batch("alexnet", x, in_channels_, kAlexNetMinSize);
    Tensor y = avgpool_->forward(features_->forward(x));
    return classifier_->forward(flatten(y, 1));
  }
  std::string type_name() const override { return "AlexNet"; }

 private:
  int64_t in_channels_;
  std::shared_ptr<Sequential> features_, classifier_;
  std::shared_ptr<AdaptiveAvgPool2d> avgpool_;
};

}  // namespace

std::shared_ptr<Module> alexnet(const ModelOptions& options) { return std::make_shared<AlexNet>(options); }

}  // namespace inq
