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
//  - every other call with one group multiplies on the weight laid out once as panels, with
//    framework/panel_gemm.h's AVX-512 kernel (layers/conv2d_panels.h), instead of sgemm. This holds
//    even where the plain layer's im2col gives large weights to sgemm (choose_im2col_gemms: OpenBLAS
//    with AVX-512 kernels), since sgemm packs the weight again on every call and these panels are
//    packed once. Timed standalone (conv2d_forward_panels on kept panels against conv2d_forward's im2col
//    path, best of 12 calls, ResNet-50's batch-8 layers, OPENBLAS_CORETYPE=SkylakeX, 2026-12-04,
//    GFLOP/s panels / sgemm), on a 16-core Intel Xeon at 2 threads: 1x1 1024->256 14x14 130 / 116,
//    256->1024 131 / 122, 512->2048 7x7 133 / 112, 2048->512 147 / 110, 512->128 28x28 123 / 113,
//    128->512 156 / 118, and only 3x3 512c 7x7 (which runs F(2x2) here anyway) 127 / 153; at 1 thread
//    within 10% either way; on the AMD EPYC VM (Zen 5) at 1 thread the panels won every 1x1 by 3-10%.
// Where the frozen layer runs the plain layer's kernels on the same U (Winograd blocks of 128 tiles
// and more) the output is bit-identical; elsewhere it differs by rounding (tested against the naive
// convolution). The layer's weight leaves its parameters (the model can no longer be trained or
// saved); the panels take the weight's memory (rows padded to 14), and the kept filters 4x the
// weight's (16/9 with F(2x2)) for the layers that use them, made on first use, up to
// kMaxKeptFilterBytes per layer. Transformed filters larger than that do not stay in the caches
// between calls anyway, so at small batches Winograd's saved multiplies are spent streaming them
// from memory, while keeping them costs 4x the weight: VGG-16's 512-channel layers would keep 38 MB
// each (188 MB in all, which put its batch-1 process above PyTorch's). Measured on VGG-16, 2
// threads, 2026-12-02 (bench_model eval): keeping F(2x2)'s instead, batch 1 7.2-8.0 -> 7.4 img/s,
// batch 8 9.4-9.8 -> 8.8; keeping none (the panels at batch 1) was 5.6.
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "framework/tensor.h"
#include "layers/conv2d.h"
#include "layers/module.h"

namespace inq {

// The largest transformed filters a frozen layer keeps (a layer with larger ones runs as the plain
// layer would: Winograd with filters transformed per call where that pays, else the panels).
inline constexpr int64_t kMaxKeptFilterBytes = int64_t{32} << 20;
bool frozen_conv2d_keeps_filters(const Conv2dGeometry& g, int m);

// What a frozen layer runs for g (FrozenConv2dKernel::forward; benchmarks label layers with it):
// Winograd on filters it keeps (as filter panels for blocks under 128 tiles), Winograd with the
// filters transformed for this call (kept ones would be too large), or the lowered path (the weight
// panels, else conv2d).
struct FrozenConv2dRoute {
  enum Kind { KeptWinograd, PerCallWinograd, Lowered } kind = Lowered;
  int tile = 4;                // Winograd output tile side
  bool filter_panels = false;  // KeptWinograd: the filters kept as panels
};
FrozenConv2dRoute frozen_conv2d_route(const Conv2dGeometry& g);

class FrozenConv2dKernel : public Conv2dWeightKernel {
 public:
  // Keeps the weight as panels (framework/panel_gemm.h) where the panel kernel runs this layer's
  // non-Winograd calls (an AVX-512 build, groups 1), else as it is.
  FrozenConv2dKernel(const Tensor& weight, int64_t groups);
  Tensor forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const override;
  // The transformed filters kept so far (one per Winograd tile size and layout used), for tests.
  int64_t cached_filter_sets() const;
  bool holds_panels() const { return panels_.defined(); }

 private:
  const float* filters(const Conv2dGeometry& g, int m, bool panels) const;
  Tensor plain_weight() const;  // (K, C/groups, R, S), rebuilt from the panels when they are kept

  Shape shape_;   // the weight's
  Tensor weight_;  // the weight, when not kept as panels
  Tensor panels_;  // panel_floats(K, C*R*S) floats, or undefined
  mutable std::mutex mutex_;
  mutable std::map<std::pair<int, bool>, Tensor> filters_;  // (tile size m, as panels) -> U
};

struct InferencePrepSummary {
  int64_t frozen_convs = 0;       // Conv2d layers given a FrozenConv2dKernel
  int64_t folded_batchnorms = 0;  // BatchNorm2d layers folded into the convolution before them
};

// Folds each BatchNorm2d that a module declares to follow a float Conv2d (Module::
// conv_batchnorm_pairs: ResNet's and GoogLeNet's) into that convolution's weight and bias
// (layers/fold_batchnorm.h, with its running statistics; the weight tensor is overwritten in
// place, and the BatchNorm then passes its input through), freezes every Conv2d of `model` that still has a float weight (packed layers are left
// alone, and so are the BatchNorms after them: scaling b-bit codes would leave the codebook) and
// puts the model in eval mode. Folding saves a pass over each such activation (a BatchNorm before a
// ReLU leaves the ReLU's pass) and changes the outputs by rounding only: float ResNet-18 at batch 1,
// 2 threads, 2026-12-02, alternating four rounds: 91.7, 91.6, 92.8, 90.8 -> 89.2, 93.7, 94.2, 95.3
// img/s (median +2.5%).
InferencePrepSummary prepare_for_inference(Module& model);

}  // namespace inq
