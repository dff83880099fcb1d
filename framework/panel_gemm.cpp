#include "framework/panel_gemm.h"

#include <algorithm>
#include <array>
#include <utility>

#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "framework/error.h"
#include "framework/workspace.h"

namespace inq {

namespace {

constexpr int64_t kLanes = 16;

#if defined(__AVX512F__)
// Where row k of B starts: B + k * ldb (a matrix), or rows[k] + offset (a table of rows, for a
// convolution read in place: row k of its lowered matrix is a run of one padded input row).
struct MatrixRows {
  const float* B;
  int64_t ldb;
  const float* row(int64_t k) const { return B + k * ldb; }
  MatrixRows columns_from(int64_t t) const { return {B + t, ldb}; }
};
struct TableRows {
  const float* const* rows;
  int64_t offset;
  const float* row(int64_t k) const { return rows[k] + offset; }
  TableRows columns_from(int64_t t) const { return {rows, offset + t}; }
};

// The first R rows of one panel times NV * 16 columns of B; with kMasked the last vector of columns
// is loaded and stored through `mask`. The accumulators are NV * R registers (28 of the 32 for
// NV = 2 and a full panel), which is why the panel has 14 rows. A layer's last panel often holds
// fewer (16 output channels: 14 + 2): it runs with R = its rows, not over zero rows, so a 16-row
// product costs 16 rows of FMAs instead of 28. Each row's sum is the same either way.
template <int R, int NV, bool kMasked, class Rows>
void panel_tile(const float* ap, const Rows& B, int64_t K, float* C, int64_t ldc, const float* bias, __mmask16 mask) {
  __m512 acc[R][NV];
#pragma GCC unroll 14
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B.row(k);
    __m512 v[NV];
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j)
      v[j] = (kMasked && j == NV - 1) ? _mm512_maskz_loadu_ps(mask, b + j * kLanes) : _mm512_loadu_ps(b + j * kLanes);
    const float* a = ap + k * kPanelRows;
#pragma GCC unroll 14
    for (int r = 0; r < R; ++r) {
      const __m512 w = _mm512_set1_ps(a[r]);
#pragma GCC unroll 2
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(w, v[j], acc[r][j]);
    }
  }
#pragma GCC unroll 14
  for (int r = 0; r < R; ++r) {
    const __m512 add = _mm512_set1_ps(bias ? bias[r] : 0.0f);
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) {
      // Adding 0.0f leaves every sum as it is (including -0.0 + 0.0 -> 0.0, as the reference does).
      const __m512 out = bias ? _mm512_add_ps(acc[r][j], add) : acc[r][j];
      if (kMasked && j == NV - 1) {
        _mm512_mask_storeu_ps(C + r * ldc + j * kLanes, mask, out);
      } else {
        _mm512_storeu_ps(C + r * ldc + j * kLanes, out);
      }
    }
  }
}

// The first R rows of one panel times columns [0, N) of B.
template <int R, class Rows>
void panel_rows_times_columns(const float* ap, int64_t K, const Rows& B, int64_t N, float* C, int64_t ldc,
                              const float* bias) {
  int64_t t = 0;
  for (; t + 2 * kLanes <= N; t += 2 * kLanes)
    panel_tile<R, 2, false>(ap, B.columns_from(t), K, C + t, ldc, bias, 0);
  if (t + kLanes <= N) {
    panel_tile<R, 1, false>(ap, B.columns_from(t), K, C + t, ldc, bias, 0);
    t += kLanes;
  }
  if (t < N) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (N - t)) - 1u);
    panel_tile<R, 1, true>(ap, B.columns_from(t), K, C + t, ldc, bias, mask);
  }
}

template <class Rows>
using PanelColumnsFn = void (*)(const float*, int64_t, const Rows&, int64_t, float*, int64_t, const float*);

