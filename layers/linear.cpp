#include "layers/linear.h"

#include <algorithm>
#include <cmath>

#include <omp.h>

#include "framework/autograd.h"
#include "framework/dot_gemm.h"
#include "framework/error.h"
#include "framework/gemm.h"
#include "framework/workspace.h"
#include "layers/init.h"

namespace inq {

namespace {

// Batches of 2..16 rows (inference at batch 8, the paper models' training steps) on the dot-product
// kernel (framework/dot_gemm.h) with the weight as its first operand: each 4-row block of w is
// streamed from memory once and multiplied into every row of x while it is in cache, where
// OpenBLAS's sgemm copies (packs) the whole weight on every call and then reads the copy, which
// took as long again as the multiplies for a weight far larger than the cache. Measured with
// bench/bench_packed_gemv (second table; Zen 5 VM, 2026-12-03, caches evicted, ms per call, sgemm ->
// this path) on AlexNet's fc6 (4096 x 9216, 151 MB): 2 threads, batch 2 11.6 -> 4.5, batch 8 17.5 ->
// 7.1, batch 16 14.7 -> 9.7, batch 32 20.2 -> 19.9 (even: sgemm from 17 rows on); 1 thread, batch 8
// 18.3 -> 11.0. At batch 1 sgemm runs as OpenBLAS's sgemv, as fast as this path: kept.
constexpr int64_t kDotMaxBatch = 16;

bool dot_path_pays(int64_t N) { return N >= 2 && N <= kDotMaxBatch && dot_gemm_supported(); }

// y = x * w^T + b through y^T (out, N) = w * x^T: the threads take contiguous runs of whole 4-row
// blocks of w, the blocks one call would use, so every output's bits are the same for any thread count.
void linear_forward_dot(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t in,
                        int64_t out) {
  float* yt = thread_workspace().floats(out * N);
  const int64_t blocks = (out + 3) / 4;
#pragma omp parallel if (out * in >= 32768)
  {
    const int64_t threads = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t o0 = 4 * (blocks * id / threads), o1 = std::min(out, 4 * (blocks * (id + 1) / threads));
    if (o0 < o1) dot_gemm(w + o0 * in, in, x, in, o1 - o0, N, in, yt + o0 * N, N, /*accumulate=*/false);
  }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) y[n * out + o] = yt[o * N + n] + (b ? b[o] : 0.0f);
}

}  // namespace

void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t in,
                    int64_t out) {
  if (in > 0 && dot_path_pays(N)) {
    linear_forward_dot(y, x, w, b, N, in, out);
    return;
  }
  // Start from the bias rows and let the GEMM add onto them (beta = 1).
  float beta = 0.0f;
  if (b) {
    for (int64_t i = 0; i < N; ++i) std::copy(b, b + out, y + i * out);
    beta = 1.0f;
  }
  sgemm(false, true, N, out, in, 1.0f, x, in, w, in, beta, y, out);
}

void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                     int64_t N, int64_t in, int64_t out, bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (db) {
    // Column sums in double, rows in order: deterministic for any thread count.
#pragma omp parallel for schedule(static) if (N * out >= 32768)
    for (int64_t j = 0; j < out; ++j) {
      double s = 0.0;
      for (int64_t i = 0; i < N; ++i) s += dy[i * out + j];
      db[j] = accumulate ? db[j] + static_cast<float>(s) : static_cast<float>(s);
    }
  }
  if (dw) sgemm(true, false, out, in, N, 1.0f, dy, out, x, in, beta, dw, in);   // dw (+)= dy^T x
  if (dx) sgemm(false, false, N, in, out, 1.0f, dy, out, w, in, beta, dx, in);  // dx (+)= dy w
}

