#include "layers/conv2d_direct.h"

#include <algorithm>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "layers/conv2d_winograd.h"  // the naive references: the fallback without AVX-512

namespace inq {

namespace {

constexpr int64_t kMaxKernelWidth = 16;  // S: one precomputed load mask per kernel column

#if defined(__AVX512F__)

constexpr int kBlockK = 8;         // output channels per forward block (8 x 2 vectors of accumulators)
constexpr int kWeightBlockK = 4;   // output channels per weight-gradient task (S x 4 accumulators)

// Enough multiply-adds to be worth waking the second thread.
constexpr double kMinParallelMacs = 1 << 18;

double macs(const Conv2dGeometry& g) {
  return static_cast<double>(g.N) * g.K * g.OH * g.OW * g.C * g.R * g.S;
}

// (ceil(K / 8), C, R, S, 8): the 8 channels of a block side by side for each tap; channels past K 0.
std::vector<float> block_weights(const float* w, const Conv2dGeometry& g) {
  const int64_t taps = g.C * g.R * g.S, blocks = (g.K + kBlockK - 1) / kBlockK;
  std::vector<float> out(static_cast<size_t>(blocks * taps * kBlockK), 0.0f);
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t t = 0; t < taps; ++t) out[static_cast<size_t>(((k / kBlockK) * taps + t) * kBlockK + k % kBlockK)] = w[k * taps + t];
  return out;
}

// Lanes [lo, hi) of 16 set (empty when hi <= lo).
__mmask16 lanes(int64_t lo, int64_t hi) {
  lo = std::clamp<int64_t>(lo, 0, 16);
  hi = std::clamp<int64_t>(hi, 0, 16);
  if (hi <= lo) return 0;
  return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// Image n's block of output channels [k0, k0 + kn) at V vectors of 16 output pixels from row oh,
// column ow0: the vectors are side by side in that row or, for rows of at most 16 pixels, in rows
// oh, oh + 1, ... (kRowsApart; a row past OH: nothing), which then share every broadcast weight.
// Each output sums its taps in the same order (c, r, s) either way.
template <int V, bool kRowsApart>
void forward_chunk(float* yn, const float* xn, const float* wb, const float* b, int64_t k0, int64_t kn, int64_t oh,
                   int64_t ow0, const Conv2dGeometry& g, bool accumulate) {
  const int64_t P = g.OH * g.OW;
  int64_t rows[V], cols[V];
#pragma GCC unroll 16
  for (int v = 0; v < V; ++v) {
    rows[v] = kRowsApart ? oh + v : oh;
    cols[v] = kRowsApart ? ow0 : ow0 + 16 * v;
  }
  __mmask16 out[V];
  __mmask16 in[V][kMaxKernelWidth];  // per vector and kernel column: the lanes that read the input
#pragma GCC unroll 16
  for (int v = 0; v < V; ++v) {
    out[v] = rows[v] < g.OH ? lanes(0, g.OW - cols[v]) : 0;
    for (int64_t s = 0; s < g.S; ++s) {
      const int64_t col = cols[v] + s - g.padding.w;  // input column of lane 0
      in[v][s] = out[v] & lanes(-col, g.W - col);
    }
  }
  __m512 acc[kBlockK][V];
#pragma GCC unroll 16
  for (int kk = 0; kk < kBlockK; ++kk)
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) {
      const bool real = kk < kn;
      __m512 start = _mm512_set1_ps(real && b ? b[k0 + kk] : 0.0f);
      if (real && accumulate)
        start = _mm512_add_ps(start, _mm512_maskz_loadu_ps(out[v], yn + (k0 + kk) * P + rows[v] * g.OW + cols[v]));
      acc[kk][v] = start;
    }
  for (int64_t c = 0; c < g.C; ++c) {
    for (int64_t r = 0; r < g.R; ++r) {
      const float* xr[V];
      __mmask16 row_in[V] = {};  // all lanes, or none where the vector's input row is padding
      if constexpr (kRowsApart) {
        bool any = false;
#pragma GCC unroll 16
        for (int v = 0; v < V; ++v) {
          const int64_t ih = rows[v] + r - g.padding.h;
          const bool inside = out[v] != 0 && ih >= 0 && ih < g.H;  // a padding row adds 0
          row_in[v] = inside ? static_cast<__mmask16>(0xFFFF) : 0;
          xr[v] = xn + (c * g.H + (inside ? ih : 0)) * g.W + cols[v] - g.padding.w;
          any = any || inside;
        }
        if (!any) continue;
      } else {  // one row: a padding row is skipped whole
        const int64_t ih = rows[0] + r - g.padding.h;
        if (ih < 0 || ih >= g.H) continue;
#pragma GCC unroll 16
        for (int v = 0; v < V; ++v) xr[v] = xn + (c * g.H + ih) * g.W + cols[v] - g.padding.w;
      }
      const float* wr = wb + (c * g.R + r) * g.S * kBlockK;
      for (int64_t s = 0; s < g.S; ++s) {
        __m512 xv[V];
#pragma GCC unroll 16
        for (int v = 0; v < V; ++v)
          xv[v] = _mm512_maskz_loadu_ps(kRowsApart ? in[v][s] & row_in[v] : in[v][s], xr[v] + s);
        const float* ws = wr + s * kBlockK;
#pragma GCC unroll 16
        for (int kk = 0; kk < kBlockK; ++kk) {
          const __m512 wv = _mm512_set1_ps(ws[kk]);
#pragma GCC unroll 16
          for (int v = 0; v < V; ++v) acc[kk][v] = _mm512_fmadd_ps(wv, xv[v], acc[kk][v]);
        }
      }
    }
  }
  // Constant loop bounds (kn tested inside): with a variable bound GCC keeps acc in memory and
  // stores every accumulator after every tap (measured: 3x slower).
#pragma GCC unroll 16
  for (int kk = 0; kk < kBlockK; ++kk)
    if (kk < kn)
#pragma GCC unroll 16
      for (int v = 0; v < V; ++v)
        _mm512_mask_storeu_ps(yn + (k0 + kk) * P + rows[v] * g.OW + cols[v], out[v], acc[kk][v]);
}

// Output rows per forward task: two where a row fits one vector (LeNet-5's 10- and 14-pixel rows).
int64_t forward_task_rows(const Conv2dGeometry& g) { return g.OW <= 16 ? 2 : 1; }

// The task's output rows [oh, oh + forward_task_rows(g)) of image n's block of channels.
void forward_task(float* yn, const float* xn, const float* wb, const float* b, int64_t k0, int64_t kn, int64_t oh,
                  const Conv2dGeometry& g, bool accumulate) {
  if (forward_task_rows(g) == 2) {
    forward_chunk<2, true>(yn, xn, wb, b, k0, kn, oh, 0, g, accumulate);
    return;
  }
  int64_t ow0 = 0;
  for (; ow0 + 16 < g.OW; ow0 += 32) forward_chunk<2, false>(yn, xn, wb, b, k0, kn, oh, ow0, g, accumulate);
  if (ow0 < g.OW) forward_chunk<1, false>(yn, xn, wb, b, k0, kn, oh, ow0, g, accumulate);
}

// The sums of dw[k0 .. k0 + kn)[c][r][0 .. S) over images [n0, n1), added onto `state` (S x 4
// vectors of 16 lane partial sums, carried from one chunk of images to the next). S_ = 0: any
// width. The constant-bound loops are unrolled by pragma so that acc stays in registers (without
// it GCC indexed acc in memory and stored every accumulator after each multiply-add: 2-3x slower).
// Column vectors are the outer loop so that their load masks are made once, not for every image,
// row and kernel column (bench_conv ConvBackwardWeight, AMD EPYC VM, 2026-12-06, GFLOP/s at 1 / 2
// threads, masks per load -> per vector: lenet5 1->6c 28x28 22-32 -> 46-52 / 45 -> 80, lenet5
// 6->16c 14x14 19-25 -> 48-59 / 39 -> 88, r20 stem 1->16c 16-17 -> 39-44 / 38 -> 67).
template <int S_>
void weight_task(float* state, const float* x, const float* dy, int64_t c, int64_t r, int64_t k0, int64_t kn,
                 int64_t n0, int64_t n1, const Conv2dGeometry& g) {
  constexpr int kSlots = S_ > 0 ? S_ : static_cast<int>(kMaxKernelWidth);
  const int64_t S = S_ > 0 ? S_ : g.S;
  __m512 acc[kSlots][kWeightBlockK] = {};
#pragma GCC unroll 16
  for (int64_t s = 0; s < S; ++s)
#pragma GCC unroll 16
    for (int kk = 0; kk < kWeightBlockK; ++kk) acc[s][kk] = _mm512_loadu_ps(state + (s * kWeightBlockK + kk) * 16);
  // Per 16-column vector of a row: the output lanes, and per kernel column the lanes whose input
  // column is inside the image (the same for every image and row: computed once per vector).
  for (int64_t ow0 = 0; ow0 < g.OW; ow0 += 16) {
    const __mmask16 out = lanes(0, g.OW - ow0);
    __mmask16 in[kSlots] = {};
#pragma GCC unroll 16
    for (int64_t s = 0; s < S; ++s) {
      const int64_t col = ow0 + s - g.padding.w;
      in[s] = out & lanes(-col, g.W - col);
    }
    __mmask16 dy_lanes[kWeightBlockK];  // none for the block's channels past K
#pragma GCC unroll 4
    for (int kk = 0; kk < kWeightBlockK; ++kk) dy_lanes[kk] = kk < kn ? out : 0;
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        const int64_t ih = oh + r - g.padding.h;
        if (ih < 0 || ih >= g.H) continue;
        const float* xr = x + ((n * g.C + c) * g.H + ih) * g.W + ow0 - g.padding.w;
        const float* dr = dy + ((n * g.K + k0) * g.OH + oh) * g.OW + ow0;
        __m512 d[kWeightBlockK];
#pragma GCC unroll 4
        for (int kk = 0; kk < kWeightBlockK; ++kk) d[kk] = _mm512_maskz_loadu_ps(dy_lanes[kk], dr + kk * g.OH * g.OW);
#pragma GCC unroll 16
        for (int64_t s = 0; s < S; ++s) {
          const __m512 xv = _mm512_maskz_loadu_ps(in[s], xr + s);
#pragma GCC unroll 4
          for (int kk = 0; kk < kWeightBlockK; ++kk) acc[s][kk] = _mm512_fmadd_ps(d[kk], xv, acc[s][kk]);
        }
      }
    }
  }
