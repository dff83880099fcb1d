#include "layers/batchnorm.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "framework/autograd.h"
#include "framework/error.h"
#include "layers/activation.h"

namespace inq {

namespace {

void check_channel_vector(const Tensor& t, const char* what, int64_t channels, const Shape& x_shape) {
  if (!t.defined()) return;
  INQ_CHECK(t.shape() == Shape{channels},
            "Given batch_norm2d input of shape {}, expected {} of shape [{}], but got {} instead",
            shape_str(x_shape), what, channels, shape_str(t.shape()));
}

// Reductions over one channel (its N planes of H*W values, `stride` floats apart), in double, in an
// order fixed by the code rather than by the compiler or the thread count: kLanes accumulators per
// sum, value i of every plane going to lane i mod kLanes (each plane starts again at lane 0), then
// the lanes added in order. The AVX-512 forms hold the lanes in four registers of eight and compute
// every lane's terms exactly as the scalar forms do (fma where they call std::fma; a plane's last
// partial group through masked loads that leave the other lanes untouched), so both give the same
// bits. Each channel is reduced by one thread. History: a single running double sum was bound by
// add latency (~12% of a ResNet-20 training step); then eight lanes per plane, reduced plane by
// plane, spent more on each plane's tail and horizontal sum than on its values at 7x7 and 14x14
// (BatchNorm forward at 9 GB/s against memcpy's 26 on ResNet-20's layers); written as loops over
// lambdas, GCC left the backward's masked sums scalar.
constexpr int kLanes = 32;
constexpr int64_t kPrefetchPlanes = 2;  // how many planes ahead the AVX-512 forms prefetch

struct Sums {
  double a = 0.0, b = 0.0;
};

#if defined(__AVX512F__)
// Eight floats widened to double (all lanes written: GCC 12 warns about the unmasked intrinsic's
// undefined pass-through operand).
inline __m512d widen(__m256 v) { return _mm512_maskz_cvtps_pd(static_cast<__mmask8>(0xFF), v); }

// Which of the eight lanes of register q (lanes 8q .. 8q + 7) a group of `count` <= 32 values fills.
inline __mmask8 group_mask(int64_t count, int q) {
  const int64_t fill = std::min<int64_t>(8, std::max<int64_t>(0, count - 8 * q));
  return static_cast<__mmask8>((1u << fill) - 1);
}

// Prefetches the `plane` floats at p into L1. A channel's planes are short runs (7x7 to 28x28
// values) a whole image apart, too short a stream for the hardware prefetcher to follow.
inline void prefetch_plane(const float* p, int64_t plane) {
  const char* bytes = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < plane * 4; off += 64) _mm_prefetch(bytes + off, _MM_HINT_T0);
}

// The lanes summed in order (the scalar forms' final loop).
inline double sum_lanes(const __m512d (&acc)[4]) {
  alignas(64) double lanes[kLanes];
  for (int q = 0; q < 4; ++q) _mm512_store_pd(lanes + 8 * q, acc[q]);
  double total = 0.0;
  for (int j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}
#endif

inline double sum_lanes(const double (&lanes)[kLanes]) {
  double total = 0.0;
  for (int j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

// Over the channel's values x: a = the sum of d, b = the sum of d^2, d = x - shift (in double,
// exactly). With the shift inside the channel's range (its first value), the variance
// (b - a^2 / m) / m is one pass without the cancellation of E[x^2] - E[x]^2 when |mean| >> std.
Sums channel_moments(const float* x, int64_t stride, int64_t N, int64_t plane, double shift) {
#if defined(__AVX512F__)
  __m512d a[4], b[4];
  for (int q = 0; q < 4; ++q) a[q] = b[q] = _mm512_setzero_pd();
  const __m512d k = _mm512_set1_pd(shift);
  for (int64_t n = 0; n < N; ++n) {
    const float* xs = x + n * stride;
    if (n + kPrefetchPlanes < N) prefetch_plane(xs + kPrefetchPlanes * stride, plane);
    int64_t i = 0;
    for (; i + kLanes <= plane; i += kLanes)
      for (int q = 0; q < 4; ++q) {
        const __m512d d = _mm512_sub_pd(widen(_mm256_loadu_ps(xs + i + 8 * q)), k);
        a[q] = _mm512_add_pd(a[q], d);
        b[q] = _mm512_fmadd_pd(d, d, b[q]);
      }
    for (int q = 0; q < 4 && i + 8 * q < plane; ++q) {
      const __mmask8 mk = group_mask(plane - i, q);
      const __m512d d = _mm512_maskz_sub_pd(mk, _mm512_maskz_cvtps_pd(mk, _mm256_maskz_loadu_ps(mk, xs + i + 8 * q)), k);
      a[q] = _mm512_mask_add_pd(a[q], mk, a[q], d);
      b[q] = _mm512_mask3_fmadd_pd(d, d, b[q], mk);
    }
  }
  return {sum_lanes(a), sum_lanes(b)};
#else
  double a[kLanes] = {}, b[kLanes] = {};
  for (int64_t n = 0; n < N; ++n) {
    const float* xs = x + n * stride;
    for (int64_t i = 0; i < plane; ++i) {
      const double d = static_cast<double>(xs[i]) - shift;
      a[i % kLanes] += d;
      b[i % kLanes] = std::fma(d, d, b[i % kLanes]);
    }
  }
  return {sum_lanes(a), sum_lanes(b)};
#endif
}

// The gradient reaching the normalization at i: gs[i], or with the fused ReLU gs[i] where
// ys[i] > 0 and +0 elsewhere (relu's backward, activation.cpp; a NaN output passes none). A bit
// mask rather than `?:`, which GCC compiled into a branch per element (mispredicted half the time
// on a ReLU's mask, and scalar); same values.
template <bool kRelu>
inline float masked_gradient(const float* gs, const float* ys, int64_t i) {
  if constexpr (kRelu) {
    const uint32_t keep = -static_cast<uint32_t>(ys[i] > 0.0f);
    return std::bit_cast<float>(std::bit_cast<uint32_t>(gs[i]) & keep);
  } else {
    return gs[i];
  }
}

// The backward's two sums over the channel, in one pass: a = the sum of g, b = the sum of
// g * x_hat, x_hat = (x - mu) * is (in float, as the forward normalized), g the gradient reaching
// the normalization (masked_gradient).
template <bool kRelu>
Sums channel_gradient_sums(const float* g, const float* y, const float* x, int64_t stride, int64_t N, int64_t plane,
                           float mu, float is) {
#if defined(__AVX512F__)
  __m512d a[4], b[4];
  for (int q = 0; q < 4; ++q) a[q] = b[q] = _mm512_setzero_pd();
  const __m256 mu8 = _mm256_set1_ps(mu), is8 = _mm256_set1_ps(is);
  // The group of eight at p, its lanes outside mk left as they are.
  const auto add_group = [&](int64_t p, int q, __mmask8 mk) __attribute__((always_inline)) {
    __m256 gv = _mm256_maskz_loadu_ps(mk, g + p);
    if constexpr (kRelu)
      gv = _mm256_maskz_mov_ps(_mm256_mask_cmp_ps_mask(mk, _mm256_maskz_loadu_ps(mk, y + p), _mm256_setzero_ps(),
                                                       _CMP_GT_OQ), gv);
    const __m256 x_hat = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskz_loadu_ps(mk, x + p), mu8), is8);
    const __m512d gd = widen(gv);
    a[q] = _mm512_mask_add_pd(a[q], mk, a[q], gd);
    b[q] = _mm512_mask3_fmadd_pd(gd, widen(x_hat), b[q], mk);
  };
  for (int64_t n = 0; n < N; ++n) {
    const int64_t base = n * stride;
    if (n + kPrefetchPlanes < N) {
      prefetch_plane(g + base + kPrefetchPlanes * stride, plane);
      prefetch_plane(x + base + kPrefetchPlanes * stride, plane);
      if constexpr (kRelu) prefetch_plane(y + base + kPrefetchPlanes * stride, plane);
    }
    int64_t i = 0;
    for (; i + kLanes <= plane; i += kLanes)
      for (int q = 0; q < 4; ++q) add_group(base + i + 8 * q, q, static_cast<__mmask8>(0xFF));
    for (int q = 0; q < 4 && i + 8 * q < plane; ++q) add_group(base + i + 8 * q, q, group_mask(plane - i, q));
  }
  return {sum_lanes(a), sum_lanes(b)};
#else
  double a[kLanes] = {}, b[kLanes] = {};
  for (int64_t n = 0; n < N; ++n) {
    const int64_t base = n * stride;
    for (int64_t i = 0; i < plane; ++i) {
      const double gd = static_cast<double>(masked_gradient<kRelu>(g + base, y ? y + base : nullptr, i));
      a[i % kLanes] += gd;
      b[i % kLanes] = std::fma(gd, static_cast<double>((x[base + i] - mu) * is), b[i % kLanes]);
    }
  }
  return {sum_lanes(a), sum_lanes(b)};
#endif
}

// y = (x - mu) * invstd * weight + bias over channel c of every image (then max(y, 0) with the
// fused ReLU): the second half of the forward kernel, shared with the synchronized statistics.
inline void normalize_channel(float* y, const float* x, int64_t c, float mu, float is, const float* weight,
                              const float* bias, int64_t N, int64_t C, int64_t plane, bool fuse_relu) {
  const float scale = (weight ? weight[c] : 1.0f) * is;
  const float shift = (bias ? bias[c] : 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    const float* xs = x + (n * C + c) * plane;
    float* ys = y + (n * C + c) * plane;
    if (fuse_relu) {
      // relu's comparison (activation.cpp): keeps NaN.
      for (int64_t i = 0; i < plane; ++i) {
        const float v = (xs[i] - mu) * scale + shift;
        ys[i] = v < 0.0f ? 0.0f : v;
      }
    } else {
      for (int64_t i = 0; i < plane; ++i) ys[i] = (xs[i] - mu) * scale + shift;
    }
  }
}

}  // namespace

void batch_norm2d_forward(float* y, float* mean, float* invstd, const float* x, const float* weight,
                          const float* bias, float* running_mean, float* running_var, int64_t N, int64_t C,
                          int64_t plane, bool training, double momentum, double eps, bool fuse_relu) {
  const int64_t m = N * plane;
#pragma omp parallel for schedule(static) if (N * C * plane > 32768)
  for (int64_t c = 0; c < C; ++c) {
    float mu, is;
    if (training) {
      // One pass in double about the channel's first value (channel_moments).
      const float* xc = x + c * plane;
      const double shift = m > 0 ? static_cast<double>(xc[0]) : 0.0;
      const Sums d = channel_moments(xc, C * plane, N, plane, shift);
      const double batch_mean = shift + d.a / static_cast<double>(m);
      const double ss = std::max(0.0, d.b - d.a * d.a / static_cast<double>(m));
      const double batch_var = ss / static_cast<double>(m);
      mu = static_cast<float>(batch_mean);
      is = static_cast<float>(1.0 / std::sqrt(batch_var + eps));
      if (running_mean) {
        const double unbiased = ss / static_cast<double>(m - 1);
        running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * batch_mean);
        running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
      }
    } else {
      mu = running_mean[c];
      is = static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
    }
    mean[c] = mu;
    invstd[c] = is;
    normalize_channel(y, x, c, mu, is, weight, bias, N, C, plane, fuse_relu);
  }
}

