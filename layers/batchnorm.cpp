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

// Reductions over a channel's values, in double, in an order fixed by the code rather than by the
// compiler or the thread count: kLanes accumulators per sum, value i of every plane going to lane
// i mod kLanes (each plane starts again at lane 0). The AVX-512 forms hold the lanes in four
// registers of eight and compute every lane's terms exactly as the scalar forms do (fma where they
// call std::fma; a plane's last partial group through masked loads that leave the other lanes
// untouched), so both give the same bits. History: a single running double sum was bound by add
// latency (~12% of a ResNet-20 training step); eight lanes per plane, reduced plane by plane, spent
// more on each plane's tail and horizontal sum than on its values at 7x7 and 14x14; written as loops
// over lambdas, GCC left the backward's masked sums scalar.
//
// The kernels split the batch, not the channels, between threads: the images are cut into
// image_parts(N) parts fixed by N alone; a part's lanes of every channel are summed by one thread,
// image by image (each image's channels are one contiguous run of memory), and the parts' lanes are
// then added lane by lane in part order, and the lanes in lane order. So every result is the same
// for any thread count, and each thread reads and writes only the images of its own parts: the
// contiguous ranges of images that the convolutions and element-wise kernels around a BatchNorm
// give the same thread. Split by channels instead, half of every image a thread read came from the
// other core's cache: ResNet-20 training step at 2 threads, AMD EPYC VM, 2026-12-06, 10 alternating
// rounds of bench_model, 1252 -> 1324 img/s (medians; 8 of 10 rounds faster); 1 thread unchanged.
constexpr int kLanes = 32;
constexpr int64_t kImageParts = 16;

int64_t image_parts(int64_t N) { return std::clamp<int64_t>(N, 1, kImageParts); }
int64_t part_begin(int64_t p, int64_t parts, int64_t N) { return p * N / parts; }

// Two sums' lanes (a, then b) for every (part, channel): parts * C * 2 * kLanes doubles, the calling
// thread's buffer, reused from call to call (passed into the parallel region by pointer). It grows
// to the largest layer's: 512 KiB for ResNet-20's 64 channels at batch 128, 8 MiB for ResNet-50's
// 2048 channels at batch 8 (its peak RSS moved 1,126 -> 1,134 MiB).
double* lane_buffer(int64_t parts, int64_t C) {
  thread_local std::vector<double> buffer;
  const size_t need = static_cast<size_t>(parts * C * 2 * kLanes);
  if (buffer.size() < need) buffer.resize(need);
  return buffer.data();
}

struct Sums {
  double a = 0.0, b = 0.0;
};

// Channel c's two sums from its parts' lanes (at lanes + (p * C + c) * 2 * kLanes): lane by lane in
// part order, then the lanes in order.
Sums combine_lanes(const double* lanes, int64_t parts, int64_t C, int64_t c) {
  double a[kLanes] = {}, b[kLanes] = {};
  for (int64_t p = 0; p < parts; ++p) {
    const double* la = lanes + (p * C + c) * 2 * kLanes;
    for (int j = 0; j < kLanes; ++j) {
      a[j] += la[j];
      b[j] += la[kLanes + j];
    }
  }
  Sums s;
  for (int j = 0; j < kLanes; ++j) {
    s.a += a[j];
    s.b += b[j];
  }
  return s;
}

#if defined(__AVX512F__)
// Eight floats widened to double (all lanes written: GCC 12 warns about the unmasked intrinsic's
// undefined pass-through operand).
inline __m512d widen(__m256 v) { return _mm512_maskz_cvtps_pd(static_cast<__mmask8>(0xFF), v); }

// Which of the eight lanes of register q (lanes 8q .. 8q + 7) a group of `count` <= 32 values fills.
inline __mmask8 group_mask(int64_t count, int q) {
  const int64_t fill = std::min<int64_t>(8, std::max<int64_t>(0, count - 8 * q));
  return static_cast<__mmask8>((1u << fill) - 1);
}
#endif

