#pragma once
// Parameter initializers (after torch.nn.init). Each fills a tensor in place, element by element in
// storage order, drawing from default_generator(), so a seed fixes every initial weight. They
// write through data() and do not record autograd history (call them on leaves).
//
// Fans of a weight of shape (out, in, *kernel): fan_in = in * prod(kernel), fan_out =
// out * prod(kernel). A Linear weight is (out, in); a Conv2d weight is (K, C/groups, R, S).
#include <cstdint>

#include "framework/tensor.h"

namespace inq {

enum class FanMode { FanIn, FanOut };

// While one is alive on this thread, every initializer below returns without writing. Building a
// model whose Conv2d / Linear weights are about to be replaced by packed codes (inq/packed_inference.h)
// then never touches the float weights' pages, so the operating system never backs them with memory
// (the large ones are fresh mmap'd pages) and the process's peak resident memory stays that of the
// codes. Nothing else should use it: the tensors are left uninitialized.
class SkipParameterInitGuard {
 public:
  SkipParameterInitGuard();
  ~SkipParameterInitGuard();
  SkipParameterInitGuard(const SkipParameterInitGuard&) = delete;
  SkipParameterInitGuard& operator=(const SkipParameterInitGuard&) = delete;
  static bool active();

 private:
  bool previous_;
};

struct Fans {
  int64_t fan_in = 0, fan_out = 0;
};
// Throws inq::Error for tensors with fewer than 2 dims (no fan is defined), as PyTorch does.
Fans compute_fans(const Shape& weight_shape);

// The gain that keeps activations' variance through a leaky ReLU with this negative slope:
// sqrt(2 / (1 + slope^2)). slope 0 is ReLU's sqrt(2); slope sqrt(5) gives PyTorch's default
// Conv2d/Linear init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
double leaky_relu_gain(double negative_slope);

// U(lo, hi); requires lo <= hi.
void uniform_(Tensor& t, double lo, double hi);
// N(mean, std^2); requires std >= 0.
void normal_(Tensor& t, double mean, double std);
void constant_(Tensor& t, double value);
// N(mean, std^2) restricted to [lo, hi] (absolute bounds, as torch.nn.init.trunc_normal_'s a and b;
// torchvision's GoogLeNet uses std 0.01 within [-2, 2]). Exact: rejection sampling when the
// interval holds a fair share of the mass, the inverse CDF otherwise. Requires std > 0, lo < hi.
void trunc_normal_(Tensor& t, double mean, double std, double lo, double hi);
// He et al.: std = gain / sqrt(fan), normal with mean 0.
void kaiming_normal_(Tensor& t, FanMode mode = FanMode::FanIn, double gain = 1.4142135623730951);
// He et al., uniform: bound = gain * sqrt(3 / fan), U(-bound, bound) (the same variance).
void kaiming_uniform_(Tensor& t, FanMode mode = FanMode::FanIn, double gain = 1.4142135623730951);

}  // namespace inq
