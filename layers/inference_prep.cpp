#include "layers/inference_prep.h"

#include <functional>

#include "framework/autograd.h"
#include "framework/error.h"
#include "layers/conv2d_winograd.h"

namespace inq {

int64_t FrozenConv2dKernel::cached_filter_sets() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(filters_.size());
}

const float* FrozenConv2dKernel::filters(const Conv2dGeometry& g, int m) const {
  std::lock_guard<std::mutex> lock(mutex_);
  Tensor& U = filters_[m];
  if (!U.defined()) {
    U = Tensor::empty({winograd_filter_floats(g, m)});
    winograd_transform_filters(U.data(), weight_.data(), g, m);
  }
  return U.data();
}

Tensor FrozenConv2dKernel::forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const {
  INQ_CHECK(x.defined(), "Given an undefined input to a frozen Conv2d, expected a tensor");
  const Conv2dGeometry g =
      Conv2dGeometry::make(x.shape(), weight_.shape(), options.stride, options.padding, options.dilation, options.groups);
  const Conv2dPlan plan = choose_conv2d_algorithm(g);
  if (!plan.winograd_forward) return conv2d(x.detach(), weight_, bias.defined() ? bias.detach() : bias, options);
  INQ_CHECK(!bias.defined() || bias.shape() == Shape{g.K},
            "Given a frozen Conv2d of {} output channels, expected a bias of shape [{}], but got {}", g.K, g.K,
            shape_str(bias.shape()));
  Tensor y = Tensor::empty(g.output_shape());
  winograd_conv2d_forward(y.data(), x.data(), weight_.data(), bias.defined() ? bias.data() : nullptr, g,
                          WinogradConfig{.m = plan.tile, .filters = filters(g, plan.tile)});
  return y;
}

namespace {
void for_each_module(Module& m, const std::function<void(Module&)>& visit) {
  visit(m);
  for (const auto& [name, child] : m.children()) for_each_module(*child, visit);
}
}  // namespace

InferencePrepSummary prepare_for_inference(Module& model) {
  InferencePrepSummary summary;
  for_each_module(model, [&](Module& m) {
    auto* conv = dynamic_cast<Conv2d*>(&m);
    if (conv == nullptr || conv->weight_kernel() != nullptr) return;
    conv->replace_weight(std::make_shared<FrozenConv2dKernel>(conv->weight));
    ++summary.frozen_convs;
  });
  model.eval();
  return summary;
}

}  // namespace inq