namespace {

// The gradient reaching the normalization: dy itself, or with the fused ReLU, dy where the output
// is positive and 0 elsewhere (relu's backward, activation.cpp).
template <bool kRelu>
void batch_norm2d_backward_impl(float* dx, float* dw, float* db, const float* dy, const float* x,
                                const float* y, const float* weight, const float* mean, const float* invstd,
                                int64_t N, int64_t C, int64_t plane, bool training) {
  const int64_t m = N * plane;
  const auto grad = [](const float* gs, const float* ys, int64_t i) { return masked_gradient<kRelu>(gs, ys, i); };
  // One channel per iteration: its reductions run in a fixed order whatever the thread count.
#pragma omp parallel for schedule(static) if (N * C * plane > 32768)
  for (int64_t c = 0; c < C; ++c) {
    const float mu = mean[c], is = invstd[c];
    const Sums sums = channel_gradient_sums<kRelu>(dy + c * plane, kRelu ? y + c * plane : nullptr, x + c * plane,
                                                   C * plane, N, plane, mu, is);
    const double sum_g = sums.a, sum_g_xhat = sums.b;
    if (dw) dw[c] = static_cast<float>(sum_g_xhat);
    if (db) db[c] = static_cast<float>(sum_g);
    if (!dx) continue;
    const float scale = (weight ? weight[c] : 1.0f) * is;
    if (training) {
      // dx = w*invstd * (g - mean(g) - x_hat * mean(g * x_hat)): the two mean terms are the paths
      // through the batch mean and the batch variance.
      const float mean_g = static_cast<float>(sum_g / static_cast<double>(m));
      const float mean_g_xhat = static_cast<float>(sum_g_xhat / static_cast<double>(m));
      for (int64_t n = 0; n < N; ++n) {
        const float* xs = x + (n * C + c) * plane;
        const float* gs = dy + (n * C + c) * plane;
        const float* ys = kRelu ? y + (n * C + c) * plane : nullptr;
        float* ds = dx + (n * C + c) * plane;
        for (int64_t i = 0; i < plane; ++i)
          ds[i] = scale * (grad(gs, ys, i) - mean_g - (xs[i] - mu) * is * mean_g_xhat);
      }
    } else {
      for (int64_t n = 0; n < N; ++n) {
        const float* gs = dy + (n * C + c) * plane;
        const float* ys = kRelu ? y + (n * C + c) * plane : nullptr;
        float* ds = dx + (n * C + c) * plane;
        for (int64_t i = 0; i < plane; ++i) ds[i] = scale * grad(gs, ys, i);
      }
    }
  }
}

}  // namespace