// Adds one plane's values to the lanes (la: kLanes of a, then kLanes of b): a += d, b += d^2,
// d = x - shift (in double, exactly). With the shift inside the channel's range (its first value),
// the variance (b - a^2 / m) / m is one pass without the cancellation of E[x^2] - E[x]^2 when
// |mean| >> std.
void plane_moments(double* la, const float* xs, int64_t plane, double shift) {
#if defined(__AVX512F__)
  __m512d a[4], b[4];
  for (int q = 0; q < 4; ++q) {
    a[q] = _mm512_loadu_pd(la + 8 * q);
    b[q] = _mm512_loadu_pd(la + kLanes + 8 * q);
  }
  const __m512d k = _mm512_set1_pd(shift);
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
  for (int q = 0; q < 4; ++q) {
    _mm512_storeu_pd(la + 8 * q, a[q]);
    _mm512_storeu_pd(la + kLanes + 8 * q, b[q]);
  }
#else
  for (int64_t i = 0; i < plane; ++i) {
    const double d = static_cast<double>(xs[i]) - shift;
    la[i % kLanes] += d;
    la[kLanes + i % kLanes] = std::fma(d, d, la[kLanes + i % kLanes]);
  }
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

// The backward's two sums over one plane, added to the lanes: a += g, b += g * x_hat, x_hat =
// (x - mu) * is (in float, as the forward normalized), g the gradient reaching the normalization
// (masked_gradient).
template <bool kRelu>
void plane_gradient_sums(double* la, const float* g, const float* y, const float* x, int64_t plane, float mu,
                         float is) {
#if defined(__AVX512F__)
  __m512d a[4], b[4];
  for (int q = 0; q < 4; ++q) {
    a[q] = _mm512_loadu_pd(la + 8 * q);
    b[q] = _mm512_loadu_pd(la + kLanes + 8 * q);
  }
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
  int64_t i = 0;
  for (; i + kLanes <= plane; i += kLanes)
    for (int q = 0; q < 4; ++q) add_group(i + 8 * q, q, static_cast<__mmask8>(0xFF));
  for (int q = 0; q < 4 && i + 8 * q < plane; ++q) add_group(i + 8 * q, q, group_mask(plane - i, q));
  for (int q = 0; q < 4; ++q) {
    _mm512_storeu_pd(la + 8 * q, a[q]);
    _mm512_storeu_pd(la + kLanes + 8 * q, b[q]);
  }
#else
  for (int64_t i = 0; i < plane; ++i) {
    const double gd = static_cast<double>(masked_gradient<kRelu>(g, y, i));
    la[i % kLanes] += gd;
    la[kLanes + i % kLanes] = std::fma(gd, static_cast<double>((x[i] - mu) * is), la[kLanes + i % kLanes]);
  }
#endif
}

// A whole channel's sums (its N planes, `stride` floats apart), for the synchronized statistics.
Sums channel_moments(const float* x, int64_t stride, int64_t N, int64_t plane, double shift) {
  double la[2 * kLanes] = {};
  for (int64_t n = 0; n < N; ++n) plane_moments(la, x + n * stride, plane, shift);
  return combine_lanes(la, 1, 1, 0);
}

Sums channel_gradient_sums(const float* g, const float* x, int64_t stride, int64_t N, int64_t plane, float mu,
                           float is) {
  double la[2 * kLanes] = {};
  for (int64_t n = 0; n < N; ++n) plane_gradient_sums<false>(la, g + n * stride, nullptr, x + n * stride, plane, mu, is);
  return combine_lanes(la, 1, 1, 0);
}

// y = (x - mu) * invstd * weight + bias over one plane of channel c (then max(y, 0) with the fused
// ReLU): the second half of the forward kernel, shared with the synchronized statistics.
inline void normalize_plane(float* ys, const float* xs, int64_t c, float mu, float is, const float* weight,
                            const float* bias, int64_t plane, bool fuse_relu) {
  const float scale = (weight ? weight[c] : 1.0f) * is;
  const float shift = (bias ? bias[c] : 0.0f);
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

}  // namespace

void batch_norm2d_forward(float* y, float* mean, float* invstd, const float* x, const float* weight,
                          const float* bias, float* running_mean, float* running_var, int64_t N, int64_t C,
                          int64_t plane, bool training, double momentum, double eps, bool fuse_relu) {
  const int64_t m = N * plane, parts = image_parts(N);
  double* lanes = training ? lane_buffer(parts, C) : nullptr;
#pragma omp parallel if (N * C * plane > 32768)
  {
    if (training) {
      // One pass in double about each channel's first value (plane_moments), a part at a time.
#pragma omp for schedule(static)
      for (int64_t p = 0; p < parts; ++p) {
        double* lp = lanes + p * C * 2 * kLanes;
        std::fill(lp, lp + C * 2 * kLanes, 0.0);
        for (int64_t n = part_begin(p, parts, N); n < part_begin(p + 1, parts, N); ++n)
          for (int64_t c = 0; c < C; ++c)
            plane_moments(lp + c * 2 * kLanes, x + (n * C + c) * plane, plane, static_cast<double>(x[c * plane]));
      }
    }
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      float mu, is;
      if (training) {
        const double shift = static_cast<double>(x[c * plane]);
        const Sums d = combine_lanes(lanes, parts, C, c);
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
    }
    // (after the loop's barrier: every channel's statistics are known)
#pragma omp for schedule(static)
    for (int64_t p = 0; p < parts; ++p)
      for (int64_t n = part_begin(p, parts, N); n < part_begin(p + 1, parts, N); ++n)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t at = (n * C + c) * plane;
          normalize_plane(y + at, x + at, c, mean[c], invstd[c], weight, bias, plane, fuse_relu);
        }
  }
}

