#pragma once
// ResNet BasicBlock (two 3x3 convs with BN, identity or projection shortcut), shared by the
// CIFAR-style ResNet-20 and torchvision's ResNet-18/34. Names: conv1, bn1, conv2, bn2,
// downsample.0 (1x1 conv), downsample.1 (BN), as in torchvision.
#include <memory>

#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/module.h"

namespace inq {

class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in_channels, int64_t out_channels, int64_t stride);
  Tensor forward(const Tensor& x) override;  // (N, in, H, W) -> (N, out, H/stride, W/stride)
  std::string type_name() const override { return "BasicBlock"; }
  std::vector<std::pair<std::string, std::string>> conv_batchnorm_pairs() const override;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<Sequential> downsample_;  // null for the identity shortcut
};

}  // namespace inq