void batch_norm2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* y,
                           const float* weight, const float* mean, const float* invstd, int64_t N, int64_t C,
                           int64_t plane, bool training) {
  if (y) {
    batch_norm2d_backward_impl<true>(dx, dw, db, dy, x, y, weight, mean, invstd, N, C, plane, training);
  } else {
    batch_norm2d_backward_impl<false>(dx, dw, db, dy, x, nullptr, weight, mean, invstd, N, C, plane, training);
  }
}

namespace {

// SyncBatchNorm's statistics: the per-channel mean and biased variance of every rank's batch
// together (two all-reduces: the sums and the count, then the sums of squares about the global
// mean, which no rank knows before the first), and the total count of values per channel.
int64_t synced_batch_statistics(const Tensor& x, const BatchNormSync& sync, std::vector<double>& batch_mean,
                                std::vector<double>& sum_sq) {
  const int64_t n_batch = x.size(0), channels = x.size(1);
  const int64_t plane = x.size(2) * x.size(3);
  const float* px = x.data();
  std::vector<double> sums(static_cast<size_t>(channels + 1));
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    sums[c] = channel_moments(px + c * plane, channels * plane, n_batch, plane, 0.0).a;
  }
  sums[channels] = static_cast<double>(n_batch * plane);  // exact: counts stay far below 2^53
  sync.comm->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  const auto m_total = static_cast<int64_t>(sums[channels]);
  INQ_CHECK(m_total > 1, "Given synchronized batch_norm2d over {} value(s) per channel on all ranks, expected more than 1",
            m_total);
  batch_mean.resize(static_cast<size_t>(channels));
  sum_sq.assign(static_cast<size_t>(channels), 0.0);
  for (int64_t c = 0; c < channels; ++c) batch_mean[c] = sums[c] / static_cast<double>(m_total);
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    const double ss = channel_moments(px + c * plane, channels * plane, n_batch, plane, batch_mean[c]).b;
    sum_sq[c] = ss;
  }
  sync.comm->allreduce_sum(sum_sq.data(), channels);
  return m_total;
}

