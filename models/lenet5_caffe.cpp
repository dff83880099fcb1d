// Caffe's LeNet (examples/mnist/lenet_train_test.prototxt), the network Deep Compression (Han et
// al. 2016) and Dynamic Network Surgery (Guo et al. 2016) report their LeNet-5 results on:
// conv5(20) -> max-pool 2 -> conv5(50) -> max-pool 2 -> fc500 -> ReLU -> fc(num_classes), for 28x28
// inputs without padding (28 -> 24 -> 12 -> 8 -> 4). As in Caffe there is no non-linearity after
// the convolutions. 431,080 parameters with 10 classes, 430,500 of them weights. Names follow the
// Sequential layout of lenet5 (features.N, classifier.N).
#include "layers/activation.h"
#include "layers/conv2d.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "models/registry.h"

namespace inq {

std::shared_ptr<Module> lenet5_caffe(const ModelOptions& options) {
  auto features = std::make_shared<Sequential>();
  features->add(std::make_shared<Conv2d>(Conv2dOptions{.in_channels = options.in_channels, .out_channels = 20,
                                                       .kernel_size = 5}))
      .add(std::make_shared<MaxPool2d>(MaxPool2dOptions{.kernel_size = 2}))
      .add(std::make_shared<Conv2d>(Conv2dOptions{.in_channels = 20, .out_channels = 50, .kernel_size = 5}))
      .add(std::make_shared<MaxPool2d>(MaxPool2dOptions{.kernel_size = 2}));
  auto classifier = std::make_shared<Sequential>();
  classifier->add(std::make_shared<Linear>(LinearOptions{.in_features = 50 * 4 * 4, .out_features = 500}))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<Linear>(LinearOptions{.in_features = 500, .out_features = options.num_classes}));
  auto model = std::make_shared<Sequential>();
  model->add("features", features).add("flatten", std::make_shared<Flatten>()).add("classifier", classifier);
  return model;
}

}  // namespace inq
