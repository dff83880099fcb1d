#pragma once
// Preparing a float model whose weights will not change again for inference (`inq eval`, `inq run`,
// `inq bench-model`, InferenceSession, all through train/inference_model.h; bench/bench_model's eval
// mode). Every Conv2d with a float weight gets a FrozenConv2dKernel in place of it (as a packed
// model's layers get packed kernels, inq/packed_inference.h): it runs what conv2d would, but keeps
// the Winograd-transformed filters of a layer the dispatcher sends to Winograd once it has computed
// them, so later calls skip the filter transform. Kept filters also change what pays:
//  - small images run Winograd too (F(2x2) on ResNet's 7x7 layers at batch 1: choose_conv2d_algorithm
//    with filters_kept), where the plain layer runs im2col;
//  - blocks of fewer than 128 tiles multiply on filter panels with their own AVX-512 kernel
//    (layers/conv2d_winograd.h) instead of OpenBLAS, which repacked the filters on every call.
// Elsewhere the output is bit-identical to the unprepared layer's (the same kernels on the same U);
// in those two cases it differs by rounding (tested against the naive convolution). The layer's
// weight leaves its parameters (the model can no longer be trained or saved), and the kept filters
// take 4x the weight's memory (16/9 with F(2x2)) for the layers that use them, made on first use.
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "framework/tensor.h"
#include "layers/conv2d.h"
#include "layers/module.h"

namespace inq {

class FrozenConv2dKernel : public Conv2dWeightKernel {
 public:
  explicit FrozenConv2dKernel(Tensor weight) : weight_(weight.detach()) {}
  Tensor forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const override;
  const Tensor& weight() const { return weight_; }
  // The transformed filters kept so far (one per Winograd tile size and layout used), for tests.
  int64_t cached_filter_sets() const;

 private:
  const float* filters(const Conv2dGeometry& g, int m, bool panels) const;

  Tensor weight_;
  mutable std::mutex mutex_;
  mutable std::map<std::pair<int, bool>, Tensor> filters_;  // (tile size m, as panels) -> U
};

struct InferencePrepSummary {
  int64_t frozen_convs = 0;  // Conv2d layers given a FrozenConv2dKernel
};

// Freezes every Conv2d of `model` that still has a float weight (packed layers are left alone) and
// puts the model in eval mode.
InferencePrepSummary prepare_for_inference(Module& model);

}  // namespace inq