template <class Rows, std::size_t... R>
constexpr std::array<PanelColumnsFn<Rows>, sizeof...(R)> panel_columns_table(std::index_sequence<R...>) {
  return {&panel_rows_times_columns<static_cast<int>(R) + 1, Rows>...};
}
// kPanelColumns<Rows>[rows - 1]: the kernel for a panel with `rows` rows stored.
template <class Rows>
constexpr auto kPanelColumns = panel_columns_table<Rows>(std::make_index_sequence<kPanelRows>());

// One panel (its first `rows` rows, 1..14) times columns [0, N) of B.
template <class Rows>
void panel_times_columns(const float* ap, int64_t rows, int64_t K, const Rows& B, int64_t N, float* C, int64_t ldc,
                         const float* bias) {
  kPanelColumns<Rows>[rows - 1](ap, K, B, N, C, ldc, bias);
}
#endif

void require_kernel() {
  INQ_CHECK(panel_gemm_supported(), "Given a panel GEMM, expected a build with AVX-512 (panel_gemm_supported)");
}

// Columns per block: K x block floats of B fill at most half of a 1 MiB L2 (this machine's per-core
// L2), a multiple of 32, at least 32.
int64_t column_block(int64_t K, int64_t N) {
  const int64_t budget = (int64_t{1} << 17) / std::max<int64_t>(K, 1);
  return std::min(N, std::max<int64_t>(2 * kLanes, budget / (2 * kLanes) * (2 * kLanes)));
}

// The items (block of columns, panel) [begin, end) of one thread, in block-major order.
struct ItemRange {
  int64_t begin, end;
};

// Cuts the items into `threads` contiguous runs of about equal cost instead of equal count: an item
// costs (rows of its panel + 2) x (16-column vectors of its block), the +2 for the loads of B each
// step makes whatever the rows. An equal count left one thread idle for a quarter of the call
// whenever the last block or panel is short: at N = 196, K = 1024 the blocks are 128 and 68
// columns, so with 2 threads one took 128 columns and the other 68 (80% of twice one thread's speed);
// at N = 784, K = 512 one took 512 columns and the other 272.
ItemRange balanced_items(int64_t M, int64_t N, int64_t block, int thread, int threads) {
  const int64_t panels = panel_count(M), blocks = (N + block - 1) / block;
  const auto cost = [&](int64_t item) {
    const int64_t blk = item / panels, p = item % panels;
    const int64_t rows = std::min(kPanelRows, M - p * kPanelRows), cols = std::min(block, N - blk * block);
    return (rows + 2) * ((cols + kLanes - 1) / kLanes);
  };
  const int64_t items = blocks * panels;
  int64_t total = 0;
  for (int64_t item = 0; item < items; ++item) total += cost(item);
  // Thread t takes the items whose cost-prefix midpoint falls in [t, t+1) * total / threads.
  ItemRange range{items, items};
  int64_t before = 0;
  bool started = false;
  for (int64_t item = 0; item < items; ++item) {
    const int64_t c = cost(item);
    const int64_t owner = std::min<int64_t>(threads - 1, (2 * before + c) * threads / (2 * total));
    if (owner == thread && !started) {
      range.begin = item;
      started = true;
    }
    if (owner > thread) {
      range.end = item;
      break;
    }
    before += c;
  }
  if (!started) range.begin = range.end = items;
  return range;
}

// Below this many multiply-adds one thread beats waking the team.
constexpr int64_t kMinParallelMacs = int64_t{1} << 19;

}  // namespace

bool panel_gemm_supported() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

void pack_panels_strided(float* Ap, const float* A, int64_t row_stride, int64_t col_stride, int64_t M, int64_t K) {
#pragma omp parallel for schedule(static) if (M * K >= (int64_t{1} << 18))
  for (int64_t p = 0; p < panel_count(M); ++p) {
    float* dst = Ap + p * K * kPanelRows;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t r = 0; r < kPanelRows; ++r) {
        const int64_t i = p * kPanelRows + r;
        dst[k * kPanelRows + r] = i < M ? A[i * row_stride + k * col_stride] : 0.0f;
      }
  }
}

