#include "layers/inference_prep.h"

#include "framework/autograd.h"
#include "framework/error.h"
#include "layers/conv2d_winograd.h"

namespace inq {

namespace {
// Filter panels and their GEMM kernel (layers/conv2d_winograd.h) for blocks of fewer than 128
// tiles (batch-1 layers from 28x28 down), OpenBLAS on plain U above. Measured on ResNet-18 at batch
// 1, 2 threads, quiet machine, 2026-12-01, ms per call, OpenBLAS -> panels: 56x56 64c (196 tiles)
// 1.04 -> 1.32; 28x28 128c 0.83 -> 0.53; 14x14 256c 0.79 -> 0.55; 7x7 512c with F(2x2) 1.30 -> 0.89.
bool use_filter_panels(const Conv2dGeometry& g, int m) {
  const int64_t tiles = g.N * ((g.OH + m - 1) / m) * ((g.OW + m - 1) / m);
  return winograd_filter_panels_supported() && tiles < 128;
}
}  // namespace

int64_t FrozenConv2dKernel::cached_filter_sets() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(filters_.size());
}

// U for tile m, transformed on first use and kept, plain or as filter panels.
const float* FrozenConv2dKernel::filters(const Conv2dGeometry& g, int m, bool panels) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Tensor& kept = filters_[{m, panels}];
  if (!kept.defined()) {
    Tensor U = Tensor::empty({winograd_filter_floats(g, m)});
    winograd_transform_filters(U.data(), weight_.data(), g, m);
    if (panels) {
      kept = Tensor::empty({winograd_filter_panel_floats(g, m)});
      winograd_pack_filter_panels(kept.data(), U.data(), g, m);
    } else {
      kept = U;
    }
  }
  return kept.data();
}

Tensor FrozenConv2dKernel::forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const {
  INQ_CHECK(x.defined(), "Given an undefined input to a frozen Conv2d, expected a tensor");
  const Conv2dGeometry g = Conv2dGeometry::make(x.shape(), weight_.shape(), options.stride, options.padding,
                                                options.dilation, options.groups);
  const Conv2dPlan plan = choose_conv2d_algorithm(g, /*filters_kept=*/true);
  if (!plan.winograd_forward) return conv2d(x.detach(), weight_, bias.defined() ? bias.detach() : bias, options);
  INQ_CHECK(!bias.defined() || bias.shape() == Shape{g.K},
            "Given a frozen Conv2d of {} output channels, expected a bias of shape [{}], but got {}", g.K, g.K,
            shape_str(bias.shape()));
  Tensor y = Tensor::empty(g.output_shape());
  winograd_conv2d_forward(y.data(), x.data(), weight_.data(), bias.defined() ? bias.data() : nullptr, g,
                          use_filter_panels(g, plan.tile)
                              ? WinogradConfig{.m = plan.tile, .filter_panels = filters(g, plan.tile, true)}
                              : WinogradConfig{.m = plan.tile, .filters = filters(g, plan.tile, false)});
  return y;
}

InferencePrepSummary prepare_for_inference(Module& model) {
  InferencePrepSummary summary;
  for_each_module(model, [&](const std::string& /*prefix*/, Module& m) {
    auto* conv = dynamic_cast<Conv2d*>(&m);
    if (conv == nullptr || conv->weight_kernel() != nullptr) return;
    conv->replace_weight(std::make_shared<FrozenConv2dKernel>(conv->weight));
    ++summary.frozen_convs;
  });
  model.eval();
  return summary;
}

}  // namespace inq