namespace {

struct LinearBackward : Node {
  int64_t N = 0, in = 0, out = 0;
  Tensor x;  // (N, in), saved when the weight needs a gradient
  Tensor w;  // (out, in), saved when the input needs a gradient
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const bool want_x = needs_input_grad(0);
    const bool want_w = needs_input_grad(1);
    const bool want_b = needs_input_grad(2);
    // Written, not accumulated: no zeroing pass over fresh buffers.
    Tensor gx = want_x ? Tensor::empty({N, in}) : Tensor();
    Tensor gw = want_w ? Tensor::empty({out, in}) : Tensor();
    Tensor gb = want_b ? Tensor::empty({out}) : Tensor();
    linear_backward(want_x ? gx.data() : nullptr, want_w ? gw.data() : nullptr, want_b ? gb.data() : nullptr,
                    grad_output.data(), want_w ? x.data() : nullptr, want_x ? w.data() : nullptr, N, in, out,
                    /*accumulate=*/false);
    return {gx, gw, gb};
  }
  void release() override { x = w = Tensor(); }
  std::string name() const override { return "LinearBackward"; }
};

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  INQ_CHECK(x.defined() && weight.defined(), "Given linear with an undefined {}, expected defined tensors",
            x.defined() ? "weight" : "input");
  const auto shapes = [&] {
    return fmt::format("input of shape {}, weight of shape {} and bias of shape {}", shape_str(x.shape()),
                       shape_str(weight.shape()), bias.defined() ? shape_str(bias.shape()) : "(none)");
  };
  INQ_CHECK(x.dim() == 2 && weight.dim() == 2,
            "Given {}, expected a 2-D input (N, in_features) and a 2-D weight (out_features, in_features)",
            shapes());
  const int64_t N = x.size(0), in = x.size(1), out = weight.size(0);
  INQ_CHECK(in > 0 && out > 0, "Given {}, expected positive feature counts", shapes());
  INQ_CHECK(weight.size(1) == in,
            "Given {}, expected weight dim 1 to equal the input's features {}, but got {} instead", shapes(),
            in, weight.size(1));
  INQ_CHECK(!bias.defined() || bias.shape() == Shape{out}, "Given {}, expected a bias of shape [{}]",
            shapes(), out);

  Tensor y = Tensor::empty({N, out});
  linear_forward(y.data(), x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, N, in, out);
  if (needs_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<LinearBackward>();
    node->N = N, node->in = in, node->out = out;
    if (weight.requires_grad()) node->x = x.detach();
    if (x.requires_grad()) node->w = weight.detach();
    record(y, node, {&x, &weight, bias.defined() ? &bias : nullptr});
  }
  return y;
}

Linear::Linear(const LinearOptions& options) : options_(options) {
  INQ_CHECK(options_.in_features > 0 && options_.out_features > 0,
            "Given LinearOptions(in_features={}, out_features={}), expected positive feature counts",
            options_.in_features, options_.out_features);
  weight = register_parameter("weight", Tensor::empty({options_.out_features, options_.in_features}),
                              ParamRole::Weight);
  if (options_.bias)
    bias = register_parameter("bias", Tensor::empty({options_.out_features}), ParamRole::Bias);
  reset_parameters();
}

void Linear::replace_weight(std::shared_ptr<const LinearWeightKernel> kernel) {
  INQ_CHECK(kernel != nullptr, "Given Linear(in_features={}, out_features={}).replace_weight, expected a kernel",
            options_.in_features, options_.out_features);
  if (!kernel_) drop_parameter("weight");
  weight = Tensor();
  kernel_ = std::move(kernel);
}

void Linear::reset_parameters() {
  if (kernel_) return;  // no float weight to draw
  // PyTorch: kaiming_uniform_(a = sqrt(5)) is U(-1/sqrt(in), 1/sqrt(in)); bias the same bound.
  kaiming_uniform_(weight, FanMode::FanIn, leaky_relu_gain(std::sqrt(5.0)));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(options_.in_features));
    uniform_(bias, -bound, bound);
  }
}

Tensor Linear::forward(const Tensor& input) {
  INQ_CHECK(input.defined() && input.dim() == 2 && input.size(1) == options_.in_features,
            "Given an input of shape {} to Linear(in_features={}, out_features={}), expected shape [N, {}]",
            input.defined() ? shape_str(input.shape()) : "(undefined)", options_.in_features,
            options_.out_features, options_.in_features);
  if (kernel_) return kernel_->forward(input, bias);
  return linear(input, weight, bias);
}

}  // namespace inq