#pragma GCC unroll 16
  for (int64_t s = 0; s < S; ++s)
#pragma GCC unroll 16
    for (int kk = 0; kk < kWeightBlockK; ++kk) _mm512_storeu_ps(state + (s * kWeightBlockK + kk) * 16, acc[s][kk]);
}

// dw from every task's lane partial sums: lanes added in order (a fixed summation order).
void weight_finish(float* dw, const float* state, int64_t c, int64_t r, int64_t k0, int64_t kn,
                   const Conv2dGeometry& g, bool accumulate) {
  for (int64_t kk = 0; kk < kn; ++kk)
    for (int64_t s = 0; s < g.S; ++s) {
      const float* lane = state + (s * kWeightBlockK + kk) * 16;
      float v = 0.0f;
      for (int l = 0; l < 16; ++l) v += lane[l];
      float& out = dw[(((k0 + kk) * g.C + c) * g.R + r) * g.S + s];
      out = accumulate ? out + v : v;
    }
}

#else

// Without AVX-512 the dispatcher never picks these kernels, but a forced mode (INQ_CONV_ALGO=direct)
// still calls them: they then run the naive references (layers/conv2d_winograd.h), computed into a
// scratch buffer first when the result is to be added.
template <class Compute>
void write_or_add(float* out, int64_t n, bool accumulate, Compute compute) {
  if (!accumulate) return compute(out);
  std::vector<float> scratch(static_cast<size_t>(n));
  compute(scratch.data());
  for (int64_t i = 0; i < n; ++i) out[i] += scratch[static_cast<size_t>(i)];
}

