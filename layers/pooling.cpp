#include "layers/pooling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq {

namespace {

// Floor division (C++ '/' truncates toward zero; the size formula needs rounding down).
int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0); }

void check_pool_options(const char* op, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  INQ_CHECK(kernel > 0, "Given {} kernel_size {}, expected a positive size", op, kernel);
  INQ_CHECK(stride >= 0, "Given {} stride {}, expected a positive stride (or 0 for kernel_size)", op, stride);
  INQ_CHECK(dilation > 0, "Given {} dilation {}, expected a positive dilation", op, dilation);
  INQ_CHECK(padding >= 0 && padding <= kernel / 2,
            "Given {} padding {} with kernel_size {}, expected padding in [0, {}] (at most half the kernel)",
            op, padding, kernel, kernel / 2);
}

void check_nchw(const char* op, const Shape& shape) {
  INQ_CHECK(shape.size() == 4 && shape[2] > 0 && shape[3] > 0,
            "Given {} input of shape {}, expected a 4-d (N, C, H, W) tensor with H, W > 0", op,
            shape_str(shape));
}

Pool2dGeometry pool_geometry(const char* op, const Shape& x_shape, int64_t kernel, int64_t stride,
                             int64_t padding, int64_t dilation, bool ceil_mode) {
  check_pool_options(op, kernel, stride, padding, dilation);
  check_nchw(op, x_shape);
  Pool2dGeometry g;
  g.n = x_shape[0];
  g.c = x_shape[1];
  g.h = x_shape[2];
  g.w = x_shape[3];
  g.kernel = kernel;
  g.stride = stride == 0 ? kernel : stride;
  g.padding = padding;
  g.dilation = dilation;
  g.oh = pool_output_size(g.h, kernel, g.stride, padding, dilation, ceil_mode);
  g.ow = pool_output_size(g.w, kernel, g.stride, padding, dilation, ceil_mode);
  INQ_CHECK(g.oh >= 1 && g.ow >= 1,
            "Given {} input of shape {} with kernel_size {}, stride {}, padding {}, dilation {}, expected an "
            "output of at least 1x1, but got {}x{} instead",
            op, shape_str(x_shape), kernel, g.stride, padding, dilation, g.oh, g.ow);
  // Max pooling saves argmax positions as 32-bit offsets within a plane.
  INQ_CHECK(g.h * g.w <= std::numeric_limits<int32_t>::max(),
            "Given {} input of shape {}, expected H*W below 2^31", op, shape_str(x_shape));
  return g;
}

// For each output position along one dim, the kernel taps [lo, hi) that land inside [0, in).
struct KernelSpan {
  std::vector<int64_t> lo, hi;
};

KernelSpan kernel_span(int64_t out, int64_t in, const Pool2dGeometry& g) {
  KernelSpan s{std::vector<int64_t>(static_cast<size_t>(out)),
               std::vector<int64_t>(static_cast<size_t>(out))};
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * g.stride - g.padding;
    int64_t lo = 0, hi = g.kernel;
    while (lo < hi && start + lo * g.dilation < 0) ++lo;
    while (hi > lo && start + (hi - 1) * g.dilation >= in) --hi;
    s.lo[o] = lo;
    s.hi[o] = hi;
  }
  return s;
}

#if defined(__AVX512F__)
// Lanes [0, n) of 16 set, n clamped to [0, 16].
__mmask16 first_lanes(int64_t n) {
  return static_cast<__mmask16>((1u << std::clamp<int64_t>(n, 0, 16)) - 1);
}

// The lanes where v replaces the running maximum: the scalar rule (strict '>' keeps the first
// maximum on ties; a NaN takes, so that it propagates).
__mmask16 takes(__m512 v, __m512 best) {
  return _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}

