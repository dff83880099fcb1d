#include "layers/inference_prep.h"

#include "framework/allocator.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "layers/conv2d_panels.h"
#include "layers/conv2d_winograd.h"
#include "layers/fold_batchnorm.h"

namespace inq {

namespace {
// Filter panels and their GEMM kernel (layers/conv2d_winograd.h) for blocks of fewer than 128
// tiles (batch-1 layers from 28x28 down), OpenBLAS on plain U above. Measured on ResNet-18 at batch
// 1, 2 threads, quiet machine, 2026-12-01, ms per call, OpenBLAS -> panels: 56x56 64c (196 tiles)
// 1.04 -> 1.32; 28x28 128c 0.83 -> 0.53; 14x14 256c 0.79 -> 0.55; 7x7 512c with F(2x2) 1.30 -> 0.89.
bool use_filter_panels(const Conv2dGeometry& g, int m) {
  return winograd_filter_panels_supported() && winograd_tiles(g, m) < 128;
}
}  // namespace

bool frozen_conv2d_keeps_filters(const Conv2dGeometry& g, int m) {
  return winograd_filter_floats(g, m) * static_cast<int64_t>(sizeof(float)) <= kMaxKeptFilterBytes;
}

FrozenConv2dRoute frozen_conv2d_route(const Conv2dGeometry& g) {
  Conv2dPlan plan = choose_conv2d_algorithm(g, /*filters_kept=*/true);
  // F(4x4) filters too large to keep: F(2x2)'s (16/36 of the size) where they fit and pay.
  if (plan.winograd_forward && !frozen_conv2d_keeps_filters(g, plan.tile))
    plan = choose_conv2d_algorithm(g, /*filters_kept=*/true, /*f4_allowed=*/false);
  if (plan.winograd_forward && !frozen_conv2d_keeps_filters(g, plan.tile)) {
    // Still too large: Winograd with the filters transformed for this call where that pays
    // without kept filters and the block is large enough to amortize the transform (128 tiles and
    // more, as for OpenBLAS on plain U), else the panels.
    plan = choose_conv2d_algorithm(g, /*filters_kept=*/false);
    if (plan.winograd_forward && !use_filter_panels(g, plan.tile))
      return {.kind = FrozenConv2dRoute::PerCallWinograd, .tile = plan.tile};
    return {};
  }
  if (!plan.winograd_forward) return {};
  return {.kind = FrozenConv2dRoute::KeptWinograd, .tile = plan.tile, .filter_panels = use_filter_panels(g, plan.tile)};
}

FrozenConv2dKernel::FrozenConv2dKernel(const Tensor& weight, int64_t groups) : shape_(weight.shape()) {
  INQ_CHECK(weight.defined() && weight.dim() == 4, "Given a weight of shape {} to freeze, expected (K, C, R, S)",
            weight.defined() ? shape_str(weight.shape()) : "(undefined)");
  const int64_t K = shape_[0], inner = shape_[1] * shape_[2] * shape_[3];
  if (panel_gemm_supported() && groups == 1) {
    panels_ = Tensor::empty({panel_floats(K, inner)});
    pack_panels(panels_.data(), weight.data(), inner, K, inner);
  } else {
    weight_ = weight.detach();
  }
}

Tensor FrozenConv2dKernel::plain_weight() const {
  if (weight_.defined()) return weight_;
  Tensor w = Tensor::empty(shape_);
  const int64_t K = shape_[0], inner = shape_[1] * shape_[2] * shape_[3];
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < inner; ++j)
      w.data()[k * inner + j] = panels_.data()[(k / kPanelRows) * inner * kPanelRows + j * kPanelRows + k % kPanelRows];
  return w;
}

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
    winograd_transform_filters(U.data(), plain_weight().data(), g, m);
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
  const Conv2dGeometry g =
      Conv2dGeometry::make(x.shape(), shape_, options.stride, options.padding, options.dilation, options.groups);
  INQ_CHECK(!bias.defined() || bias.shape() == Shape{g.K},
            "Given a frozen Conv2d of {} output channels, expected a bias of shape [{}], but got {}", g.K, g.K,
            shape_str(bias.shape()));
  const float* b = bias.defined() ? bias.data() : nullptr;
  Tensor y = Tensor::empty(g.output_shape());
  const FrozenConv2dRoute route = frozen_conv2d_route(g);
  if (route.kind == FrozenConv2dRoute::PerCallWinograd) {
    winograd_conv2d_forward(y.data(), x.data(), plain_weight().data(), b, g, WinogradConfig{.m = route.tile});
  } else if (route.kind == FrozenConv2dRoute::KeptWinograd) {
    winograd_conv2d_forward(y.data(), x.data(), nullptr, b, g,
                            route.filter_panels
                                ? WinogradConfig{.m = route.tile, .filter_panels = filters(g, route.tile, true)}
                                : WinogradConfig{.m = route.tile, .filters = filters(g, route.tile, false)});
  } else if (panels_.defined() && conv2d_panels_supported(g)) {
    conv2d_forward_panels(y.data(), x.data(), panels_.data(), b, g);
  } else {
    // The layer's options say whether it was built with a bias; a folded BatchNorm
    // (layers/fold_batchnorm.h) gives one to a layer built without.
    Conv2dOptions with_bias = options;
    with_bias.bias = bias.defined();
    return conv2d(x.detach(), plain_weight(), bias.defined() ? bias.detach() : bias, with_bias);
  }
  return y;
}