#endif

void check_supported(const Conv2dGeometry& g, const char* what) {
  INQ_CHECK(direct_conv2d_supported(g), "Given {} for {}, expected stride 1, dilation 1, groups 1, kernel width "
            "at most {} and padding at most kernel size - 1", what, g.str(), kMaxKernelWidth);
}

}  // namespace

bool direct_conv2d_supported(const Conv2dGeometry& g) {
  return g.groups == 1 && g.stride == Size2(1) && g.dilation == Size2(1) && g.S <= kMaxKernelWidth &&
         g.padding.h <= g.R - 1 && g.padding.w <= g.S - 1;
}

bool direct_conv2d_vectorized() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

void direct_conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dGeometry& g,
                           bool accumulate) {
  check_supported(g, "a direct convolution");
#if defined(__AVX512F__)
  const std::vector<float> blocked = block_weights(w, g);
  const int64_t blocks = (g.K + kBlockK - 1) / kBlockK, taps = g.C * g.R * g.S;
  const int64_t task_rows = forward_task_rows(g), row_tasks = (g.OH + task_rows - 1) / task_rows;
  const int64_t tasks = g.N * blocks * row_tasks;
  // One task per (image, block of channels, output rows): each writes its own outputs.
#pragma omp parallel for schedule(static) if (macs(g) >= kMinParallelMacs)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t oh = t % row_tasks * task_rows, kb = (t / row_tasks) % blocks, n = t / (row_tasks * blocks);
    const int64_t k0 = kb * kBlockK, kn = std::min<int64_t>(kBlockK, g.K - k0);
    forward_task(y + n * g.K * g.OH * g.OW, x + n * g.C * g.H * g.W, blocked.data() + kb * taps * kBlockK, b, k0, kn,
                 oh, g, accumulate);
  }
