#pragma once
// 2-D convolution (cross-correlation, as PyTorch's Conv2d) by im2col + sgemm, or by Winograd
// F(4x4, 3x3) (layers/conv2d_winograd.h) for the 3x3 stride-1 layers choose_conv2d_algorithm picks.
//   x (N, C, H, W)   w (K, C/groups, R, S)   b (K)   y (N, K, OH, OW)
// Three im2col paths share one loop: the general one lowers a chunk of images with im2col and multiplies
// per group; a 1x1 / stride-1 / unpadded convolution taken one image at a time multiplies the
// image directly (no im2col); groups > 1 run one GEMM per group on the shared col matrix.
// How many images go into one GEMM is decided in one place, choose_images_per_gemm (im2col.h).
#include <memory>
#include <string>

#include "framework/gemm.h"
#include "framework/im2col.h"
#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

struct Conv2dOptions {
  int64_t in_channels = 0, out_channels = 0;
  Size2 kernel_size = 1, stride = 1, padding = 0, dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

// Throws inq::Error unless the options describe a valid layer: positive channels, kernel, stride
// and dilation, non-negative padding, groups >= 1 dividing both channel counts.
void check_conv2d_options(const Conv2dOptions& o);

// ---- kernels (no autograd; buffers are contiguous, sizes come from g) ----
// y = conv(x, w) + b. b may be null. Overwrites y.
void conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dGeometry& g);
// Gradients of the forward above given dy; each output may be null (not wanted). accumulate: they
// are ADDED into dx, dw, db; otherwise written over them (no zeroing needed first). dx, dw, db
// have the shapes of x, w, b. x is needed only for dw, w only for dx.
void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                     const Conv2dGeometry& g, bool accumulate = true);

// ---- algorithm choice ----
// 3x3 stride-1 convolutions may run as Winograd F(4x4, 3x3) (layers/conv2d_winograd.h), and narrow
// stride-1 ones as direct convolutions (layers/conv2d_direct.h), instead of im2col + sgemm;
// choose_conv2d_algorithm (conv2d.cpp) decides per shape. Auto follows it; Im2col, Winograd and
// Direct force a path for every later call (tests, A/B benchmarks; a forced path still falls back
// to im2col where it does not apply). The environment variable INQ_CONV_ALGO=auto|im2col|winograd|direct
// sets the initial mode.
enum class Conv2dAlgorithm { Auto, Im2col, Winograd, Direct };
void set_conv2d_algorithm(Conv2dAlgorithm algorithm);
Conv2dAlgorithm conv2d_algorithm();
// What conv2d_forward and conv2d_backward run for g under the current mode.
struct Conv2dPlan {
  bool winograd_forward = false;  // forward
  bool winograd_data = false;     // backward input gradient
  bool winograd_weight = false;   // backward weight gradient
  bool direct_forward = false, direct_data = false, direct_weight = false;  // the same three, direct
  int tile = 4;                   // Winograd output tile side (WinogradConfig::m)
};
// The kernels the im2col path's GEMMs run for a large weight on this machine: OpenBLAS's AVX-512
// kernels (sgemm_runs_avx512), else this build's own AVX-512 panel and dot-product kernels
// (panel_gemm_supported, framework/panel_gemm.h; OpenBLAS then runs AVX2 kernels or older), else
// neither.
enum class Im2colKernels { Plain, OwnAvx512, BlasAvx512 };
Im2colKernels im2col_kernels();
// filters_kept: the caller keeps the Winograd-transformed filters between calls (an inference layer,
// layers/inference_prep.h), which makes F(2x2) worth it on small images (see conv2d.cpp).
// f4_allowed = false: the forward may use F(2x2) only (an inference layer that would keep F(4x4)'s
// filters if they were not too large). kernels: what im2col's GEMMs would run (im2col_kernels()):
// with AVX-512 kernels im2col beats F(4x4) on layers with few Winograd tiles, and F(2x2) takes
// those layers instead (a parameter for tests).
Conv2dPlan choose_conv2d_algorithm(const Conv2dGeometry& g, bool filters_kept = false, bool f4_allowed = true,
                                   Im2colKernels kernels = im2col_kernels());

// The im2col path's GEMMs: the weight times the lowered images (forward, input gradient) on this
// project's panel kernel (framework/panel_gemm.h) or on sgemm, and the weight gradient on the
// dot-product kernel (framework/dot_gemm.h) or on sgemm. Auto follows choose_im2col_gemms;
// OwnKernels forces the project's kernels where the build has them (AVX-512) and Blas forces sgemm,
// for every later call (tests, A/B benchmarks).
enum class Im2colGemm { Auto, OwnKernels, Blas };
void set_im2col_gemm(Im2colGemm mode);
Im2colGemm im2col_gemm();
struct Im2colGemmPlan {
  bool weight_panels = false;       // forward and input gradient on the panel kernel
  bool weight_gradient_dot = false;  // weight gradient on the dot-product kernel
};
// The choice for g (its images per GEMM included) under the current mode; blas_avx512: OpenBLAS
// runs AVX-512 kernels (sgemm_runs_avx512, framework/gemm.h).
Im2colGemmPlan choose_im2col_gemms(const Conv2dGeometry& g, bool blas_avx512);

// Functional convolution with autograd (gradients for x, weight and bias, where they require it).
// Stride, padding, dilation and groups come from `opts`; kernel size and channel counts come from
// weight's shape. When opts.in_channels > 0 (a fully specified layer, as Conv2d passes) the
// options' channels, kernel size and bias flag are checked against the tensors as well. bias is
// (K) or undefined. Shape errors throw inq::Error naming x's, weight's and bias's shapes.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opts);

// Another representation of a Conv2d layer's weight (inq/packed_inference.h keeps it as b-bit
// codes). forward(x, bias, options) returns what conv2d(x, weight, bias, options) would; inference
// only: no gradient reaches the weight.
class Conv2dWeightKernel {
 public:
  virtual ~Conv2dWeightKernel() = default;
  virtual Tensor forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const = 0;
};

// The layer. Parameters "weight" (K, C/groups, R, S) and "bias" (K), initialized as PyTorch does:
// both U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C/groups * R * S (weight drawn first).
class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dOptions& options);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Conv2d"; }
  const Conv2dOptions& options() const { return options_; }
  // Redraws weight and bias from default_generator().
  void reset_parameters();
  // Replaces the float weight by `kernel` for good, as Linear::replace_weight does.
  void replace_weight(std::shared_ptr<const Conv2dWeightKernel> kernel);
  const Conv2dWeightKernel* weight_kernel() const { return kernel_.get(); }

  Tensor weight;  // (K, C/groups, R, S); undefined after replace_weight
  Tensor bias;    // (K), undefined when options.bias is false

 private:
  Conv2dOptions options_;
  std::shared_ptr<const Conv2dWeightKernel> kernel_;
};

}  // namespace inq