// The forward kernel with the statistics of every rank's batch (training only).
void synced_batch_norm2d_forward(Tensor& y, std::vector<float>& mean, std::vector<float>& invstd, const Tensor& x,
                                 const float* weight, const float* bias, float* running_mean, float* running_var,
                                 double momentum, double eps, bool fuse_relu, const BatchNormSync& sync,
                                 int64_t* m_total_out) {
  const int64_t n_batch = x.size(0), channels = x.size(1);
  const int64_t plane = x.size(2) * x.size(3);
  std::vector<double> synced_mean, synced_sum_sq;
  const int64_t m_total = synced_batch_statistics(x, sync, synced_mean, synced_sum_sq);
  *m_total_out = m_total;
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    const double batch_mean = synced_mean[c];
    const double batch_var = synced_sum_sq[c] / static_cast<double>(m_total);
    const float mu = static_cast<float>(batch_mean);
    const float is = static_cast<float>(1.0 / std::sqrt(batch_var + eps));
    if (running_mean) {
      const double unbiased = synced_sum_sq[c] / static_cast<double>(m_total - 1);
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * batch_mean);
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
    mean[c] = mu;
    invstd[c] = is;
    normalize_channel(y.data(), x.data(), c, mu, is, weight, bias, n_batch, channels, plane, fuse_relu);
  }
}