namespace {
// The module at `dotted` ("downsample.0") below m, or null.
Module* find_module(Module& m, const std::string& dotted) {
  Module* at = &m;
  size_t start = 0;
  while (at != nullptr && start <= dotted.size()) {
    const size_t end = std::min(dotted.find('.', start), dotted.size());
    const std::string name = dotted.substr(start, end - start);
    Module* next = nullptr;
    for (const auto& [child_name, child] : at->children())
      if (child_name == name) next = child.get();
    at = next;
    start = end + 1;
  }
  return at;
}
}  // namespace

InferencePrepSummary prepare_for_inference(Module& model) {
  InferencePrepSummary summary;
  // BatchNorms into the float convolutions before them, where a module declares the pair.
  for_each_module(model, [&](const std::string& prefix, Module& m) {
    for (const auto& [conv_name, bn_name] : m.conv_batchnorm_pairs()) {
      auto* conv = dynamic_cast<Conv2d*>(find_module(m, conv_name));
      auto* bn = dynamic_cast<BatchNorm2d*>(find_module(m, bn_name));
      INQ_CHECK(conv != nullptr && bn != nullptr,
                "Given {} '{}' declaring '{}' and '{}' as a Conv2d and the BatchNorm2d after it, expected children "
                "of those types", m.type_name(), prefix, conv_name, bn_name);
      // Packed or already frozen convolutions have no float weight to fold into; a BatchNorm without
      // running statistics normalizes by the batch's even in eval mode.
      if (conv->weight_kernel() != nullptr || bn->folded() || !bn->options().track_running_stats) continue;
      const FoldedConv2d folded = fold_batchnorm(*conv, *bn);
      conv->weight.copy_from(folded.weight);
      if (conv->bias.defined()) {
        conv->bias.copy_from(folded.bias);
      } else {
        conv->bias = folded.bias;
      }
      bn->set_folded();
      ++summary.folded_batchnorms;
    }
  });
  for_each_module(model, [&](const std::string& /*prefix*/, Module& m) {
    auto* conv = dynamic_cast<Conv2d*>(&m);
    if (conv == nullptr || conv->weight_kernel() != nullptr) return;
    conv->replace_weight(std::make_shared<FrozenConv2dKernel>(conv->weight, conv->options().groups));
    ++summary.frozen_convs;
  });
  // The float weights just replaced sit idle in the caching allocator, a size the panels (rows
  // padded to 14) and the activations never ask for again: give them back (ResNet-50: 94 MB).
  if (summary.frozen_convs > 0) release_cached_memory();
  model.eval();
  return summary;
}

}  // namespace inq