// One tap of max pooling for output columns [ow, ow_hi), 16 at a time, stride 1 or 2: the tap's
// inputs xr[ow * stride + off] are one load (stride 1) or two loads de-interleaved by a permute
// (stride 2), every load masked to the inputs the columns use. Same rule as the scalar loop (strict
// '>' or a NaN takes), so ties and NaNs resolve identically. Returns where the scalar loop goes on.
int64_t max_tap_avx512(float* best, int32_t* best_at, const float* xr, int64_t row, int64_t off, int64_t stride,
                       int64_t ow, int64_t ow_hi) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_slli_epi32(lane, 1);  // 0, 2, ..., 30: the even elements of two vectors
  for (; ow < ow_hi; ow += 16) {
    const __mmask16 columns = first_lanes(ow_hi - ow);
    const int64_t base = ow * stride + off;  // >= 0: ow_lo keeps every tap inside the row
    __m512 v;
    if (stride == 1) {
      v = _mm512_maskz_loadu_ps(columns, xr + base);
    } else {
      const int64_t used = 2 * std::min<int64_t>(16, ow_hi - ow) - 1;  // inputs base .. base + 2 (n - 1)
      v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(first_lanes(used), xr + base), even,
                                 _mm512_maskz_loadu_ps(first_lanes(used - 16), xr + base + 16));
    }
    const __m512 b = _mm512_maskz_loadu_ps(columns, best + ow);
    const __mmask16 take = takes(v, b) & columns;
    _mm512_mask_storeu_ps(best + ow, take, v);
    const __m512i at = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(row + base)),
                                        stride == 1 ? lane : even);
    _mm512_mask_storeu_epi32(best_at + ow, take, at);
  }
  return ow_hi;
}
// 2x2 windows at stride 2 that all lie inside the input (LeNet, VGG): 16 outputs at a time, the
// four taps of each window de-interleaved from two input rows and compared in row-major order with
// the scalar rule, so ties and NaNs resolve as everywhere else. No running-max arrays.
void max_pool_2x2_avx512(float* y, int32_t* argmax, const float* x, const Pool2dGeometry& g) {
  const int64_t planes = g.n * g.c, in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i even = _mm512_slli_epi32(lane, 1), odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
#pragma omp parallel for schedule(static) if (planes * out_plane > 16384)
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      const int64_t top = 2 * oh * g.w;
      const float* r0 = x + p * in_plane + top;
      const float* r1 = r0 + g.w;
      for (int64_t ow = 0; ow < g.ow; ow += 16) {
        const int64_t n = std::min<int64_t>(16, g.ow - ow);
        const __mmask16 columns = first_lanes(n), first = first_lanes(2 * n), second = first_lanes(2 * n - 16);
        const __m512 a0 = _mm512_maskz_loadu_ps(first, r0 + 2 * ow), a1 = _mm512_maskz_loadu_ps(second, r0 + 2 * ow + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(first, r1 + 2 * ow), b1 = _mm512_maskz_loadu_ps(second, r1 + 2 * ow + 16);
        const __m512 taps[4] = {_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1),
                                _mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1)};
        const __m512i left = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(top + 2 * ow)), even);
        const __m512i at_of[4] = {left, _mm512_add_epi32(left, _mm512_set1_epi32(1)),
                                  _mm512_add_epi32(left, _mm512_set1_epi32(static_cast<int32_t>(g.w))),
                                  _mm512_add_epi32(left, _mm512_set1_epi32(static_cast<int32_t>(g.w + 1)))};
        __m512 best = taps[0];
        __m512i at = at_of[0];
        for (int t = 1; t < 4; ++t) {
          const __mmask16 take = takes(taps[t], best);
          best = _mm512_mask_mov_ps(best, take, taps[t]);
          at = _mm512_mask_mov_epi32(at, take, at_of[t]);
        }
        _mm512_mask_storeu_ps(y + p * out_plane + oh * g.ow + ow, columns, best);
        if (argmax) _mm512_mask_storeu_epi32(argmax + p * out_plane + oh * g.ow + ow, columns, at);
      }
    }
  }
}
#endif

struct MaxPool2dBackward : Node {
  Pool2dGeometry g;
  std::vector<int32_t> argmax;  // (N, C, OH, OW): offset within the input plane, -1 for an empty window

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    Tensor dx = Tensor::empty({g.n, g.c, g.h, g.w});
    max_pool2d_backward(dx.data(), grad_output.data(), argmax.data(), g);
    return {dx};
  }
  void release() override { argmax = {}; }
  std::string name() const override { return "MaxPool2dBackward"; }
};

// The clipped window of one output position along one dim, and PyTorch's count for the divisor.
struct AvgWindow {
  int64_t start, end;  // valid input range [start, end)
  int64_t padded;      // window length clipped to the padded input
};

AvgWindow avg_window(int64_t o, const Pool2dGeometry& g, int64_t in) {
  int64_t start = o * g.stride - g.padding;
  int64_t end = std::min(start + g.kernel, in + g.padding);
  const int64_t padded = end - start;
  return {std::max<int64_t>(start, 0), std::min(end, in), padded};
}

struct AvgPool2dBackward : Node {
  Pool2dGeometry g;
  bool count_include_pad = true;

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    Tensor dx = Tensor::empty({g.n, g.c, g.h, g.w});
    avg_pool2d_backward(dx.data(), grad_output.data(), g, count_include_pad);
    return {dx};
  }
  std::string name() const override { return "AvgPool2dBackward"; }
};

