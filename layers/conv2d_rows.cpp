#include "layers/conv2d_rows.h"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/workspace.h"
#include "layers/conv2d_panels.h"

namespace inq {

PhasePlanes PhasePlanes::of(const Conv2dGeometry& g) {
  PhasePlanes p;
  p.rows = (g.OH - 1) * g.stride.h + (g.R - 1) * g.dilation.h + 1;
  p.width = g.OW + (g.S - 1) * g.dilation.w / g.stride.w;
  p.count = g.C * g.stride.w;
  return p;
}

void build_phase_rows(float* planes, const float* image, const Conv2dGeometry& g, const PhasePlanes& layout,
                      int64_t i0, int64_t i1) {
  const int64_t sw = g.stride.w;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t c = i / (sw * layout.rows), q = i / layout.rows % sw, ih = i % layout.rows - g.padding.h;
    float* dst = planes + i * layout.width;
    if (ih < 0 || ih >= g.H) {
      std::fill(dst, dst + layout.width, 0.0f);
      continue;
    }
    const float* src = image + (c * g.H + ih) * g.W;
    for (int64_t j = 0; j < layout.width; ++j) {
      const int64_t iw = j * sw + q - g.padding.w;
      dst[j] = iw >= 0 && iw < g.W ? src[iw] : 0.0f;
    }
  }
}

void phase_row_table(const float** table, const float* planes, const Conv2dGeometry& g, const PhasePlanes& layout) {
  const int64_t sw = g.stride.w, dw = g.dilation.w;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t r = 0; r < g.R; ++r)
      for (int64_t s = 0; s < g.S; ++s)
        table[(c * g.R + r) * g.S + s] = planes + (c * sw + s * dw % sw) * layout.plane_floats() +
                                         r * g.dilation.h * layout.width + s * dw / sw;
}

const float* const* thread_phase_row_table(const float* planes, const Conv2dGeometry& g, const PhasePlanes& layout) {
  thread_local std::vector<const float*> table;
  table.resize(static_cast<size_t>(g.col_rows()));
  phase_row_table(table.data(), planes, g, layout);
  return table.data();
}

bool conv2d_weight_grad_rows_pays(const Conv2dGeometry& g) {
#if defined(__AVX512F__)
  return g.groups == 1 && conv2d_panels_in_place(g);
#else
  (void)g;
  return false;
#endif
}

namespace {

constexpr int64_t kLanes = 16;
// A block of dw: kOutBlock output channels x kTapBlock taps, 24 accumulators in registers, 4 + 1
// more for the operands: each step loads 4 vectors of dy and 6 of x for 24 FMAs.
constexpr int kOutBlock = 4, kTapBlock = 6;
constexpr int64_t kAccFloats = kOutBlock * kTapBlock * kLanes;
// Output rows per pass over a thread's blocks (8 rows of dy for 4 channels and of x for 6 taps: 14
// and 21 KiB at OW = 112). Not a tuned value: 8, 32 and whole images timed the same on the 7x7
// stem (AMD VM, 2026-12-05); the sums are the same whatever it is.
constexpr int64_t kBandRows = 8;

#if defined(__AVX512F__)
// acc[kk][jj] (in memory, 16 lanes each) += the lanes of dy row k0 + kk times row j0 + jj over
// `band` output rows. dy: channel k0's first row of the band (channel k0 + kk at + kk * P);
// table: the taps' row starts, each read at + offset + i * row_step for band row i.
template <int KB, int JB>
void weight_rows_tile(float* acc_mem, const float* dy, int64_t P, const float* const* table, int64_t offset,
                      int64_t row_step, int64_t band, int64_t OW) {
  __m512 acc[KB][JB];
#pragma GCC unroll 4
  for (int kk = 0; kk < KB; ++kk)
#pragma GCC unroll 6
    for (int jj = 0; jj < JB; ++jj) acc[kk][jj] = _mm512_load_ps(acc_mem + (kk * JB + jj) * kLanes);
  const int64_t full = OW / kLanes * kLanes;
  const __mmask16 tail = static_cast<__mmask16>((1u << (OW - full)) - 1u);
  for (int64_t i = 0; i < band; ++i) {
    const float* d = dy + i * OW;
    const int64_t off = offset + i * row_step;
    for (int64_t v = 0; v < full; v += kLanes) {
      // The rows of x start anywhere in a line, so most of their loads split across two lines:
      // each is loaded once into a register (the empty asm keeps GCC from folding it into all
      // four FMAs as a memory operand, four split loads instead of one), while dy's rows are
      // line-aligned whenever OW is a multiple of 16.
      __m512 xv[JB];
#pragma GCC unroll 6
      for (int jj = 0; jj < JB; ++jj) {
        xv[jj] = _mm512_loadu_ps(table[jj] + off + v);
        __asm__("" : "+v"(xv[jj]));
      }
#pragma GCC unroll 4
      for (int kk = 0; kk < KB; ++kk) {
        __m512 e = _mm512_loadu_ps(d + kk * P + v);
        __asm__("" : "+v"(e));
#pragma GCC unroll 6
        for (int jj = 0; jj < JB; ++jj) acc[kk][jj] = _mm512_fmadd_ps(e, xv[jj], acc[kk][jj]);
      }
    }
    if (tail) {  // the same through masked loads (lanes past OW load as 0 and add nothing)
      __m512 xv[JB];
#pragma GCC unroll 6
      for (int jj = 0; jj < JB; ++jj) xv[jj] = _mm512_maskz_loadu_ps(tail, table[jj] + off + full);
#pragma GCC unroll 4
      for (int kk = 0; kk < KB; ++kk) {
        const __m512 e = _mm512_maskz_loadu_ps(tail, d + kk * P + full);
#pragma GCC unroll 6
        for (int jj = 0; jj < JB; ++jj) acc[kk][jj] = _mm512_fmadd_ps(e, xv[jj], acc[kk][jj]);
      }
    }
  }
#pragma GCC unroll 4
  for (int kk = 0; kk < KB; ++kk)
#pragma GCC unroll 6
    for (int jj = 0; jj < JB; ++jj) _mm512_store_ps(acc_mem + (kk * JB + jj) * kLanes, acc[kk][jj]);
}

using WeightRowsTileFn = void (*)(float*, const float*, int64_t, const float* const*, int64_t, int64_t, int64_t,
                                  int64_t);

template <std::size_t... I>
constexpr std::array<WeightRowsTileFn, sizeof...(I)> weight_rows_tiles(std::index_sequence<I...>) {
  return {&weight_rows_tile<static_cast<int>(I) / kTapBlock + 1, static_cast<int>(I) % kTapBlock + 1>...};
}
// kWeightRowsTiles[(KB - 1) * kTapBlock + JB - 1]: the kernel for a block of KB channels x JB taps
// (the last blocks of K and of C*R*S may be short).
constexpr auto kWeightRowsTiles = weight_rows_tiles(std::make_index_sequence<kOutBlock * kTapBlock>());
#endif

}  // namespace

