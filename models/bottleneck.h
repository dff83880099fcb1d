#pragma once
// ResNet Bottleneck block as torchvision builds it (ResNet v1.5): 1x1 conv to `planes` channels,
// 3x3 conv carrying the stride, 1x1 conv up to 4 * planes, each with BatchNorm; ReLU after the
// first two and after the residual add. The shortcut is the identity, or a strided 1x1 conv + BN
// when the shape changes. Names: conv1, bn1, conv2, bn2, conv3, bn3, downsample.0, downsample.1.
//   x (N, in, H, W) -> (N, 4 * planes, ceil(H / stride), ceil(W / stride))
#include <memory>

#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/module.h"

namespace inq {

class Bottleneck : public Module {
 public:
  static constexpr int64_t kExpansion = 4;

  Bottleneck(int64_t in_channels, int64_t planes, int64_t stride);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Bottleneck"; }
  std::vector<std::pair<std::string, std::string>> conv_batchnorm_pairs() const override;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_;
  std::shared_ptr<Sequential> downsample_;  // null for the identity shortcut
};

}  // namespace inq