int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

struct AdaptiveAvgPool2dBackward : Node {
  AdaptivePool2dShape s;

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    Tensor dx = Tensor::empty({s.n, s.c, s.h, s.w});
    adaptive_avg_pool2d_backward(dx.data(), grad_output.data(), s);
    return {dx};
  }
  std::string name() const override { return "AdaptiveAvgPool2dBackward"; }
};

}  // namespace

void max_pool2d_backward(float* dx, const float* dy, const int32_t* argmax, const Pool2dGeometry& g) {
  const int64_t planes = g.n * g.c, in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  // A plane per iteration: overlapping windows add into the same input plane from one thread only.
#pragma omp parallel for schedule(static) if (planes * out_plane > 16384)
  for (int64_t p = 0; p < planes; ++p) {
    const int32_t* idx = argmax + p * out_plane;
    const float* gs = dy + p * out_plane;
    float* ds = dx + p * in_plane;
    std::fill(ds, ds + in_plane, 0.0f);
    for (int64_t o = 0; o < out_plane; ++o)
      if (idx[o] >= 0) ds[idx[o]] += gs[o];
  }
}

void avg_pool2d_backward(float* dx, const float* dy, const Pool2dGeometry& g, bool count_include_pad) {
  const int64_t planes = g.n * g.c;
#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow > 16384)
  for (int64_t p = 0; p < planes; ++p) {
    const float* gs = dy + p * g.oh * g.ow;
    float* ds = dx + p * g.h * g.w;
    std::fill(ds, ds + g.h * g.w, 0.0f);
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      const AvgWindow wh = avg_window(oh, g, g.h);
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        const AvgWindow ww = avg_window(ow, g, g.w);
        const int64_t divisor =
            count_include_pad ? wh.padded * ww.padded : (wh.end - wh.start) * (ww.end - ww.start);
        const float share = gs[oh * g.ow + ow] / static_cast<float>(divisor);
        for (int64_t ih = wh.start; ih < wh.end; ++ih)
          for (int64_t iw = ww.start; iw < ww.end; ++iw) ds[ih * g.w + iw] += share;
      }
    }
  }
}

void adaptive_avg_pool2d_backward(float* dx, const float* dy, const AdaptivePool2dShape& s) {
  const int64_t planes = s.n * s.c;
#pragma omp parallel for schedule(static) if (planes * s.h * s.w > 16384)
  for (int64_t p = 0; p < planes; ++p) {
    const float* gs = dy + p * s.oh * s.ow;
    float* ds = dx + p * s.h * s.w;
    std::fill(ds, ds + s.h * s.w, 0.0f);
    for (int64_t i = 0; i < s.oh; ++i) {
      const int64_t h0 = adaptive_start(i, s.h, s.oh), h1 = adaptive_end(i, s.h, s.oh);
      for (int64_t j = 0; j < s.ow; ++j) {
        const int64_t w0 = adaptive_start(j, s.w, s.ow), w1 = adaptive_end(j, s.w, s.ow);
        const float share = gs[i * s.ow + j] / static_cast<float>((h1 - h0) * (w1 - w0));
        for (int64_t y = h0; y < h1; ++y)
          for (int64_t x = w0; x < w1; ++x) ds[y * s.w + x] += share;
      }
    }
  }
}

int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                         bool ceil_mode) {
  int64_t out =
      floor_div(in + 2 * padding - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0), stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + padding) --out;
  return out;
}

void max_pool2d_forward_naive(float* y, int32_t* argmax, const float* x, const Pool2dGeometry& g) {
  const int64_t planes = g.n * g.c, in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t best_at = -1;
        for (int64_t kh = 0; kh < g.kernel; ++kh) {
          const int64_t ih = oh * g.stride - g.padding + kh * g.dilation;
          for (int64_t kw = 0; kw < g.kernel; ++kw) {
            const int64_t iw = ow * g.stride - g.padding + kw * g.dilation;
            if (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) continue;  // padding is -inf: never the max
            const float v = x[p * in_plane + ih * g.w + iw];
            if (best_at < 0 || v > best || std::isnan(v)) {
              best = v;
              best_at = ih * g.w + iw;
            }
          }
        }
        y[p * out_plane + oh * g.ow + ow] = best;
        if (argmax) argmax[p * out_plane + oh * g.ow + ow] = static_cast<int32_t>(best_at);
      }
    }
  }
}