void conv2d_backward_weight_rows(float* dw, const float* x, const float* dy, const Conv2dGeometry& g,
                                 bool accumulate) {
  INQ_CHECK(g.groups == 1, "Given the convolution {}, expected one group for the in-place weight gradient",
            g.str());
#if defined(__AVX512F__)
  const PhasePlanes layout = PhasePlanes::of(g);
  const int64_t inner = g.col_rows(), P = g.output_pixels(), image = g.C * g.H * g.W;
  const int64_t out_blocks = (g.K + kOutBlock - 1) / kOutBlock, tap_blocks = (inner + kTapBlock - 1) / kTapBlock;
  const int64_t blocks = out_blocks * tap_blocks;
  const bool parallel = g.forward_flops() >= 1e6 && !omp_in_parallel();
  const int64_t threads = parallel ? omp_get_max_threads() : 1;
  const int64_t per_thread = (blocks + threads - 1) / threads;
  // One image's planes, shared; then each thread's accumulators (every block it owns, 16 lanes per
  // output).
  const int64_t planes_floats = round_up_to_line(layout.image_floats());
  float* planes = thread_workspace().floats(planes_floats + threads * per_thread * kAccFloats);
  float* accumulators = planes + planes_floats;
  const float* const* table = thread_phase_row_table(planes, g, layout);
  const int64_t phase_rows = layout.count * layout.rows, row_step = g.stride.h * layout.width;
#pragma omp parallel num_threads(static_cast<int>(threads)) if (parallel)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t begin = std::min(blocks, t * per_thread), end = std::min(blocks, begin + per_thread);
    float* acc = accumulators + t * per_thread * kAccFloats;
    std::fill(acc, acc + (end - begin) * kAccFloats, 0.0f);
    for (int64_t n = 0; n < g.N; ++n) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < phase_rows; ++i) build_phase_rows(planes, x + n * image, g, layout, i, i + 1);
      for (int64_t oh0 = 0; oh0 < g.OH; oh0 += kBandRows) {
        const int64_t band = std::min(kBandRows, g.OH - oh0);
        for (int64_t b = begin; b < end; ++b) {
          const int64_t k0 = b / tap_blocks * kOutBlock, j0 = b % tap_blocks * kTapBlock;
          const int64_t KB = std::min<int64_t>(kOutBlock, g.K - k0), JB = std::min<int64_t>(kTapBlock, inner - j0);
          kWeightRowsTiles[(KB - 1) * kTapBlock + JB - 1](acc + (b - begin) * kAccFloats,
                                                          dy + (n * g.K + k0) * P + oh0 * g.OW, P, table + j0,
                                                          oh0 * row_step, row_step, band, g.OW);
        }
      }
#pragma omp barrier
    }
    // Each output's 16 lanes added in order.
    for (int64_t b = begin; b < end; ++b) {
      const int64_t k0 = b / tap_blocks * kOutBlock, j0 = b % tap_blocks * kTapBlock;
      const int64_t KB = std::min<int64_t>(kOutBlock, g.K - k0), JB = std::min<int64_t>(kTapBlock, inner - j0);
      for (int64_t kk = 0; kk < KB; ++kk)
        for (int64_t jj = 0; jj < JB; ++jj) {
          const float* lanes = acc + (b - begin) * kAccFloats + (kk * JB + jj) * kLanes;
          float s = 0.0f;
          for (int64_t l = 0; l < kLanes; ++l) s += lanes[l];
          float& out = dw[(k0 + kk) * inner + j0 + jj];
          out = accumulate ? out + s : s;
        }
    }
  }
#else
  (void)dw, (void)x, (void)dy, (void)accumulate;
  INQ_CHECK(false, "Given the convolution {}, expected an AVX-512 build for the in-place weight gradient", g.str());
#endif
}

}  // namespace inq