void pack_panels(float* Ap, const float* A, int64_t lda, int64_t M, int64_t K) {
  pack_panels_strided(Ap, A, lda, 1, M, K);
}

void panel_gemm_serial(const float* Ap, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N, float* C,
                       int64_t ldc, const float* bias) {
  require_kernel();
#if defined(__AVX512F__)
  for (int64_t p = 0; p < panel_count(M); ++p)
    panel_times_columns(Ap + p * K * kPanelRows, std::min(kPanelRows, M - p * kPanelRows), K, MatrixRows{B, ldb}, N,
                        C + p * kPanelRows * ldc, ldc, bias ? bias + p * kPanelRows : nullptr);
#else
  (void)Ap, (void)M, (void)K, (void)B, (void)ldb, (void)N, (void)C, (void)ldc, (void)bias;
#endif
}

void panel_gemm_rows_serial(const float* Ap, int64_t M, int64_t K, const float* const* rows, int64_t offset,
                            int64_t N, float* C, int64_t ldc, const float* bias) {
  require_kernel();
#if defined(__AVX512F__)
  for (int64_t p = 0; p < panel_count(M); ++p)
    panel_times_columns(Ap + p * K * kPanelRows, std::min(kPanelRows, M - p * kPanelRows), K,
                        TableRows{rows, offset}, N, C + p * kPanelRows * ldc, ldc,
                        bias ? bias + p * kPanelRows : nullptr);
#else
  (void)Ap, (void)M, (void)K, (void)rows, (void)offset, (void)N, (void)C, (void)ldc, (void)bias;
#endif
}

void panel_gemm(const PanelSource& panel, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N, float* C,
                int64_t ldc, const float* bias) {
  require_kernel();
  if (M <= 0 || N <= 0) return;
#if defined(__AVX512F__)
  // The columns are cut into blocks that stay in a core's L2 while every panel passes over them;
  // items in block-major order, so a thread's items share one or two blocks of B. A panel is
  // fetched (decoded) once per block it meets: decoding costs about 5% of multiplying it into a
  // block, while going panel-major (each panel fetched once, B streamed from L3 once per panel)
  // made ResNet-18's 28x28 layers at batch 1 run at 195 instead of 350 GFLOP/s.
  const int64_t panels = panel_count(M), block = column_block(K, N);
#pragma omp parallel if (M * N * K >= kMinParallelMacs)
  {
    thread_local Workspace scratch_space;  // the decoding buffer of a PanelSource, one per thread
    float* scratch = scratch_space.floats(kPanelRows * std::max<int64_t>(K, 1));
    const ItemRange range = balanced_items(M, N, block, omp_get_thread_num(), omp_get_num_threads());
    int64_t fetched = -1;
    const float* ap = nullptr;
    for (int64_t item = range.begin; item < range.end; ++item) {
      const int64_t blk = item / panels, p = item % panels, c0 = blk * block;
      if (p != fetched) {  // consecutive items share a panel only when there are more threads than panels
        ap = panel(p, scratch);
        fetched = p;
      }
      panel_times_columns(ap, std::min(kPanelRows, M - p * kPanelRows), K, MatrixRows{B + c0, ldb},
                          std::min(block, N - c0), C + p * kPanelRows * ldc + c0, ldc,
                          bias ? bias + p * kPanelRows : nullptr);
    }
  }
#else
  (void)panel, (void)K, (void)B, (void)ldb, (void)C, (void)ldc, (void)bias;
#endif
}

void panel_gemm(const float* Ap, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N, float* C,
                int64_t ldc, const float* bias) {
  panel_gemm([&](int64_t p, float*) { return Ap + p * K * kPanelRows; }, M, K, B, ldb, N, C, ldc, bias);
}

void panel_gemm_reference(const float* A, int64_t lda, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N,
                          float* C, int64_t ldc, const float* bias) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[i * lda + k]) * B[k * ldb + j];
      C[i * ldc + j] = static_cast<float>(s + (bias ? bias[i] : 0.0));
    }
}

}  // namespace inq
