#include "models/bottleneck.h"

#include "layers/activation.h"

namespace inq {

Bottleneck::Bottleneck(int64_t in_channels, int64_t planes, int64_t stride) {
  const int64_t out_channels = planes * kExpansion;
  auto conv = [](int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding) {
    return std::make_shared<Conv2d>(Conv2dOptions{.in_channels = in, .out_channels = out, .kernel_size = kernel,
                                                  .stride = stride, .padding = padding, .bias = false});
  };
  conv1_ = register_module("conv1", conv(in_channels, planes, 1, 1, 0));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  // v1.5: the stride sits on the 3x3 conv, not on the first 1x1 (which would skip 3/4 of the input).
  conv2_ = register_module("conv2", conv(planes, planes, 3, stride, 1));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv3_ = register_module("conv3", conv(planes, out_channels, 1, 1, 0));
  bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(out_channels));
  if (stride != 1 || in_channels != out_channels) {
    downsample_ = std::make_shared<Sequential>();
    downsample_->add(conv(in_channels, out_channels, 1, stride, 0)).add(std::make_shared<BatchNorm2d>(out_channels));
    register_module("downsample", downsample_);
  }
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor y = bn1_->forward_relu(conv1_->forward(x));
  y = bn2_->forward_relu(conv2_->forward(y));
  y = bn3_->forward(conv3_->forward(y));
  Tensor shortcut = downsample_ ? downsample_->forward(x) : x;
  return add_relu(y, shortcut);
}

std::vector<std::pair<std::string, std::string>> Bottleneck::conv_batchnorm_pairs() const {
  std::vector<std::pair<std::string, std::string>> pairs = {{"conv1", "bn1"}, {"conv2", "bn2"}, {"conv3", "bn3"}};
  if (downsample_) pairs.emplace_back("downsample.0", "downsample.1");
  return pairs;
}

}  // namespace inq