// SyncBatchNorm's backward given the gradient reaching the normalization `g` (dy, already masked by
// a fused ReLU): this rank's per-channel sums of g and g * x_hat give dweight and dbias (the
// gradient reducer sums those over ranks); dx needs the sums over every rank, as the statistics it
// goes through are the global batch's.
void synced_batch_norm2d_backward(float* dx, float* dw, float* db, const float* g, const Tensor& x,
                                  const float* weight, const std::vector<float>& mean,
                                  const std::vector<float>& invstd, const BatchNormSync& sync, int64_t m_total) {
  const int64_t n_batch = x.size(0), channels = x.size(1);
  const int64_t plane = x.size(2) * x.size(3);
  const float* px = x.data();
  // sums[c] = sum of g, sums[channels + c] = sum of g * x_hat over this rank's batch.
  std::vector<double> sums(static_cast<size_t>(2 * channels));
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    const float mu = mean[c], is = invstd[c];
    const Sums part = channel_gradient_sums<false>(g + c * plane, nullptr, px + c * plane, channels * plane, n_batch,
                                                   plane, mu, is);
    const double sum_g = part.a, sum_g_xhat = part.b;
    sums[c] = sum_g;
    sums[channels + c] = sum_g_xhat;
  }
  if (dw)
    for (int64_t c = 0; c < channels; ++c) dw[c] = static_cast<float>(sums[channels + c]);
  if (db)
    for (int64_t c = 0; c < channels; ++c) db[c] = static_cast<float>(sums[c]);
  if (!dx) return;
  // Every rank's dy carries its own share n_r / n of the loss: weight the sums by it, add them
  // up, and express the result in this rank's scale again.
  for (double& v : sums) v *= sync.weight;
  sync.comm->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  const double to_local = 1.0 / (sync.weight * static_cast<double>(m_total));
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    const float mu = mean[c], is = invstd[c];
    const float scale = (weight ? weight[c] : 1.0f) * is;
    const float mean_g = static_cast<float>(sums[c] * to_local);
    const float mean_g_xhat = static_cast<float>(sums[channels + c] * to_local);
    for (int64_t n = 0; n < n_batch; ++n) {
      const float* xs = px + (n * channels + c) * plane;
      const float* gs = g + (n * channels + c) * plane;
      float* ds = dx + (n * channels + c) * plane;
      for (int64_t i = 0; i < plane; ++i) ds[i] = scale * (gs[i] - mean_g - (xs[i] - mu) * is * mean_g_xhat);
    }
  }
}