#else
  write_or_add(y, g.N * g.K * g.OH * g.OW, accumulate, [&](float* out) { conv2d_forward_naive(out, x, w, b, g); });
#endif
}

void direct_conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dGeometry& g,
                                 bool accumulate) {
  check_supported(g, "a direct convolution's input gradient");
  // dx = conv(dy, w') with w'[c][k][r][s] = w[k][c][R-1-r][S-1-s] and padding R-1-pad: a "full"
  // convolution, which the forward kernel computes.
  std::vector<float> flipped(static_cast<size_t>(g.K * g.C * g.R * g.S));
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t s = 0; s < g.S; ++s)
          flipped[static_cast<size_t>(((c * g.K + k) * g.R + r) * g.S + s)] =
              w[((k * g.C + c) * g.R + (g.R - 1 - r)) * g.S + (g.S - 1 - s)];
  Conv2dGeometry t = g;
  t.C = g.K;
  t.H = g.OH;
  t.W = g.OW;
  t.K = g.C;
  t.OH = g.H;
  t.OW = g.W;
  t.padding = Size2(g.R - 1 - g.padding.h, g.S - 1 - g.padding.w);
  direct_conv2d_forward(dx, dy, flipped.data(), nullptr, t, accumulate);
}

void direct_conv2d_backward_weight(float* dw, const float* x, const float* dy, const Conv2dGeometry& g,
                                   bool accumulate) {
  check_supported(g, "a direct convolution's weight gradient");
#if defined(__AVX512F__)
  const int64_t blocks = (g.K + kWeightBlockK - 1) / kWeightBlockK, tasks = g.C * g.R * blocks;
  // One task per (input channel, kernel row, block of output channels): each owns its dw entries
  // and sums images, rows and columns in one fixed order, whatever the thread count.
  auto task_of = [&](int64_t t, int64_t& c, int64_t& r, int64_t& k0, int64_t& kn) {
    const int64_t kb = t % blocks;
    r = (t / blocks) % g.R;
    c = t / (blocks * g.R);
    k0 = kb * kWeightBlockK;
    kn = std::min<int64_t>(kWeightBlockK, g.K - k0);
  };
  // Images in chunks whose dy and x stay in the core's L2 cache while every task reads them (each
  // task reads all of its channels' dy: one pass over the whole batch per task missed the cache
  // and made the loads the bottleneck); the tasks' partial sums wait in `state` between chunks.
  const int64_t per_image = (g.K * g.OH * g.OW + g.C * g.H * g.W) * static_cast<int64_t>(sizeof(float));
  const int64_t chunk = std::clamp<int64_t>((int64_t{256} << 10) / std::max<int64_t>(per_image, 1), 1, g.N);
  const int64_t slots = g.S * kWeightBlockK;
  std::vector<float> state(static_cast<size_t>(tasks * slots * 16), 0.0f);  // 16 lanes per slot
#pragma omp parallel if (macs(g) >= kMinParallelMacs)
  {
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
      const int64_t n1 = std::min(g.N, n0 + chunk);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tasks; ++t) {
        int64_t c, r, k0, kn;
        task_of(t, c, r, k0, kn);
        float* st = state.data() + t * slots * 16;
        switch (g.S) {
          case 3: weight_task<3>(st, x, dy, c, r, k0, kn, n0, n1, g); break;
          case 5: weight_task<5>(st, x, dy, c, r, k0, kn, n0, n1, g); break;
          default: weight_task<0>(st, x, dy, c, r, k0, kn, n0, n1, g); break;
        }
      }
    }
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      int64_t c, r, k0, kn;
      task_of(t, c, r, k0, kn);
      weight_finish(dw, state.data() + t * slots * 16, c, r, k0, kn, g, accumulate);
    }
  }
#else
  write_or_add(dw, g.K * g.C * g.R * g.S, accumulate,
               [&](float* out) { conv2d_backward_weight_naive(out, x, dy, g); });
#endif
}

}  // namespace inq
