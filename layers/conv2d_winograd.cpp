#include "layers/conv2d_winograd.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "framework/dot_gemm.h"
#include "framework/error.h"
#include "framework/gemm.h"
#include "framework/panel_gemm.h"
#include "framework/workspace.h"

namespace inq {

bool winograd_supported(const Conv2dGeometry& g) {
  return g.R == 3 && g.S == 3 && g.stride == Size2(1) && g.dilation == Size2(1) && g.groups == 1 &&
         g.padding.h <= 2 && g.padding.w <= 2;
}

namespace {

// Sixteen floats, one AVX-512 register (GCC's vector extension; without AVX-512 the compiler
// splits it into narrower registers). The tile transforms run on 16 tiles at once, one per lane.
typedef float v16 __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;

int64_t round_up_lanes(int64_t v) { return (v + kLanes - 1) / kLanes * kLanes; }

// The distance in floats between two transform points' matrices in V, M and E (each `floats`
// long): whole cache lines, and an odd number of them. At C * Tb floats (Tb = 128, a multiple of
// 4 KiB) all a*a = 36 points of one 16-tile chunk fell in the same set of the 8-way L1 cache, so
// the transform's 36 stores (or the output transform's 36 loads) kept evicting each other; at an
// odd number of lines the 36 go to 36 different sets.
int64_t point_stride(int64_t floats) {
  const int64_t s = round_up_to_line(floats);
  return (s / 16) % 2 == 0 ? s + 16 : s;
}

// The transform-point GEMMs on kept filters (WinogradConfig::filter_panels) run on
// framework/panel_gemm.h's kernel: at batch 1 a block has only 16..128 tile columns, so sgemm spent
// as long packing U[xi] (every call) as multiplying it.

// Lavin & Gray's transforms. BT = B^T (a x a) maps an input tile d to B^T d B, G (a x 3) maps a
// filter g to G g G^T, AT = A^T (m x a) maps a transformed product back to the output tile A^T M A.
template <int m>
struct Transform;

// F(2x2, 3x3): interpolation points 0, 1, -1 and infinity.
template <>
struct Transform<2> {
  static constexpr int a = 4;
  static constexpr float BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
  static constexpr float G[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
  static constexpr float AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};

// F(4x4, 3x3): points 0, 1, -1, 2, -2 and infinity.
template <>
struct Transform<4> {
  static constexpr int a = 6;
  static constexpr float BT[6][6] = {{4, 0, -5, 0, 1, 0},   {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                     {0, -2, -1, 2, 1, 0},  {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
  static constexpr float G[6][3] = {{1.0f / 4, 0, 0},
                                    {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                    {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                    {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                    {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                    {0, 0, 1}};
  static constexpr float AT[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};

// out (rows x rows) = L in L^T for in (cols x cols), all entries v16, L a constexpr matrix: entry p
// of in is read from src + p * src_stride and entry p of out written to dst + p * dst_stride
// (floats). Loops are fully unrolled so the zero coefficients drop out at compile time and +-1
// become adds. Reading and writing in place of copies through v16 arrays on the stack matters: the
// copy loops were a tenth of the input transform's time (perf, ResNet-20 training step).
template <int rows, int cols, class Coef>
inline void two_sided_strided(const float* src, int64_t src_stride, float* dst, int64_t dst_stride, Coef L) {
  v16 tmp[rows][cols];
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < cols; ++j) {
      v16 acc = {};
      bool first = true;  // start from the first term: 0 + x is not folded away (signed zeros)
#pragma GCC unroll 8
      for (int i = 0; i < cols; ++i)
        if (L(r, i) != 0.0f) {
          v16 in;
          std::memcpy(&in, src + (i * cols + j) * src_stride, sizeof(v16));
          const v16 term = L(r, i) * in;
          acc = first ? term : acc + term;
          first = false;
        }
      tmp[r][j] = acc;
    }
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < rows; ++q) {
      v16 acc = {};
      bool first = true;
#pragma GCC unroll 8
      for (int j = 0; j < cols; ++j)
        if (L(q, j) != 0.0f) {
          const v16 term = L(q, j) * tmp[r][j];
          acc = first ? term : acc + term;
          first = false;
        }
      std::memcpy(dst + (r * rows + q) * dst_stride, &acc, sizeof(v16));
    }
}

// The same on v16 arrays.
template <int rows, int cols, class Coef>
inline void two_sided(const v16* in, v16* out, Coef L) {
  two_sided_strided<rows, cols>(reinterpret_cast<const float*>(in), kLanes, reinterpret_cast<float*>(out), kLanes, L);
}

// The same for F(4x4, 3x3)'s three data transforms, with L applied by Rule::apply(in, out)
// (out = L in, `cols` inputs, `rows` outputs) in a factored form: the rows of BT, AT and A share
// sums and differences, which the compiler does not find itself (without -ffast-math it keeps the
// order the code gives). 14 vector operations per column for BT instead of 22, 10 for AT instead
// of 14, 9 for A instead of 12 (a multiply-add counted once); the input transform was the largest
// single item of a ResNet-20 training step (16%). Same results up to rounding; the tests hold both
// forms to the naive convolution.
template <int rows, int cols, class Rule>
inline void two_sided_factored(const float* src, int64_t src_stride, float* dst, int64_t dst_stride) {
  v16 tmp[rows][cols];
#pragma GCC unroll 8
  for (int j = 0; j < cols; ++j) {
    v16 in[cols], out[rows];
#pragma GCC unroll 8
    for (int i = 0; i < cols; ++i) std::memcpy(&in[i], src + (i * cols + j) * src_stride, sizeof(v16));
    Rule::apply(in, out);
#pragma GCC unroll 8
    for (int r = 0; r < rows; ++r) tmp[r][j] = out[r];
  }
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r) {
    v16 out[rows];
    Rule::apply(tmp[r], out);
#pragma GCC unroll 8
    for (int q = 0; q < rows; ++q) std::memcpy(dst + (r * rows + q) * dst_stride, &out[q], sizeof(v16));
  }
}

// out = BT d for F(4x4, 3x3) (Transform<4>::BT, row by row).
struct InputRule4 {
  static inline void apply(const v16* d, v16* out) {
    const v16 s12 = d[1] + d[2], s34 = d[3] + d[4], u12 = d[1] - d[2], u43 = d[4] - d[3];
    const v16 w42 = d[4] - d[2], w31 = d[3] - d[1];
    out[0] = (d[4] + 4.0f * d[0]) - 5.0f * d[2];
    out[1] = s34 - 4.0f * s12;
    out[2] = u43 + 4.0f * u12;
    out[3] = w42 + 2.0f * w31;
    out[4] = w42 - 2.0f * w31;
    out[5] = (d[5] + 4.0f * d[1]) - 5.0f * d[3];
  }
};

// out = AT m for F(4x4, 3x3) (Transform<4>::AT).
struct OutputRule4 {
  static inline void apply(const v16* m, v16* out) {
    const v16 s12 = m[1] + m[2], u12 = m[1] - m[2], s34 = m[3] + m[4], u34 = m[3] - m[4];
    out[0] = m[0] + s12 + s34;
    out[1] = u12 + 2.0f * u34;
    out[2] = s12 + 4.0f * s34;
    out[3] = u12 + 8.0f * u34 + m[5];
  }
};

// out = A e for F(4x4, 3x3), A = AT^T (the weight gradient's dy tiles).
struct GradientRule4 {
  static inline void apply(const v16* e, v16* out) {
    const v16 s02 = e[0] + e[2], s13 = e[1] + e[3];
    const v16 t02 = e[0] + 4.0f * e[2], t13 = 2.0f * e[1] + 8.0f * e[3];
    out[0] = e[0];
    out[1] = s02 + s13;
    out[2] = s02 - s13;
    out[3] = t02 + t13;
    out[4] = t02 - t13;
    out[5] = e[3];
  }
};

// The convolution one call computes: forward (x -> y) or the input gradient (dy -> dx); the
// weight gradient uses the forward's Job (x is its input, dy its output).
struct Job {
  int64_t N, Cin, H, W;   // input of this convolution
  int64_t Kout, OH, OW;   // its output
  int64_t pad_h, pad_w;
  bool flip_transpose;    // the weight is read as w'[k][c][r][s] = w[c][k][2-r][2-s] (see weight_chunk)
};

// U[xi][f] for the filters f = k * Cin + c in [f0, f0 + count), count <= 16, one per lane: G w G^T
// in float (G's entries 1/4, 1/6, 1/12, 1/24 round to within 2^-24 relative; the products are not
// the precision-limiting step, the input and output transforms are). U is (a*a, Kout*Cin). w holds
// the filters from f_base on (forward only; 0 for a whole weight).
template <int m>
void weight_chunk(float* U, const float* w, const Job& j, int64_t f0, int64_t count, int64_t f_base = 0) {
  using T = Transform<m>;
  constexpr int a = T::a;
  alignas(64) float f[9][kLanes] = {};
  for (int64_t l = 0; l < count; ++l) {
    const int64_t k = (f0 + l) / j.Cin, c = (f0 + l) % j.Cin;
    // Forward: w[k][c][r][s]. Input gradient: w'[k][c][r][s] = w[c][k][2-r][2-s] with w (Cin, Kout, 3, 3).
    if (j.flip_transpose) {
      const float* src = w + (c * j.Kout + k) * 9;
      for (int i = 0; i < 9; ++i) f[i][l] = src[8 - i];
    } else {
      const float* src = w + (k * j.Cin + c - f_base) * 9;
      for (int i = 0; i < 9; ++i) f[i][l] = src[i];
    }
  }
  v16 in[9], out[a * a];
  for (int i = 0; i < 9; ++i) std::memcpy(&in[i], f[i], sizeof(v16));
  two_sided<a, 3>(in, out, [](int r, int i) { return T::G[r][i]; });
  const int64_t KC = j.Kout * j.Cin;
  for (int p = 0; p < a * a; ++p) std::memcpy(U + p * KC + f0, &out[p], static_cast<size_t>(count) * sizeof(float));
}

// Tile number -> (image, tile row, tile column), stepped along the tiles of a chunk.
struct TileCursor {
  int64_t n, ty, tx, rows, cols;  // rows, cols: tiles per image
  TileCursor(int64_t t, int64_t rows_, int64_t cols_) : rows(rows_), cols(cols_) {
    n = t / (rows * cols);
    ty = t % (rows * cols) / cols;
    tx = t % cols;
  }
  void next() {
    if (++tx < cols) return;
    tx = 0;
    if (++ty < rows) return;
    ty = 0;
    ++n;
  }
};

// The planes patches are cut from: channel c of image n starts at base + (n * channels + c) * H * W.
struct Planes {
  const float* base;
  int64_t channels, H, W, pad_h, pad_w;
};

// d[i * a + q][l] = x[n][c][ty * m - pad_h + i][tx * m - pad_w + q] (0 outside the image) for the
// lanes' tiles l < count starting at tile t: a x a patches a step of m apart, one tile per lane
// (a = m + 2 for the input tiles, a = m, pad 0 for the weight gradient's dy tiles). The scalar form
// is the reference; the AVX-512 form (used when built for it) does the same copy a run of tiles
// (up to kRun in one tile row) at a time: for each of the a image rows it loads 32 columns covering
// the run with masked loads (zeros past the image's edges) and moves each patch column into the
// run's lanes with one permute, instead of a * a scalar loads and stores per tile; it also writes
// the lanes past count (zeros). The convolution tests check both against the
// naive convolution through the whole kernel (the scalar form on builds without AVX-512).
template <int m, int a>
void gather_patches_scalar(float (*d)[kLanes], const Planes& x, int64_t c, int64_t t, int64_t count,
                           int64_t tile_rows, int64_t tile_cols) {
  TileCursor cur(t, tile_rows, tile_cols);
  for (int64_t l = 0; l < count; ++l, cur.next()) {
    const float* plane = x.base + (cur.n * x.channels + c) * x.H * x.W;
    const int64_t ih0 = cur.ty * m - x.pad_h, iw0 = cur.tx * m - x.pad_w;
    if (ih0 >= 0 && iw0 >= 0 && ih0 + a <= x.H && iw0 + a <= x.W) {
      for (int i = 0; i < a; ++i) {
        const float* row = plane + (ih0 + i) * x.W + iw0;
        for (int q = 0; q < a; ++q) d[i * a + q][l] = row[q];
      }
    } else {
      // A tile over the padding or past the edge: zeros, then the rectangle inside the image.
      const int64_t i0 = std::max<int64_t>(0, -ih0), i1 = std::min<int64_t>(a, x.H - ih0);
      const int64_t q0 = std::max<int64_t>(0, -iw0), q1 = std::min<int64_t>(a, x.W - iw0);
      for (int p = 0; p < a * a; ++p) d[p][l] = 0.0f;
      for (int64_t i = i0; i < i1; ++i) {
        const float* row = plane + (ih0 + i) * x.W + iw0;
        for (int64_t q = q0; q < q1; ++q) d[i * a + q][l] = row[q];
      }
    }
  }
}

template <int m, int a>
void gather_patches(float (*d)[kLanes], const Planes& x, int64_t c, int64_t t, int64_t count, int64_t tile_rows,
                    int64_t tile_cols) {
#if defined(__AVX512F__)
  // Tiles per run: their patches span (kRun - 1) * m + a <= 32 columns (7 tiles for m = 4, a = 6).
  constexpr int64_t kRun = (32 - a) / m + 1;
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i width = _mm512_set1_epi32(static_cast<int>(x.W));
  // The runs of tiles (each in one tile row of one image) that fill the 16 lanes: at most 16.
  struct Run {
    __m512i first;     // lane l + r reads window column r * m (+ q for patch column q)
    const float* plane;
    int64_t ih0, col0;  // the window's first row and column (may lie over the padding)
    __mmask16 lanes, in_lo, in_hi;
  };
  Run runs[kLanes];
  int64_t run_count = 0;
  TileCursor cur(t, tile_rows, tile_cols);
  for (int64_t l = 0; l < count; ++run_count) {
    const int64_t run = std::min({count - l, kRun, tile_cols - cur.tx});
    Run& u = runs[run_count];
    const int64_t col0 = cur.tx * m - x.pad_w;
    u.ih0 = cur.ty * m - x.pad_h;
    u.col0 = col0;
    u.plane = x.base + (cur.n * x.channels + c) * x.H * x.W;
    u.lanes = static_cast<__mmask16>(((1u << run) - 1) << l);
    // Window columns col0 .. col0 + 31 inside the image; masked-off ones are neither read nor
    // faulted on: they load as 0.
    const __m512i cols_lo = _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int>(col0)));
    const __m512i cols_hi = _mm512_add_epi32(cols_lo, _mm512_set1_epi32(16));
    u.in_lo = _mm512_cmpge_epi32_mask(cols_lo, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(cols_lo, width);
    u.in_hi = _mm512_cmpge_epi32_mask(cols_hi, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(cols_hi, width);
    u.first = _mm512_mullo_epi32(_mm512_sub_epi32(iota, _mm512_set1_epi32(static_cast<int>(l))), _mm512_set1_epi32(m));
    l += run;
    for (int64_t r = 0; r < run; ++r) cur.next();
  }
  // Row by row of the patches, each d vector built in registers from every run's window row and
  // stored whole: lanes past count and rows outside the image stay 0. (Stored run by run through
  // masks, the vectors were read back by the transform right after: partial stores that the loads
  // could not forward from, ~9% of a ResNet-20 training step on the masked store alone.)
  for (int i = 0; i < a; ++i) {
    __m512 row_of[a];
    for (int q = 0; q < a; ++q) row_of[q] = _mm512_setzero_ps();
    for (int64_t r = 0; r < run_count; ++r) {
      const Run& u = runs[r];
      const int64_t ih = u.ih0 + i;
      if (ih < 0 || ih >= x.H) continue;
      const float* row = u.plane + ih * x.W + u.col0;
      // The same window of the next channel's plane (the next work item's; the input is read from
      // memory, and a plane's few dozen lines are too short a stream for the hardware prefetcher):
      // 10-15% of a ResNet-20 training step. A prefetch past the tensor's end does not fault.
      const char* next = reinterpret_cast<const char*>(row + x.H * x.W);
      _mm_prefetch(next, _MM_HINT_T0);
      _mm_prefetch(next + 64, _MM_HINT_T0);
      _mm_prefetch(next + 124, _MM_HINT_T0);
      const __m512 lo = _mm512_maskz_loadu_ps(u.in_lo, row);
      const __m512 hi = _mm512_maskz_loadu_ps(u.in_hi, row + 16);
      for (int q = 0; q < a; ++q)
        row_of[q] = _mm512_mask_mov_ps(
            row_of[q], u.lanes, _mm512_permutex2var_ps(lo, _mm512_add_epi32(u.first, _mm512_set1_epi32(q)), hi));
    }
    for (int q = 0; q < a; ++q) _mm512_storeu_ps(d[i * a + q], row_of[q]);
  }
#else
  gather_patches_scalar<m, a>(d, x, c, t, count, tile_rows, tile_cols);
#endif
}

// The input patches of Job j: a = m + 2, with the convolution's padding.
template <int m>
void gather_tiles(float (*d)[kLanes], const float* x, const Job& j, int64_t c, int64_t t, int64_t count,
                  int64_t tile_rows, int64_t tile_cols) {
  gather_patches<m, m + 2>(d, Planes{x, j.Cin, j.H, j.W, j.pad_h, j.pad_w}, c, t, count, tile_rows, tile_cols);
}

// V[xi][c][t - t0] for the lanes' tiles [t, t + count) of channel c, count <= 16; lanes past count
// are zero. ldv: the row stride of V (Tb).
template <int m>
void input_chunk(float* V, const float* x, const Job& j, int64_t c, int64_t t, int64_t t0, int64_t count,
                 int64_t tile_rows, int64_t tile_cols, int64_t ldv, int64_t point_stride) {
  using T = Transform<m>;
  constexpr int a = T::a;
  alignas(64) float d[a * a][kLanes];
  if (count < kLanes) std::memset(d, 0, sizeof(d));
  gather_tiles<m>(d, x, j, c, t, count, tile_rows, tile_cols);
  if constexpr (m == 4) {
    two_sided_factored<a, a, InputRule4>(d[0], kLanes, V + c * ldv + (t - t0), point_stride);
  } else {
    two_sided_strided<a, a>(d[0], kLanes, V + c * ldv + (t - t0), point_stride,
                            [](int r, int i) { return T::BT[r][i]; });
  }
}

// out[n][k][ty * m + i][tx * m + q] = o[i * m + q][l] + b (added to what is there with accumulate)
// for the lanes' tiles l < count starting at tile t, cut at the image's edge: the inverse of
// gather_patches<m, m>. The AVX-512 form (m = 2 and 4) builds each output row of a run of tiles
// from the lanes with two permutes and a blend and writes it with one or two masked stores, where
// the scalar form wrote m * m floats per tile one at a time.
template <int m>
void scatter_tiles_scalar(float* out, const float (*o)[kLanes], float b, const Job& j, int64_t k, int64_t t,
                          int64_t count, int64_t tile_rows, int64_t tile_cols, bool accumulate) {
  TileCursor cur(t, tile_rows, tile_cols);
  for (int64_t l = 0; l < count; ++l, cur.next()) {
    float* plane = out + (cur.n * j.Kout + k) * j.OH * j.OW;
    const int64_t oh0 = cur.ty * m, ow0 = cur.tx * m;
    const int64_t nr = std::min<int64_t>(m, j.OH - oh0), nc = std::min<int64_t>(m, j.OW - ow0);
    for (int64_t i = 0; i < nr; ++i) {
      float* row = plane + (oh0 + i) * j.OW + ow0;
      for (int64_t q = 0; q < nc; ++q) {
        const float v = o[i * m + q][l] + b;
        row[q] = accumulate ? row[q] + v : v;
      }
    }
  }
}

template <int m>
void scatter_tiles(float* out, const float (*o)[kLanes], float b, const Job& j, int64_t k, int64_t t, int64_t count,
                   int64_t tile_rows, int64_t tile_cols, bool accumulate) {
#if defined(__AVX512F__)
  if constexpr (m == 2 || m == 4) {
    constexpr int64_t kRun = 32 / m;  // tiles per run: m * kRun = 32 columns, two vectors
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i col_in_tile = _mm512_and_si512(iota, _mm512_set1_epi32(m - 1));  // e % m
    const __m512i tile_of_col = _mm512_srli_epi32(iota, m == 4 ? 2 : 1);           // e / m
    // Column e of a row takes lane l + e / m of o[i * m + e % m]. For m = 4 the four sources are
    // paired: (q = 0, 1) and (q = 2, 3), each pair one two-source permute, then a blend by e % m.
    const __m512i second = _mm512_slli_epi32(_mm512_and_si512(col_in_tile, _mm512_set1_epi32(1)), 4);  // +16
    const __mmask16 upper_pair = m == 4 ? static_cast<__mmask16>(0xCCCC) : static_cast<__mmask16>(0);
    const __m512 bias = _mm512_set1_ps(b);
    TileCursor cur(t, tile_rows, tile_cols);
    for (int64_t l = 0; l < count;) {
      const int64_t run = std::min({count - l, kRun, tile_cols - cur.tx});
      float* plane = out + (cur.n * j.Kout + k) * j.OH * j.OW;
      const int64_t oh0 = cur.ty * m, ow0 = cur.tx * m;
      const int64_t nr = std::min<int64_t>(m, j.OH - oh0);
      const int64_t cols = std::min<int64_t>(run * m, j.OW - ow0);  // columns written, <= 32
      const __mmask16 store_lo = static_cast<__mmask16>(cols >= 16 ? 0xFFFF : (1u << cols) - 1u);
      const __mmask16 store_hi = static_cast<__mmask16>(cols <= 16 ? 0u : (1u << (cols - 16)) - 1u);
      const __m512i idx_lo = _mm512_add_epi32(_mm512_add_epi32(tile_of_col, _mm512_set1_epi32(static_cast<int>(l))),
                                              second);
      const __m512i idx_hi = _mm512_add_epi32(idx_lo, _mm512_set1_epi32(16 / m));
      for (int64_t i = 0; i < nr; ++i) {
        const float* src = o[i * m];
        __m512 lo, hi;
        if constexpr (m == 4) {
          const __m512 q0 = _mm512_load_ps(src), q1 = _mm512_load_ps(src + kLanes);
          const __m512 q2 = _mm512_load_ps(src + 2 * kLanes), q3 = _mm512_load_ps(src + 3 * kLanes);
          lo = _mm512_mask_blend_ps(upper_pair, _mm512_permutex2var_ps(q0, idx_lo, q1),
                                    _mm512_permutex2var_ps(q2, idx_lo, q3));
          hi = _mm512_mask_blend_ps(upper_pair, _mm512_permutex2var_ps(q0, idx_hi, q1),
                                    _mm512_permutex2var_ps(q2, idx_hi, q3));
        } else {
          const __m512 q0 = _mm512_load_ps(src), q1 = _mm512_load_ps(src + kLanes);
          lo = _mm512_permutex2var_ps(q0, idx_lo, q1);
          hi = _mm512_permutex2var_ps(q0, idx_hi, q1);
        }
        // (o + b), then added to the output: the scalar form's two roundings.
        lo = _mm512_add_ps(lo, bias);
        hi = _mm512_add_ps(hi, bias);
        float* row = plane + (oh0 + i) * j.OW + ow0;
        if (accumulate) {
          lo = _mm512_add_ps(_mm512_maskz_loadu_ps(store_lo, row), lo);
          hi = _mm512_add_ps(_mm512_maskz_loadu_ps(store_hi, row + 16), hi);
        }
        _mm512_mask_storeu_ps(row, store_lo, lo);
        _mm512_mask_storeu_ps(row + 16, store_hi, hi);
      }
      l += run;
      for (int64_t r = 0; r < run; ++r) cur.next();
    }
    return;
  }
#endif
  scatter_tiles_scalar<m>(out, o, b, j, k, t, count, tile_rows, tile_cols, accumulate);
}

// The output tiles [t, t + count) of output channel k from M[xi][k][t - t0]: A^T M A (+ bias),
// written or added into out, cut at the image's edge.
// m_row: output channel k's row of M (k itself, or k's place within a panel of output channels).
template <int m>
void output_chunk(float* out, const float* M, const float* bias, const Job& j, int64_t k, int64_t t, int64_t t0,
                  int64_t count, int64_t tile_rows, int64_t tile_cols, int64_t ldm, int64_t point_stride,
                  bool accumulate, int64_t m_row) {
  using T = Transform<m>;
  constexpr int a = T::a;
  const float* src = M + m_row * ldm + (t - t0);
  // The next chunk's line of each point (tiles t + 16..t + 31, the next work item): the 36 lines of
  // a chunk lie far apart, a pattern the hardware prefetcher does not follow. Loading M went from
  // ~44% to ~21% of this function's time (perf, ResNet-20 training step, 1 thread).
  for (int p = 0; p < a * a; ++p) __builtin_prefetch(src + p * point_stride + kLanes, 0, 3);
  alignas(64) float o[m * m][kLanes];
  if constexpr (m == 4) {
    two_sided_factored<m, a, OutputRule4>(src, point_stride, o[0], kLanes);
  } else {
    two_sided_strided<m, a>(src, point_stride, o[0], kLanes, [](int r, int i) { return T::AT[r][i]; });
  }
  scatter_tiles<m>(out, o, bias ? bias[k] : 0.0f, j, k, t, count, tile_rows, tile_cols, accumulate);
}

// One panel of 14 output channels' filters transformed, from the panel layout of the raw filters,
// src[(c * 9 + i) * 14 + r] = w[r][c][i] (rows past the layer's zero): per input channel c, lane r
// holds output channel r's filter, so the nine taps are nine vector loads and each transformed
// point one store of 14 lanes straight into its panel (dst[xi * dst_point_stride + c * 14 + r]),
// with no gathering by filter and no repacking. Each lane computes what weight_chunk computes for
// that filter: the same bits.
template <int m>
void transform_filter_panel_layout(float* dst, int64_t dst_point_stride, const float* src, int64_t C) {
  using T = Transform<m>;
  constexpr int a = T::a;
  v16 in[9] = {}, out[a * a];
  for (int64_t c = 0; c < C; ++c) {
    const float* taps = src + c * 9 * kPanelRows;
    float* point = dst + c * kPanelRows;
#if defined(__AVX512F__)
    // Masked loads and stores of the 14 lanes: memcpy of 56 bytes became two overlapping 32-byte
    // moves through the stack, and the 64-byte loads after them stalled on store forwarding (a
    // fifth of this function's time in perf on AlexNet's 13x13 layers).
    constexpr __mmask16 rows = (1u << kPanelRows) - 1u;
    for (int i = 0; i < 9; ++i) in[i] = (v16)_mm512_maskz_loadu_ps(rows, taps + i * kPanelRows);
    two_sided<a, 3>(in, out, [](int r, int i) { return T::G[r][i]; });
    for (int xi = 0; xi < a * a; ++xi) _mm512_mask_storeu_ps(point + xi * dst_point_stride, rows, (__m512)out[xi]);
#else
    constexpr size_t row_bytes = kPanelRows * sizeof(float);
    for (int i = 0; i < 9; ++i) std::memcpy(&in[i], taps + i * kPanelRows, row_bytes);
    two_sided<a, 3>(in, out, [](int r, int i) { return T::G[r][i]; });
    for (int xi = 0; xi < a * a; ++xi) std::memcpy(point + xi * dst_point_stride, &out[xi], row_bytes);
#endif
  }
}

// The raw filters of output channels [14p, 14p + 14) of Job j in that panel layout (rows past Kout
// zero), read as weight_chunk reads them (flipped and transposed for the input gradient), then
// transformed into the panels of every point: dst = the points' panels + p's offset.
template <int m>
void weight_panel(float* dst, int64_t dst_point_stride, const float* w, const Job& j, int64_t p) {
  thread_local std::vector<float> raw;  // the calling thread's, reused
  raw.assign(static_cast<size_t>(j.Cin * 9 * kPanelRows), 0.0f);
  const int64_t rows = std::min(kPanelRows, j.Kout - p * kPanelRows);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t k = p * kPanelRows + r;
    for (int64_t c = 0; c < j.Cin; ++c)
      for (int i = 0; i < 9; ++i)
        raw[static_cast<size_t>((c * 9 + i) * kPanelRows + r)] =
            j.flip_transpose ? w[(c * j.Kout + k) * 9 + 8 - i] : w[(k * j.Cin + c) * 9 + i];
  }
  transform_filter_panel_layout<m>(dst, dst_point_stride, raw.data(), j.Cin);
}

// Chunks [c0, c1) of 16 tiles cut into the fewest blocks of at most max_chunks chunks, of equal
// size to within a chunk: run()'s per-thread runs and the weight gradient's partitions. Block blk
// holds chunks [begin(blk), begin(blk + 1)).
struct ChunkRun {
  int64_t c0, c1, blocks;
  ChunkRun(int64_t first, int64_t end, int64_t max_chunks)
      : c0(first), c1(end), blocks((end - first + max_chunks - 1) / max_chunks) {}
  int64_t begin(int64_t blk) const { return c0 + blk * (c1 - c0) / blocks; }
};

// Two ways to share the work between threads, both computing every value the same way:
//  - shared blocks: all threads work on one block at a time, splitting its input transform by
//    (channel, 16 tiles), its GEMMs by transform point and its output transform by (output channel,
//    16 tiles), with a barrier after each phase. Any number of blocks keeps every thread busy.
//  - private blocks: each thread runs whole blocks on its own V and M (a static share of them),
//    no barriers; taken when there are at least two blocks per thread, as on ResNet-20's layers,
//    where the barriers cost as much as the small GEMMs.
template <int m>
void run(float* out, const float* in, const float* w, const float* filters, const float* panels, const float* bias,
         const Job& j, int64_t block_tiles, bool accumulate) {
  constexpr int a = m + 2;
  constexpr int64_t points = a * a;
  const int64_t tile_rows = (j.OH + m - 1) / m, tile_cols = (j.OW + m - 1) / m;
  const int64_t T = j.N * tile_rows * tile_cols;
  const int64_t Tb = std::min(round_up_lanes(std::max<int64_t>(block_tiles, 1)), round_up_lanes(T));
  const int64_t blocks = (T + Tb - 1) / Tb;
  const int threads = omp_get_max_threads();
  const bool private_blocks = threads > 1 && blocks >= 2 * threads;
  // The transform-point GEMMs: with AVX-512 always on framework/panel_gemm.h's kernel. Filters given
  // as panels are used as they are; otherwise U (given) is laid out as panels once per call, one
  // pass over U where sgemm packed U[xi] again for every block, and the AVX-512 kernel outruns
  // OpenBLAS's AVX2 one (OPENBLAS_CORETYPE=Haswell); and raw filters (training) are transformed
  // straight into panels, a panel of 14 output channels per work item (weight_panel), with no U in
  // between: one pass and one barrier fewer per call, the same bits. Without AVX-512, sgemm on U.
  const bool make_panels = !panels && winograd_filter_panels_supported();
  const bool panels_from_w = make_panels && !filters;
  const int64_t panel_floats = inq::panel_floats(j.Kout, j.Cin);
  // One workspace request per call, carved: the panels made here (if any), U (unless given or not
  // needed), then V and M for one block (shared) or per thread. U made here is dead once the panels
  // are, so then it shares its place with V and M.
  if (panels) filters = panels;  // U is not read in its plain layout then
  const int64_t u_floats = (filters || panels_from_w) ? 0 : round_up_to_line(points * j.Kout * j.Cin);
  const int64_t up_floats = make_panels ? round_up_to_line(points * panel_floats) : 0;
  const int64_t v_stride = point_stride(j.Cin * Tb), m_stride = point_stride(j.Kout * Tb);
  const int64_t v_floats = points * v_stride, m_floats = points * m_stride;
  const int64_t copies = private_blocks ? threads : 1;
  const int64_t vm_floats = copies * (v_floats + m_floats);
  float* work = thread_workspace().floats(up_floats + (make_panels ? std::max(u_floats, vm_floats)
                                                                    : u_floats + vm_floats));
  float* made_panels = work;
  float* U_made = work + up_floats;
  float* blocks_base = make_panels ? work + up_floats : work + u_floats;
  const float* U = filters ? filters : U_made;
  const float* gemm_panels = panels ? panels : make_panels ? made_panels : nullptr;
  // The three phases of block [t0, t0 + nb), one work item at a time.
  const auto chunks_of = [](int64_t nb) { return round_up_lanes(nb) / kLanes; };
  const auto input_item = [&](float* V, int64_t t0, int64_t nb, int64_t q) {
    const int64_t chunks = chunks_of(nb), c = q / chunks, t = t0 + q % chunks * kLanes;
    input_chunk<m>(V, in, j, c, t, t0, std::min(kLanes, t0 + nb - t), tile_rows, tile_cols, Tb, v_stride);
  };
  const auto gemm_item = [&](const float* V, float* M, int64_t nb, int64_t xi) {
    if (gemm_panels) {
      panel_gemm_serial(gemm_panels + xi * panel_floats, j.Kout, j.Cin, V + xi * v_stride, Tb, chunks_of(nb) * kLanes,
                        M + xi * m_stride, Tb, nullptr);
      return;
    }
    // Lanes past nb are zero in V; computing them keeps the GEMM width a multiple of 16.
    sgemm(false, false, j.Kout, chunks_of(nb) * kLanes, j.Cin, 1.0f, U + xi * j.Kout * j.Cin, j.Cin,
          V + xi * v_stride, Tb, 0.0f, M + xi * m_stride, Tb);
  };
  // Private blocks: each run's next unclaimed block, one counter per cache line.
  struct alignas(64) Counter {
    std::atomic<int64_t> value{0};
  };
  std::vector<Counter> next_block(private_blocks ? static_cast<size_t>(threads) : 0);
  const auto output_item = [&](const float* M, int64_t t0, int64_t nb, int64_t q) {
    const int64_t chunks = chunks_of(nb), k = q / chunks, t = t0 + q % chunks * kLanes;
    output_chunk<m>(out, M, bias, j, k, t, t0, std::min(kLanes, t0 + nb - t), tile_rows, tile_cols, Tb, m_stride,
                    accumulate, k);
  };
#pragma omp parallel
  {
    if (panels_from_w) {
#pragma omp for schedule(static)
      for (int64_t p = 0; p < panel_count(j.Kout); ++p)
        weight_panel<m>(made_panels + p * j.Cin * kPanelRows, panel_floats, w, j, p);
      // (the loop's barrier: the panels are complete before any GEMM)
    } else if (!filters) {
      const int64_t count = j.Kout * j.Cin;
#pragma omp for schedule(static)
      for (int64_t f0 = 0; f0 < count; f0 += kLanes) weight_chunk<m>(U_made, w, j, f0, std::min(kLanes, count - f0));
      // (the barrier ending the loop above: U is complete before any GEMM)
    }
    if (make_panels && !panels_from_w) {
#pragma omp for schedule(static)
      for (int64_t xi = 0; xi < points; ++xi)
        pack_panels(made_panels + xi * panel_floats, U + xi * j.Kout * j.Cin, j.Cin, j.Kout, j.Cin);
      // (and its barrier: the panels are complete, and U made here may be overwritten by V and M)
    }
    if (private_blocks) {
      // Thread t owns the t-th of `team` equal runs of 16-tile chunks (to within one chunk; a static
      // share of whole blocks left one thread a block more, 1/25 of ResNet-20's 16c 28x28 layers
      // idle on the other), cut into blocks of at most Tb tiles of equal size. A run is a contiguous
      // range of images, as in the kernels around (BatchNorm's parts, element-wise halves), so each
      // thread reads what it wrote. A thread done with its own run takes the blocks still left in
      // the others' (one at a time, from the same counters), so a thread that started late or runs
      // slower does not hold the team at the end. Every tile's output is the same whatever block
      // holds it and whoever runs it.
      const int t = omp_get_thread_num(), team = omp_get_num_threads();
      float* V = blocks_base + t * (v_floats + m_floats);
      float* M = V + v_floats;
      const int64_t chunks_total = round_up_lanes(T) / kLanes;
      for (int step = 0; step < team; ++step) {
        const int owner = (t + step) % team;
        const ChunkRun owned(owner * chunks_total / team, (owner + 1) * chunks_total / team, Tb / kLanes);
        for (int64_t blk; (blk = next_block[owner].value.fetch_add(1, std::memory_order_relaxed)) < owned.blocks;) {
          const int64_t t0 = owned.begin(blk) * kLanes, nb = std::min(T, owned.begin(blk + 1) * kLanes) - t0;
          for (int64_t q = 0; q < j.Cin * chunks_of(nb); ++q) input_item(V, t0, nb, q);
          for (int64_t xi = 0; xi < points; ++xi) gemm_item(V, M, nb, xi);
          for (int64_t q = 0; q < j.Kout * chunks_of(nb); ++q) output_item(M, t0, nb, q);
        }
      }
    } else {
      float* V = blocks_base;
      float* M = V + v_floats;
      for (int64_t t0 = 0; t0 < T; t0 += Tb) {
        const int64_t nb = std::min(Tb, T - t0);
        // Each omp for ends in a barrier: V is complete before the GEMMs, M before the output.
#pragma omp for schedule(static)
        for (int64_t q = 0; q < j.Cin * chunks_of(nb); ++q) input_item(V, t0, nb, q);
        // Inside the parallel region each sgemm runs on its calling thread alone (threading.h).
#pragma omp for schedule(static)
        for (int64_t xi = 0; xi < points; ++xi) gemm_item(V, M, nb, xi);
#pragma omp for schedule(static)
        for (int64_t q = 0; q < j.Kout * chunks_of(nb); ++q) output_item(M, t0, nb, q);
      }
    }
  }
}

// ---- forward on filters supplied a panel at a time ----
// (winograd_conv2d_forward_streamed.) The tiles go in passes of Ts; per pass, V for its tiles first
// (shared, split by (channel, 16 tiles)), then work items (panel of 14 output channels, block of
// tiles): the thread gets the panel's raw filters, transforms them into its own Up (a*a points of
// one 14 x C panel), multiplies each point's panel into its block of V and output-transforms the
// panel's channels. A thread whose next item has the same panel keeps its Up. Per thread:
//   Up (a*a, 14 panel rows x C)   one panel's transformed filters, 458 KB for F(2x2) at C = 512
//   Mp (a*a, 14, block)           the panel's products for one block of tiles
// so no whole-layer U (a*a, K, C) is ever written. A packed layer used to make that U per call, and
// below ~128 tiles writing it and the GEMMs' reading it back cost as much as Winograd saved.


// Tiles per work item of the streamed forward: Mp stays at most 36 x 14 x 128 floats (258 KB).
constexpr int64_t kStreamedBlockTiles = 128;
// V holds the transformed input of at most this many floats (1 MiB, about a core's L2) of tiles at
// a time, and at least 128 tiles: large batches run in several passes, each transforming the
// panels again (a small cost at 128 tiles and more). Measured on packed 5-bit files, 2 threads,
// 2026-12-02, img/s with 2^16 / 2^18 / 2^21 floats, two rounds: VGG-16 batch 8 15.8, 15.1 / 15.8,
// 16.1 / 14.7, 14.7; ResNet-18 batch 8 79.3, 78.8 / 80.0, 78.0 / 77.8, 73.2; batch 1 and AlexNet
// alike within noise.
constexpr int64_t kStreamedInputFloats = int64_t{1} << 18;

template <int m>
void run_streamed(float* out, const float* in, const WinogradFilterPanel& filter_panel, const float* bias,
                  const Job& j) {
  constexpr int a = m + 2;
  constexpr int64_t points = a * a;
  const int64_t tile_rows = (j.OH + m - 1) / m, tile_cols = (j.OW + m - 1) / m;
  const int64_t T = j.N * tile_rows * tile_cols;
  const int64_t Ts = std::min(round_up_lanes(T), std::max(kStreamedBlockTiles, kStreamedInputFloats / (points * j.Cin) /
                                                                                     kLanes * kLanes));
  const int threads = omp_get_max_threads();
  const int64_t panels = panel_count(j.Kout);
  const int64_t v_stride = point_stride(j.Cin * Ts);
  float* V = thread_operand_workspace().floats(points * v_stride);
  const int64_t up_point = kPanelRows * j.Cin, up_floats = round_up_to_line(points * up_point);
  const int64_t mp_floats = points * point_stride(kPanelRows * kStreamedBlockTiles);
  const int64_t decoded_floats = round_up_to_line(kPanelRows * j.Cin * 9);
#pragma omp parallel
  {
    float* Up = thread_workspace().floats(up_floats + mp_floats + decoded_floats);
    float* Mp = Up + up_floats;
    float* decoded = Mp + mp_floats;
    int64_t held = -1;  // the panel in Up
    for (int64_t T0 = 0; T0 < T; T0 += Ts) {
      const int64_t ns = std::min(Ts, T - T0), chunks = round_up_lanes(ns) / kLanes;
      // Blocks of tiles per panel: enough to keep Mp at most 128 tiles wide, and at least four
      // items per thread where the panels alone are too few (ResNet's 64-channel layers have 5),
      // at the price of transforming a panel's filters once per thread that meets it.
      const int64_t blocks = std::clamp<int64_t>(
          std::max((chunks * kLanes + kStreamedBlockTiles - 1) / kStreamedBlockTiles,
                   (4 * threads + panels - 1) / panels),
          1, chunks);
      const int64_t block_chunks = (chunks + blocks - 1) / blocks, Tb = block_chunks * kLanes;
      const int64_t blocks_per_panel = (chunks + block_chunks - 1) / block_chunks;
      const int64_t mp_stride = point_stride(kPanelRows * Tb);
#pragma omp for schedule(static)
      for (int64_t q = 0; q < j.Cin * chunks; ++q) {
        const int64_t c = q / chunks, t = T0 + q % chunks * kLanes;
        input_chunk<m>(V, in, j, c, t, T0, std::min(kLanes, T0 + ns - t), tile_rows, tile_cols, Ts, v_stride);
      }
      // (the loop's barrier: V is complete before any GEMM reads it, and the next pass's input
      // transform waits for the last item below)
#pragma omp for schedule(static)
      for (int64_t item = 0; item < panels * blocks_per_panel; ++item) {
        const int64_t p = item / blocks_per_panel, k0 = p * kPanelRows, rows = std::min(kPanelRows, j.Kout - k0);
        if (p != held) {
          filter_panel(p, decoded);
          transform_filter_panel_layout<m>(Up, up_point, decoded, j.Cin);
          held = p;
        }
        const int64_t t0 = T0 + item % blocks_per_panel * Tb;  // < T0 + ns
        const int64_t nb = std::min(Tb, T0 + ns - t0), cols = round_up_lanes(nb);
        // Lanes past the pass's tiles are zero in V; computing them keeps the width a multiple of 16.
        for (int64_t xi = 0; xi < points; ++xi)
          panel_gemm_serial(Up + xi * up_point, rows, j.Cin, V + xi * v_stride + (t0 - T0), Ts, cols,
                            Mp + xi * mp_stride, Tb, nullptr);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t t = t0; t < t0 + nb; t += kLanes)
            output_chunk<m>(out, Mp, bias, j, k0 + r, t, t0, std::min(kLanes, t0 + nb - t), tile_rows, tile_cols, Tb,
                            mp_stride, false, r);
      }
    }
  }
}

// ---- weight gradient ----
// For one tile, the forward is y = A^T [(G w G^T) .* (B^T d B)] A, a bilinear map; the gradient of
// sum(e .* y) with respect to w (e: the tile's dy) is then
//   dw_tile = G^T [(A e A^T) .* (B^T d B)] G,
// exact in exact arithmetic, with the same three matrices. Summed over tiles, per transform point
// xi: Mw[xi] (K x C) = sum_t E[xi][k][t] V[xi][c][t], one (K x Tb) * (Tb x C) sgemm per point and
// block (beta = 1 after the first block), then dw[k][c] = G^T Mw[k][c] G.
//   E  (a*a, K, Tb)  transformed dy tiles of one block (dy beyond OH, OW is zero)
//   Mw (a*a, K, C)   accumulated over all blocks in block order

// E[xi][k][t - t0] for the lanes' tiles [t, t + count) of dy channel k (the output of Job j).
template <int m>
void dy_chunk(float* E, const float* dy, const Job& j, int64_t k, int64_t t, int64_t t0, int64_t count,
              int64_t tile_rows, int64_t tile_cols, int64_t lde, int64_t point_stride) {
  using T = Transform<m>;
  constexpr int a = T::a;
  alignas(64) float e[m * m][kLanes] = {};
  gather_patches<m, m>(e, Planes{dy, j.Kout, j.OH, j.OW, 0, 0}, k, t, count, tile_rows, tile_cols);
  if constexpr (m == 4) {
    two_sided_factored<a, m, GradientRule4>(e[0], kLanes, E + k * lde + (t - t0), point_stride);
  } else {
    two_sided_strided<a, m>(e[0], kLanes, E + k * lde + (t - t0), point_stride,
                            [](int r, int i) { return T::AT[i][r]; });  // A e A^T, A = AT^T
  }
}

// dw[f] for the filters f = k * C + c in [f0, f0 + count), count <= 16: G^T Mw[.][f] G, where Mw
// is the sum of `parts` partial sums part_stride floats apart, added in order.
template <int m>
void weight_grad_chunk(float* dw, const float* Mw, const Job& j, int64_t f0, int64_t count, bool accumulate,
                       int64_t parts = 1, int64_t part_stride = 0) {
  using T = Transform<m>;
  constexpr int a = T::a;
  const int64_t KC = j.Kout * j.Cin;
  v16 in[a * a], out[9];
  for (int p = 0; p < a * a; ++p) {
    alignas(64) float lanes[kLanes] = {};
    std::memcpy(lanes, Mw + p * KC + f0, static_cast<size_t>(count) * sizeof(float));
    for (int64_t part = 1; part < parts; ++part) {
      const float* src = Mw + part * part_stride + p * KC + f0;
      for (int64_t l = 0; l < count; ++l) lanes[l] += src[l];
    }
    std::memcpy(&in[p], lanes, sizeof(v16));
  }
  two_sided<3, a>(in, out, [](int r, int i) { return T::G[i][r]; });  // G^T Mw G
  alignas(64) float o[9][kLanes];
  std::memcpy(o, out, sizeof(o));
  for (int64_t l = 0; l < count; ++l)
    for (int i = 0; i < 9; ++i) {
      float& d = dw[(f0 + l) * 9 + i];
      d = accumulate ? d + o[i][l] : o[i][l];
    }
}

// One transform point's Mw (K x C) = E (K x cols) V^T (cols x C), or += with accumulate; E and V
// rows ld floats apart. On framework/dot_gemm.h's AVX-512 kernel: E and V both hold the tiles
// contiguous, as it wants, where sgemm packed both on each of these small calls (36 per block).
inline void point_weight_gemm(float* Mw, const float* E, const float* V, int64_t ld, const Job& j, int64_t cols,
                              bool accumulate) {
  if (dot_gemm_supported()) {
    dot_gemm(E, ld, V, ld, j.Kout, j.Cin, cols, Mw, j.Cin, accumulate);
  } else {
    sgemm(false, true, j.Kout, j.Cin, cols, 1.0f, E, ld, V, ld, accumulate ? 1.0f : 0.0f, Mw, j.Cin);
  }
}

template <int m>
void run_weight_grad(float* dw, const float* x, const float* dy, const Job& j, int64_t block_tiles,
                     bool accumulate) {
  constexpr int a = m + 2;
  constexpr int64_t points = a * a;
  const int64_t tile_rows = (j.OH + m - 1) / m, tile_cols = (j.OW + m - 1) / m;
  const int64_t T = j.N * tile_rows * tile_cols;
  const int64_t Tb = std::min(round_up_lanes(std::max<int64_t>(block_tiles, 1)), round_up_lanes(T));
  const int64_t mw_floats = round_up_to_line(points * j.Kout * j.Cin);
  const int64_t v_stride = point_stride(j.Cin * Tb), e_stride = point_stride(j.Kout * Tb);
  const int64_t v_floats = points * v_stride, e_floats = points * e_stride;
  float* Mw = thread_workspace().floats(mw_floats + v_floats + e_floats);
  float* V = Mw + mw_floats;
  float* E = V + v_floats;
  const auto chunks_of = [](int64_t nb) { return round_up_lanes(nb) / kLanes; };
  // Shared blocks only (see run): the sum over blocks then runs in block order for any thread
  // count, so dw is bit-identical across thread counts too.
#pragma omp parallel
  {
    for (int64_t t0 = 0; t0 < T; t0 += Tb) {
      const int64_t nb = std::min(Tb, T - t0), chunks = chunks_of(nb);
      // Each kind of transform split between the threads on its own (one barrier after both): an
      // input patch (6 x 6 values gathered) costs more than a dy tile (4 x 4), and one loop over
      // both kinds gave the first thread the input transforms and the second the dy ones. (Waiting
      // inside the weight gradient was 2.9% of a ResNet-20 step before; the step's A/B after the
      // split was within noise.)
#pragma omp for schedule(static) nowait
      for (int64_t q = 0; q < j.Cin * chunks; ++q) {
        const int64_t t = t0 + q % chunks * kLanes;
        input_chunk<m>(V, x, j, q / chunks, t, t0, std::min(kLanes, t0 + nb - t), tile_rows, tile_cols, Tb, v_stride);
      }
#pragma omp for schedule(static)
      for (int64_t q = 0; q < j.Kout * chunks; ++q) {
        const int64_t t = t0 + q % chunks * kLanes;
        dy_chunk<m>(E, dy, j, q / chunks, t, t0, std::min(kLanes, t0 + nb - t), tile_rows, tile_cols, Tb, e_stride);
      }
#pragma omp for schedule(static)
      for (int64_t xi = 0; xi < points; ++xi) {
        point_weight_gemm(Mw + xi * j.Kout * j.Cin, E + xi * e_stride, V + xi * v_stride, Tb, j, chunks * kLanes,
                          /*accumulate=*/t0 != 0);
      }
    }
    const int64_t filters = j.Kout * j.Cin;
#pragma omp for schedule(static)
    for (int64_t f0 = 0; f0 < filters; f0 += kLanes)
      weight_grad_chunk<m>(dw, Mw, j, f0, std::min(kLanes, filters - f0), accumulate);
  }
}

// The weight gradient on private partitions: the tiles are cut into `parts` ranges fixed by the
// geometry (whole 16-tile chunks), each range summed by one thread on its own V, E and partial Mw
// (blocks of at most block_tiles, in block order), and the partial sums added in partition order
// before the filter transform. Against the shared blocks above, no thread reads V or E that the
// other wrote (on ResNet-20's 16-channel layers the shared form ran slower on 2 threads than on 1:
// the GEMMs split by transform point read half of every block from the other core's cache) and
// there is no barrier inside the sum.
template <int m>
void run_weight_grad_partitioned(float* dw, const float* x, const float* dy, const Job& j, int64_t block_tiles,
                                 int64_t parts, bool accumulate) {
  constexpr int a = m + 2;
  constexpr int64_t points = a * a;
  const int64_t tile_rows = (j.OH + m - 1) / m, tile_cols = (j.OW + m - 1) / m;
  const int64_t T = j.N * tile_rows * tile_cols;
  const int64_t chunks_total = round_up_lanes(T) / kLanes;
  parts = std::clamp<int64_t>(parts, 1, chunks_total);
  const int64_t max_block_chunks = std::max<int64_t>(1, round_up_lanes(block_tiles) / kLanes);
  // Each partition's chunks split evenly into blocks of at most max_block_chunks: V and E rows of
  // that many tiles hold any block.
  const int64_t Tb = max_block_chunks * kLanes;
  const int64_t KC = j.Kout * j.Cin;
  const int64_t mw_floats = round_up_to_line(points * KC);
  const int64_t v_stride = point_stride(j.Cin * Tb), e_stride = point_stride(j.Kout * Tb);
  const int64_t ve_floats = points * (v_stride + e_stride);
  const int64_t copies = std::min<int64_t>(omp_get_max_threads(), parts);
  float* Mw = thread_workspace().floats(parts * mw_floats + copies * ve_floats);
  float* ve_base = Mw + parts * mw_floats;
#pragma omp parallel
  {
    // Only threads below `copies` get partitions from the static split below.
    float* V = ve_base + std::min<int64_t>(omp_get_thread_num(), copies - 1) * ve_floats;
    float* E = V + points * v_stride;
#pragma omp for schedule(static)
    for (int64_t part = 0; part < parts; ++part) {
      const ChunkRun part_chunks(part * chunks_total / parts, (part + 1) * chunks_total / parts, max_block_chunks);
      float* Mw_part = Mw + part * mw_floats;
      for (int64_t blk = 0; blk < part_chunks.blocks; ++blk) {
        const int64_t b0 = part_chunks.begin(blk), b1 = part_chunks.begin(blk + 1);
        const int64_t t0 = b0 * kLanes, nb = std::min(T, b1 * kLanes) - t0, chunks = b1 - b0;
        for (int64_t q = 0; q < j.Cin * chunks; ++q) {
          const int64_t t = t0 + q % chunks * kLanes;
          input_chunk<m>(V, x, j, q / chunks, t, t0, std::min(kLanes, t0 + nb - t), tile_rows, tile_cols, Tb,
                         v_stride);
        }
        for (int64_t q = 0; q < j.Kout * chunks; ++q) {
          const int64_t t = t0 + q % chunks * kLanes;
          dy_chunk<m>(E, dy, j, q / chunks, t, t0, std::min(kLanes, t0 + nb - t), tile_rows, tile_cols, Tb, e_stride);
        }
        for (int64_t xi = 0; xi < points; ++xi) {
          point_weight_gemm(Mw_part + xi * KC, E + xi * e_stride, V + xi * v_stride, Tb, j, chunks * kLanes,
                            /*accumulate=*/blk != 0);
        }
      }
    }
#pragma omp for schedule(static)
    for (int64_t f0 = 0; f0 < KC; f0 += kLanes)
      weight_grad_chunk<m>(dw, Mw, j, f0, std::min(kLanes, KC - f0), accumulate, parts, mw_floats);
  }
}

void dispatch(float* out, const float* in, const float* w, const float* bias, const Job& j,
              const WinogradConfig& config, int64_t block_tiles, bool accumulate) {
  INQ_CHECK(config.m == 2 || config.m == 4, "Given a Winograd tile of {}x{}, expected 2 or 4", config.m, config.m);
  if (config.m == 2) {
    run<2>(out, in, w, config.filters, config.filter_panels, bias, j, block_tiles, accumulate);
  } else {
    run<4>(out, in, w, config.filters, config.filter_panels, bias, j, block_tiles, accumulate);
  }
}

}  // namespace

int64_t winograd_block_tiles(const Conv2dGeometry& /*g*/, int /*m*/) {
  // 128 tiles: the best or within noise of it on every bench_conv shape (F(4x4), 2 threads, busy
  // machine, process CPU time, 2026-11-30; GFLOP/s forward at Tb = 64 / 128 / 256 / 512):
  //   r20 32c 14x14   71 / 78 / 76 / 71     r20 64c 7x7   90 / 92 / 72 / 79
  //   r50 128c 28x28 158 / 162 / 154 / 183  r50 256c 14x14 126 / 137 / 142 / 136
  // and a size-from-a-4-MiB-budget rule (64..896 tiles) was no better (r20 64c 7x7: 60, because
  // it left fewer blocks than 2 per thread). Small ResNet-20 layers then get >= 2 blocks per thread
  // and run on private blocks; for C = K = 512 V and M take 19 MB, no worse than im2col's columns.
  return 128;
}

void winograd_conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dGeometry& g,
                             const WinogradConfig& config, bool accumulate) {
  INQ_CHECK(winograd_supported(g), "Given the convolution {}, expected 3x3, stride 1, dilation 1, groups 1 and "
            "padding <= 2 for Winograd", g.str());
  const Job j{g.N, g.C, g.H, g.W, g.K, g.OH, g.OW, g.padding.h, g.padding.w, false};
  const int64_t tb = config.block_tiles > 0 ? config.block_tiles : winograd_block_tiles(g, config.m);
  dispatch(y, x, w, b, j, config, tb, accumulate);
}

int64_t winograd_tiles(const Conv2dGeometry& g, int m) { return g.N * ((g.OH + m - 1) / m) * ((g.OW + m - 1) / m); }

int64_t winograd_filter_floats(const Conv2dGeometry& g, int m) { return (m + 2) * (m + 2) * g.K * g.C; }

void winograd_transform_filters(float* U, const float* w, const Conv2dGeometry& g, int m) {
  winograd_transform_filter_range(U, w, g, m, 0, g.K * g.C);
}

bool winograd_filter_panels_supported() { return panel_gemm_supported(); }

int64_t winograd_filter_panel_floats(const Conv2dGeometry& g, int m) { return (m + 2) * (m + 2) * panel_floats(g.K, g.C); }

void winograd_pack_filter_panels(float* Up, const float* U, const Conv2dGeometry& g, int m) {
  for (int64_t xi = 0; xi < (m + 2) * (m + 2); ++xi)
    pack_panels(Up + xi * panel_floats(g.K, g.C), U + xi * g.K * g.C, g.C, g.K, g.C);
}

void winograd_conv2d_forward_streamed(float* y, const float* x, const WinogradFilterPanel& filter_panel, const float* b,
                                      const Conv2dGeometry& g, int m) {
  INQ_CHECK(winograd_supported(g), "Given the convolution {}, expected 3x3, stride 1, dilation 1, groups 1 and "
            "padding <= 2 for Winograd", g.str());
  INQ_CHECK(m == 2 || m == 4, "Given a Winograd tile of {}x{}, expected 2 or 4", m, m);
  INQ_CHECK(winograd_filter_panels_supported(), "Given a streamed Winograd forward, expected a build with the "
            "AVX-512 panel kernel (check winograd_filter_panels_supported() first)");
  const Job j{g.N, g.C, g.H, g.W, g.K, g.OH, g.OW, g.padding.h, g.padding.w, false};
  if (m == 2) {
    run_streamed<2>(y, x, filter_panel, b, j);
  } else {
    run_streamed<4>(y, x, filter_panel, b, j);
  }
}

void winograd_transform_filter_range(float* U, const float* w_part, const Conv2dGeometry& g, int m, int64_t f_begin,
                                     int64_t f_end) {
  INQ_CHECK(winograd_supported(g), "Given the convolution {}, expected 3x3, stride 1, dilation 1, groups 1 and "
            "padding <= 2 for Winograd", g.str());
  INQ_CHECK(m == 2 || m == 4, "Given a Winograd tile of {}x{}, expected 2 or 4", m, m);
  INQ_CHECK(0 <= f_begin && f_begin <= f_end && f_end <= g.K * g.C,
            "Given the filter range [{}, {}), expected one inside [0, {}) (K * C filters)", f_begin, f_end, g.K * g.C);
  const Job j{g.N, g.C, g.H, g.W, g.K, g.OH, g.OW, g.padding.h, g.padding.w, false};
  // Serial for small ranges: a panel decoded between two of them is cheaper than waking the team.
#pragma omp parallel for schedule(static) if (f_end - f_begin >= 4096)
  for (int64_t f0 = f_begin; f0 < f_end; f0 += kLanes) {
    if (m == 2) {
      weight_chunk<2>(U, w_part, j, f0, std::min(kLanes, f_end - f0), f_begin);
    } else {
      weight_chunk<4>(U, w_part, j, f0, std::min(kLanes, f_end - f0), f_begin);
    }
  }
}

void winograd_conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dGeometry& g,
                                   const WinogradConfig& config, bool accumulate) {
  INQ_CHECK(winograd_supported(g), "Given the convolution {}, expected 3x3, stride 1, dilation 1, groups 1 and "
            "padding <= 2 for Winograd", g.str());
  INQ_CHECK(config.filters == nullptr && config.filter_panels == nullptr,
            "Given transformed filters for a Winograd input gradient, expected none (they are the "
            "forward's; the input gradient transforms the flipped, transposed weight)");
  // dx = conv(dy, w') with padding 2 - pad: output size OH + 2*(2 - pad) - 2 = H.
  const Job j{g.N, g.K, g.OH, g.OW, g.C, g.H, g.W, 2 - g.padding.h, 2 - g.padding.w, true};
  const int64_t tb = config.block_tiles > 0 ? config.block_tiles : winograd_block_tiles(g, config.m);
  dispatch(dx, dy, w, nullptr, j, config, tb, accumulate);
}

void winograd_conv2d_backward_weight(float* dw, const float* x, const float* dy, const Conv2dGeometry& g,
                                     const WinogradConfig& config, bool accumulate) {
  INQ_CHECK(winograd_supported(g), "Given the convolution {}, expected 3x3, stride 1, dilation 1, groups 1 and "
            "padding <= 2 for Winograd", g.str());
  INQ_CHECK(config.m == 2 || config.m == 4, "Given a Winograd tile of {}x{}, expected 2 or 4", config.m, config.m);
  const Job j{g.N, g.C, g.H, g.W, g.K, g.OH, g.OW, g.padding.h, g.padding.w, false};
  INQ_CHECK(config.weight_partitions >= 0, "Given {} weight-gradient partitions, expected 0 (automatic) or more",
            config.weight_partitions);
  const int64_t tb = config.block_tiles > 0 ? config.block_tiles : winograd_weight_block_tiles(g, config.m);
  const int64_t parts =
      config.weight_partitions > 0 ? config.weight_partitions : winograd_weight_partitions(g, config.m);
  if (parts > 1) {
    if (config.m == 2) {
      run_weight_grad_partitioned<2>(dw, x, dy, j, tb, parts, accumulate);
    } else {
      run_weight_grad_partitioned<4>(dw, x, dy, j, tb, parts, accumulate);
    }
  } else if (config.m == 2) {
    run_weight_grad<2>(dw, x, dy, j, tb, accumulate);
  } else {
    run_weight_grad<4>(dw, x, dy, j, tb, accumulate);
  }
}

// Layers with at most this many filters (K * C) take the weight gradient on private partitions.
constexpr int64_t kPartitionedMaxFilters = 64 * 64;

int64_t winograd_weight_partitions(const Conv2dGeometry& g, int m) {
  // Private partitions where the filters are few (K * C <= 64 * 64): there the transforms are most
  // of the work and the partial sums (36 * K * C floats each) are small. One partition per 256
  // tiles, 2 to 8. Layers with more filters (ResNet-50's 512-channel ones: 36 MB per partial sum)
  // keep the shared blocks, which split their large GEMMs instead.
  if (g.K * g.C > kPartitionedMaxFilters) return 1;
  return std::clamp<int64_t>(winograd_tiles(g, m) / 256, 2, 8);
}

int64_t winograd_weight_block_tiles(const Conv2dGeometry& g, int /*m*/) {
  // The block is the GEMMs' inner size here, and Mw is read and written once per block.
  // Layers on private partitions (K * C <= 64 * 64, winograd_weight_partitions): 128 tiles, so that
  // one transform point's E and V rows (16 + 16 channels x 128 tiles = 16 KB) stay in L1 while the
  // dot-product kernel passes over them 4 rows at a time; at 512 tiles they came from L2, which on
  // 16 channels cannot feed the kernel's 8 loads per 16 FMAs. bench_conv WinogradBackwardWeight,
  // F(4x4), Intel Xeon (AVX-512, 48 KB L1d), 2026-12-03, ms at Tb = 128 / 256 / 512 / 1024:
  //   1 thread:  r20 16c 4.27 / 4.37 / 4.61 / 5.27   r20 32c 3.69 / 4.24 / 4.61 / 5.02
  //              r20 64c 4.27 / 4.05 / 4.46 / 4.16   r50 64c 56x56 12.6 / 12.7 / 13.9 / -
  //   2 threads: r20 16c 2.28 / 3.19 / 3.64 / 2.70   r20 32c 2.25 / 2.28 / 2.56 / 2.76
  // Larger layers keep the shared blocks, where wider blocks won up to ~512 tiles (2 threads, AMD
  // EPYC, 2026-11-30; GFLOP/s at Tb = 128 / 256 / 512 / 1024):
  //   r50 128c 28x28 144 / 165 / 176 / 177   r50 256c 14x14 155 / 150 / 147 / 150
  //   r50 512c 7x7   113 / 111 / 111 / 109
  return g.K * g.C <= kPartitionedMaxFilters ? 128 : 512;
}

// ---- naive references ----

void conv2d_forward_naive(float* y, const float* x, const float* w, const float* b, const Conv2dGeometry& g) {
  INQ_CHECK(g.groups == 1, "Given {}, expected groups 1 for the naive reference", g.str());
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          double s = b ? b[k] : 0.0;
          for (int64_t c = 0; c < g.C; ++c)
            for (int64_t r = 0; r < g.R; ++r)
              for (int64_t q = 0; q < g.S; ++q) {
                const int64_t ih = oh * g.stride.h - g.padding.h + r * g.dilation.h;
                const int64_t iw = ow * g.stride.w - g.padding.w + q * g.dilation.w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                s += static_cast<double>(x[((n * g.C + c) * g.H + ih) * g.W + iw]) *
                     w[((k * g.C + c) * g.R + r) * g.S + q];
              }
          y[((n * g.K + k) * g.OH + oh) * g.OW + ow] = static_cast<float>(s);
        }
}

void conv2d_backward_data_naive(float* dx, const float* dy, const float* w, const Conv2dGeometry& g) {
  INQ_CHECK(g.groups == 1, "Given {}, expected groups 1 for the naive reference", g.str());
  std::vector<double> acc(static_cast<size_t>(g.N * g.C * g.H * g.W), 0.0);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const double d = dy[((n * g.K + k) * g.OH + oh) * g.OW + ow];
          for (int64_t c = 0; c < g.C; ++c)
            for (int64_t r = 0; r < g.R; ++r)
              for (int64_t q = 0; q < g.S; ++q) {
                const int64_t ih = oh * g.stride.h - g.padding.h + r * g.dilation.h;
                const int64_t iw = ow * g.stride.w - g.padding.w + q * g.dilation.w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                acc[static_cast<size_t>(((n * g.C + c) * g.H + ih) * g.W + iw)] +=
                    d * w[((k * g.C + c) * g.R + r) * g.S + q];
              }
        }
  for (size_t i = 0; i < acc.size(); ++i) dx[i] = static_cast<float>(acc[i]);
}

void conv2d_backward_weight_naive(float* dw, const float* x, const float* dy, const Conv2dGeometry& g) {
  INQ_CHECK(g.groups == 1, "Given {}, expected groups 1 for the naive reference", g.str());
  for (int64_t k = 0; k < g.K; ++k)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t r = 0; r < g.R; ++r)
        for (int64_t q = 0; q < g.S; ++q) {
          double s = 0.0;
          for (int64_t n = 0; n < g.N; ++n)
            for (int64_t oh = 0; oh < g.OH; ++oh)
              for (int64_t ow = 0; ow < g.OW; ++ow) {
                const int64_t ih = oh * g.stride.h - g.padding.h + r * g.dilation.h;
                const int64_t iw = ow * g.stride.w - g.padding.w + q * g.dilation.w;
                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
                s += static_cast<double>(dy[((n * g.K + k) * g.OH + oh) * g.OW + ow]) *
                     x[((n * g.C + c) * g.H + ih) * g.W + iw];
              }
          dw[((k * g.C + c) * g.R + r) * g.S + q] = static_cast<float>(s);
        }
}

}  // namespace inq