// Everything backward needs: the input (an alias, no copy), the statistics the forward pass
// normalized with, and the weight; with the fused ReLU also the output (an alias: the next layer
// keeps it alive anyway). x_hat is recomputed rather than stored, so training keeps no extra
// activation-sized buffer.
struct BatchNorm2dBackward : Node {
  Tensor x;                   // (N, C, H, W) detached
  Tensor y;                   // (N, C, H, W) detached output, only with the fused ReLU
  Tensor weight;              // (C) detached, or undefined (treated as 1)
  std::vector<float> mean;    // (C)
  std::vector<float> invstd;  // (C)
  bool training = true;       // whether mean/invstd were batch statistics (then they depend on x)
  const BatchNormSync* sync = nullptr;  // synchronized statistics: the mean terms are over every rank
  int64_t m_total = 0;                  // values per channel over every rank (sync)

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const int64_t channels = x.size(1);
    Tensor dx = needs_input_grad(0) ? Tensor::empty(x.shape()) : Tensor();
    Tensor dw = needs_input_grad(1) ? Tensor::empty({channels}) : Tensor();
    Tensor db = needs_input_grad(2) ? Tensor::empty({channels}) : Tensor();
    if (sync != nullptr) {
      // The fused ReLU's mask first (the synchronized path is not the hot one: a copy is fine).
      Tensor g = grad_output;
      if (y.defined()) {
        g = Tensor::empty(grad_output.shape());
        const float* pg = grad_output.data();
        const float* py = y.data();
        float* out = g.data();
        for (int64_t i = 0; i < g.numel(); ++i) out[i] = py[i] > 0.0f ? pg[i] : 0.0f;
      }
      synced_batch_norm2d_backward(dx.defined() ? dx.data() : nullptr, dw.defined() ? dw.data() : nullptr,
                                   db.defined() ? db.data() : nullptr, g.data(), x,
                                   weight.defined() ? weight.data() : nullptr, mean, invstd, *sync, m_total);
      return {dx, dw, db};
    }
    batch_norm2d_backward(dx.defined() ? dx.data() : nullptr, dw.defined() ? dw.data() : nullptr,
                          db.defined() ? db.data() : nullptr, grad_output.data(), x.data(),
                          y.defined() ? y.data() : nullptr, weight.defined() ? weight.data() : nullptr,
                          mean.data(), invstd.data(), x.size(0), channels, x.size(2) * x.size(3), training);
    return {dx, dw, db};
  }
  void release() override {
    x = y = weight = Tensor();
    mean.clear();
    invstd.clear();
  }
  std::string name() const override { return y.defined() ? "BatchNorm2dReluBackward" : "BatchNorm2dBackward"; }
};

Tensor batch_norm2d_any(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                        Tensor running_var, bool training, double momentum, double eps, bool fuse_relu,
                        const BatchNormSync* sync) {
  INQ_CHECK(x.defined() && x.dim() == 4,
            "Given batch_norm2d input of shape {}, expected a 4-d (N, C, H, W) tensor",
            x.defined() ? shape_str(x.shape()) : "undefined");
  const int64_t n_batch = x.size(0), channels = x.size(1);
  const int64_t plane = x.size(2) * x.size(3);
  const int64_t m = n_batch * plane;
  check_channel_vector(weight, "weight", channels, x.shape());
  check_channel_vector(bias, "bias", channels, x.shape());
  check_channel_vector(running_mean, "running_mean", channels, x.shape());
  check_channel_vector(running_var, "running_var", channels, x.shape());
  INQ_CHECK(running_mean.defined() == running_var.defined(),
            "Given batch_norm2d, expected running_mean and running_var to be both defined or both undefined");
  INQ_CHECK(training || running_mean.defined(),
            "Given batch_norm2d in eval mode, expected running statistics, but got none");
  const bool synced = training && sync != nullptr && sync->comm != nullptr;
  INQ_CHECK(synced || !training || m > 1,
            "Given batch_norm2d input of shape {} in training mode, expected more than 1 value per channel",
            shape_str(x.shape()));
  INQ_CHECK(eps > 0.0, "Given batch_norm2d eps {}, expected a positive value", eps);

  std::vector<float> mean(static_cast<size_t>(channels)), invstd(static_cast<size_t>(channels));
  Tensor y = Tensor::empty(x.shape());
  const float* pw = weight.defined() ? weight.data() : nullptr;
  const float* pb = bias.defined() ? bias.data() : nullptr;
  float* prm = running_mean.defined() ? running_mean.data() : nullptr;
  float* prv = running_var.defined() ? running_var.data() : nullptr;
  int64_t m_total = m;
  if (synced) {
    synced_batch_norm2d_forward(y, mean, invstd, x, pw, pb, prm, prv, momentum, eps, fuse_relu, *sync, &m_total);
  } else {
    batch_norm2d_forward(y.data(), mean.data(), invstd.data(), x.data(), pw, pb, prm, prv, n_batch, channels, plane,
                         training, momentum, eps, fuse_relu);
  }

  if (needs_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<BatchNorm2dBackward>();
    node->x = x.detach();
    if (fuse_relu) node->y = y.detach();
    if (weight.defined()) node->weight = weight.detach();
    node->mean = std::move(mean);
    node->invstd = std::move(invstd);
    node->training = training;
    if (synced) {
      node->sync = sync;
      node->m_total = m_total;
    }
    record(y, node, {&x, &weight, &bias});
  }
  return y;
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum, double eps, const BatchNormSync* sync) {
  return batch_norm2d_any(x, weight, bias, running_mean, running_var, training, momentum, eps, false, sync);
}