namespace {

// The gradient reaching the normalization: dy itself, or with the fused ReLU, dy where the output
// is positive and 0 elsewhere (relu's backward, activation.cpp).
template <bool kRelu>
void batch_norm2d_backward_impl(float* dx, float* dw, float* db, const float* dy, const float* x,
                                const float* y, const float* weight, const float* mean, const float* invstd,
                                int64_t N, int64_t C, int64_t plane, bool training) {
  const int64_t m = N * plane, parts = image_parts(N);
  const auto grad = [](const float* gs, const float* ys, int64_t i) { return masked_gradient<kRelu>(gs, ys, i); };
  double* lanes = lane_buffer(parts, C);
  std::vector<float> mean_g(static_cast<size_t>(C)), mean_g_xhat(static_cast<size_t>(C));
#pragma omp parallel if (N * C * plane > 32768)
  {
    // The two sums of every channel, a part at a time, as the forward's moments.
#pragma omp for schedule(static)
    for (int64_t p = 0; p < parts; ++p) {
      double* lp = lanes + p * C * 2 * kLanes;
      std::fill(lp, lp + C * 2 * kLanes, 0.0);
      for (int64_t n = part_begin(p, parts, N); n < part_begin(p + 1, parts, N); ++n)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t at = (n * C + c) * plane;
          plane_gradient_sums<kRelu>(lp + c * 2 * kLanes, dy + at, kRelu ? y + at : nullptr, x + at, plane, mean[c],
                                     invstd[c]);
        }
    }
#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      const Sums sums = combine_lanes(lanes, parts, C, c);
      if (dw) dw[c] = static_cast<float>(sums.b);
      if (db) db[c] = static_cast<float>(sums.a);
      mean_g[c] = static_cast<float>(sums.a / static_cast<double>(m));
      mean_g_xhat[c] = static_cast<float>(sums.b / static_cast<double>(m));
    }
    if (dx) {
      // (after the loop's barrier: every channel's sums are known)
#pragma omp for schedule(static)
      for (int64_t p = 0; p < parts; ++p)
        for (int64_t n = part_begin(p, parts, N); n < part_begin(p + 1, parts, N); ++n)
          for (int64_t c = 0; c < C; ++c) {
            const int64_t at = (n * C + c) * plane;
            const float* xs = x + at;
            const float* gs = dy + at;
            const float* ys = kRelu ? y + at : nullptr;
            float* ds = dx + at;
            const float mu = mean[c], is = invstd[c];
            const float scale = (weight ? weight[c] : 1.0f) * is;
            if (training) {
              // dx = w*invstd * (g - mean(g) - x_hat * mean(g * x_hat)): the two mean terms are the
              // paths through the batch mean and the batch variance.
              const float mg = mean_g[c], mgx = mean_g_xhat[c];
              for (int64_t i = 0; i < plane; ++i) ds[i] = scale * (grad(gs, ys, i) - mg - (xs[i] - mu) * is * mgx);
            } else {
              for (int64_t i = 0; i < plane; ++i) ds[i] = scale * grad(gs, ys, i);
            }
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
    for (int64_t n = 0; n < n_batch; ++n) {
      const int64_t at = (n * channels + c) * plane;
      normalize_plane(y.data() + at, x.data() + at, c, mu, is, weight, bias, plane, fuse_relu);
    }
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
    const Sums part = channel_gradient_sums(g + c * plane, px + c * plane, channels * plane, n_batch, plane, mu, is);
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