void max_pool2d_forward(float* y, int32_t* argmax, const float* x, const Pool2dGeometry& g) {
#if defined(__AVX512F__)
  if (g.kernel == 2 && g.stride == 2 && g.padding == 0 && g.dilation == 1 && 2 * g.oh <= g.h && 2 * g.ow <= g.w)
    return max_pool_2x2_avx512(y, argmax, x, g);
#endif
  const int64_t planes = g.n * g.c, in_plane = g.h * g.w, out_plane = g.oh * g.ow;
  const KernelSpan rows = kernel_span(g.oh, g.h, g), cols = kernel_span(g.ow, g.w, g);
  // For each kernel column kw, the output columns [lo, hi) whose tap kw lands inside the input:
  // the loop over output columns then needs no bounds test.
  std::vector<int64_t> ow_lo(static_cast<size_t>(g.kernel)), ow_hi(static_cast<size_t>(g.kernel));
  for (int64_t kw = 0; kw < g.kernel; ++kw) {
    const int64_t off = kw * g.dilation - g.padding;
    int64_t lo = 0, hi = g.ow;
    while (lo < hi && lo * g.stride + off < 0) ++lo;
    while (hi > lo && (hi - 1) * g.stride + off >= g.w) --hi;
    ow_lo[kw] = lo;
    ow_hi[kw] = hi;
  }

#pragma omp parallel if (planes * out_plane > 16384)
  {
    // One output row at a time, the taps outermost: every output column keeps its own running max,
    // so the compare-select chains are independent (the per-window loop is one long serial chain).
    // Each column still sees its taps in row-major order, so ties resolve to the first maximum.
    std::vector<float> best(static_cast<size_t>(g.ow));
    std::vector<int32_t> best_at(static_cast<size_t>(g.ow));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
      const float* xs = x + p * in_plane;
      for (int64_t oh = 0; oh < g.oh; ++oh) {
        const int64_t h0 = oh * g.stride - g.padding;
        const bool rows_empty = rows.lo[oh] >= rows.hi[oh];
        for (int64_t ow = 0; ow < g.ow; ++ow) {
          best[ow] = -std::numeric_limits<float>::infinity();
          // The first in-bounds tap, so that an all -inf window still names a real input element.
          best_at[ow] = rows_empty || cols.lo[ow] >= cols.hi[ow]
                            ? -1
                            : static_cast<int32_t>((h0 + rows.lo[oh] * g.dilation) * g.w + ow * g.stride -
                                                   g.padding + cols.lo[ow] * g.dilation);
        }
        float* bp = best.data();
        int32_t* ap = best_at.data();
        for (int64_t kh = rows.lo[oh]; kh < rows.hi[oh]; ++kh) {
          const int64_t row = (h0 + kh * g.dilation) * g.w;
          const float* xr = xs + row;
          for (int64_t kw = 0; kw < g.kernel; ++kw) {
            const int64_t off = kw * g.dilation - g.padding;
            int64_t ow = ow_lo[kw];
#if defined(__AVX512F__)
            if (g.stride <= 2) ow = max_tap_avx512(bp, ap, xr, row, off, g.stride, ow, ow_hi[kw]);
#endif
            for (; ow < ow_hi[kw]; ++ow) {
              const int64_t iw = ow * g.stride + off;
              const float v = xr[iw];
              // Strict '>' keeps the first maximum on ties; a NaN wins so that it propagates.
              const bool take = v > bp[ow] || std::isnan(v);
              bp[ow] = take ? v : bp[ow];
              ap[ow] = take ? static_cast<int32_t>(row + iw) : ap[ow];
            }
          }
        }
        std::copy(best.begin(), best.end(), y + p * out_plane + oh * g.ow);
        if (argmax) std::copy(best_at.begin(), best_at.end(), argmax + p * out_plane + oh * g.ow);
      }
    }
  }
}

Pool2dGeometry max_pool2d_geometry(const Shape& x_shape, const MaxPool2dOptions& o) {
  return pool_geometry("max_pool2d", x_shape, o.kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode);
}

Pool2dGeometry avg_pool2d_geometry(const Shape& x_shape, const AvgPool2dOptions& o) {
  return pool_geometry("avg_pool2d", x_shape, o.kernel_size, o.stride, o.padding, 1, o.ceil_mode);
}

