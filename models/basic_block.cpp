#include "models/basic_block.h"

#include "layers/activation.h"

namespace inq {

BasicBlock::BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride) {
  conv1_ = register_module("conv1", std::make_shared<Conv2d>(Conv2dOptions{
                                        .in_channels = in_channels, .out_channels = out_channels,
                                        .kernel_size = 3, .stride = stride, .padding = 1, .bias = false}));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(BatchNorm2dOptions{.num_features = out_channels}));
  conv2_ = register_module("conv2", std::make_shared<Conv2d>(Conv2dOptions{
                                        .in_channels = out_channels, .out_channels = out_channels,
                                        .kernel_size = 3, .padding = 1, .bias = false}));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(BatchNorm2dOptions{.num_features = out_channels}));
  if (stride != 1 || in_channels != out_channels) {
    downsample_ = std::make_shared<Sequential>();
    downsample_->add(std::make_shared<Conv2d>(Conv2dOptions{.in_channels = in_channels, .out_channels = out_channels,
                                                            .kernel_size = 1, .stride = stride, .bias = false}))
        .add(std::make_shared<BatchNorm2d>(BatchNorm2dOptions{.num_features = out_channels}));
    register_module("downsample", downsample_);
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor y = bn1_->forward_relu(conv1_->forward(x));
  y = bn2_->forward(conv2_->forward(y));
  Tensor shortcut = downsample_ ? downsample_->forward(x) : x;
  return add_relu(y, shortcut);
}

std::vector<std::pair<std::string, std::string>> BasicBlock::conv_batchnorm_pairs() const {
  std::vector<std::pair<std::string, std::string>> pairs = {{"conv1", "bn1"}, {"conv2", "bn2"}};
  if (downsample_) pairs.emplace_back("downsample.0", "downsample.1");
  return pairs;
}

}  // namespace inq
