// LeNet-5 (LeCun et al. 1998) as commonly modernized: ReLU instead of scaled tanh, max-pooling
// instead of trainable subsampling, and a padded first conv so 28x28 inputs keep the classic
// 32x32 geometry: conv5(6) -> pool -> conv5(16) -> pool -> fc120 -> fc84 -> fc(num_classes).
#include "layers/activation.h"
#include "layers/conv2d.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "models/registry.h"

namespace inq {

std::shared_ptr<Module> lenet5(const ModelOptions& options) {
  auto features = std::make_shared<Sequential>();
  features->add(std::make_shared<Conv2d>(Conv2dOptions{.in_channels = options.in_channels, .out_channels = 6,
                                                       .kernel_size = 5, .padding = 2}))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<MaxPool2d>(MaxPool2dOptions{.kernel_size = 2}))
      .add(std::make_shared<Conv2d>(Conv2dOptions{.in_channels = 6, .out_channels = 16, .kernel_size = 5}))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<MaxPool2d>(MaxPool2dOptions{.kernel_size = 2}));
  auto classifier = std::make_shared<Sequential>();
  classifier->add(std::make_shared<Linear>(LinearOptions{.in_features = 16 * 5 * 5, .out_features = 120}))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<Linear>(LinearOptions{.in_features = 120, .out_features = 84}))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<Linear>(LinearOptions{.in_features = 84, .out_features = options.num_classes}));
  auto model = std::make_shared<Sequential>();
  model->add("features", features).add("flatten", std::make_shared<Flatten>()).add("classifier", classifier);
  return model;
}

}  // namespace inq