Tensor max_pool2d(const Tensor& x, const MaxPool2dOptions& options) {
  INQ_CHECK(x.defined(), "Given max_pool2d of an undefined tensor, expected a defined one");
  const Pool2dGeometry g = max_pool2d_geometry(x.shape(), options);
  Tensor y = Tensor::empty({g.n, g.c, g.oh, g.ow});
  const bool record_graph = needs_grad({&x});
  std::vector<int32_t> argmax(record_graph ? static_cast<size_t>(y.numel()) : 0);
  const float* px = x.data();
  float* py = y.data();
  int32_t* pidx = record_graph ? argmax.data() : nullptr;
  max_pool2d_forward(py, pidx, px, g);

  if (record_graph) {
    auto node = std::make_shared<MaxPool2dBackward>();
    node->g = g;
    node->argmax = std::move(argmax);
    record(y, node, {&x});
  }
  return y;
}

Tensor avg_pool2d(const Tensor& x, const AvgPool2dOptions& options) {
  INQ_CHECK(x.defined(), "Given avg_pool2d of an undefined tensor, expected a defined one");
  const Pool2dGeometry g = avg_pool2d_geometry(x.shape(), options);
  Tensor y = Tensor::empty({g.n, g.c, g.oh, g.ow});
  const float* px = x.data();
  float* py = y.data();
  const int64_t planes = g.n * g.c;
  const bool include_pad = options.count_include_pad;

#pragma omp parallel for schedule(static) if (planes * g.oh * g.ow > 16384)
  for (int64_t p = 0; p < planes; ++p) {
    const float* xs = px + p * g.h * g.w;
    float* ys = py + p * g.oh * g.ow;
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      const AvgWindow wh = avg_window(oh, g, g.h);
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        const AvgWindow ww = avg_window(ow, g, g.w);
        float s = 0.0f;
        for (int64_t ih = wh.start; ih < wh.end; ++ih)
          for (int64_t iw = ww.start; iw < ww.end; ++iw) s += xs[ih * g.w + iw];
        const int64_t divisor =
            include_pad ? wh.padded * ww.padded : (wh.end - wh.start) * (ww.end - ww.start);
        ys[oh * g.ow + ow] = s / static_cast<float>(divisor);
      }
    }
  }

  if (needs_grad({&x})) {
    auto node = std::make_shared<AvgPool2dBackward>();
    node->g = g;
    node->count_include_pad = include_pad;
    record(y, node, {&x});
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t output_h, int64_t output_w) {
  INQ_CHECK(x.defined(), "Given adaptive_avg_pool2d of an undefined tensor, expected a defined one");
  check_nchw("adaptive_avg_pool2d", x.shape());
  INQ_CHECK(output_h > 0 && output_w > 0,
            "Given adaptive_avg_pool2d output size {}x{}, expected positive sizes", output_h, output_w);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  Tensor y = Tensor::empty({n, c, output_h, output_w});
  const float* px = x.data();
  float* py = y.data();
  const int64_t planes = n * c;

#pragma omp parallel for schedule(static) if (planes * h * w > 16384)
  for (int64_t p = 0; p < planes; ++p) {
    const float* xs = px + p * h * w;
    float* ys = py + p * output_h * output_w;
    for (int64_t i = 0; i < output_h; ++i) {
      const int64_t h0 = adaptive_start(i, h, output_h), h1 = adaptive_end(i, h, output_h);
      for (int64_t j = 0; j < output_w; ++j) {
        const int64_t w0 = adaptive_start(j, w, output_w), w1 = adaptive_end(j, w, output_w);
        float s = 0.0f;
        for (int64_t yy = h0; yy < h1; ++yy)
          for (int64_t xx = w0; xx < w1; ++xx) s += xs[yy * w + xx];
        ys[i * output_w + j] = s / static_cast<float>((h1 - h0) * (w1 - w0));
      }
    }
  }

  if (needs_grad({&x})) {
    auto node = std::make_shared<AdaptiveAvgPool2dBackward>();
    node->s = {.n = n, .c = c, .h = h, .w = w, .oh = output_h, .ow = output_w};
    record(y, node, {&x});
  }
  return y;
}

MaxPool2d::MaxPool2d(const MaxPool2dOptions& options) : options_(options) {
  check_pool_options("MaxPool2d", options.kernel_size, options.stride, options.padding, options.dilation);
}

AvgPool2d::AvgPool2d(const AvgPool2dOptions& options) : options_(options) {
  check_pool_options("AvgPool2d", options.kernel_size, options.stride, options.padding, 1);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(const AdaptiveAvgPool2dOptions& options) : options_(options) {
  INQ_CHECK(options.output_h > 0 && options.output_w > 0,
            "Given AdaptiveAvgPool2d output size {}x{}, expected positive sizes", options.output_h,
            options.output_w);
}

}  // namespace inq