Tensor batch_norm2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                         Tensor running_var, bool training, double momentum, double eps, const BatchNormSync* sync) {
  return batch_norm2d_any(x, weight, bias, running_mean, running_var, training, momentum, eps, true, sync);
}

BatchNorm2d::BatchNorm2d(const BatchNorm2dOptions& options) : options_(options) {
  INQ_CHECK(options.num_features > 0, "Given BatchNorm2d num_features {}, expected a positive count",
            options.num_features);
  INQ_CHECK(options.eps > 0.0, "Given BatchNorm2d eps {}, expected a positive value", options.eps);
  INQ_CHECK(options.momentum >= 0.0 && options.momentum <= 1.0,
            "Given BatchNorm2d momentum {}, expected a value in [0, 1]", options.momentum);
  const int64_t c = options.num_features;
  if (options.affine) {
    weight = register_parameter("weight", Tensor::full({c}, 1.0f), ParamRole::Norm);
    bias = register_parameter("bias", Tensor::zeros({c}), ParamRole::Norm);
  }
  if (options.track_running_stats) {
    running_mean = register_buffer("running_mean", Tensor::zeros({c}));
    running_var = register_buffer("running_var", Tensor::full({c}, 1.0f));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}));
  }
}

Tensor BatchNorm2d::forward(const Tensor& input) { return normalize(input, /*fuse_relu=*/false); }

Tensor BatchNorm2d::forward_relu(const Tensor& input) { return normalize(input, /*fuse_relu=*/true); }

Tensor BatchNorm2d::normalize(const Tensor& input, bool fuse_relu) {
  INQ_CHECK(input.defined() && input.dim() == 4 && input.size(1) == options_.num_features,
            "Given BatchNorm2d({}) input of shape {}, expected (N, {}, H, W)", options_.num_features,
            input.defined() ? shape_str(input.shape()) : "undefined", options_.num_features);
  if (folded_) {
    INQ_CHECK(!is_training(), "Given a BatchNorm2d({}) folded into its convolution for inference, expected eval "
              "mode, but it is training", options_.num_features);
    return fuse_relu ? relu(input) : input;
  }
  // As in PyTorch: without running statistics the batch statistics are used in eval mode too.
  const bool use_batch_stats = is_training() || !options_.track_running_stats;
  const bool updates_stats = is_training() && options_.track_running_stats;
  const double momentum =
      updates_stats && cumulative_average_ ? 1.0 / (static_cast<double>(num_batches_tracked.item()) + 1.0)
                                           : options_.momentum;
  // Synchronized only in training mode: evaluation (running statistics) stays per rank.
  Tensor y = (fuse_relu ? batch_norm2d_relu : batch_norm2d)(input, weight, bias, running_mean, running_var,
                                                            use_batch_stats, momentum, options_.eps,
                                                            is_training() ? sync_ : nullptr);
  if (updates_stats) num_batches_tracked.data()[0] += 1.0f;
  return y;
}

void BatchNorm2d::reset_running_stats() {
  INQ_CHECK(options_.track_running_stats, "Given BatchNorm2d without running statistics, expected none to reset");
  running_mean.fill_(0.0f);
  running_var.fill_(1.0f);
  num_batches_tracked.fill_(0.0f);
}

void BatchNorm2d::set_cumulative_average(bool on) {
  INQ_CHECK(!on || options_.track_running_stats,
            "Given BatchNorm2d without running statistics, expected no cumulative average of them");
  cumulative_average_ = on;
}

std::vector<BatchNorm2d*> batchnorm_layers(Module& model) {
  std::vector<BatchNorm2d*> layers;
  for_each_module(model, [&](const std::string& /*prefix*/, Module& m) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) layers.push_back(bn);
  });
  return layers;
}

}  // namespace inq
