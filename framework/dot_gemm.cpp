#include "framework/dot_gemm.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "framework/error.h"

namespace inq {

namespace {

constexpr int64_t kLanes = 16;
constexpr int kBlock = 4;  // rows of A and of B per block: 16 accumulators

#if defined(__AVX512F__)
// lane q of the result = the sum of v[q]'s 16 lanes, by one fixed tree (15 adds): neighbouring
// accumulators are interleaved and added pairwise, first inside each 128-bit chunk, then across
// chunks, so that every add combines two registers' worth of partial sums.
inline __m512 reduce_16_accumulators(const __m512 v[16]) {
  __m512 x[8], y[4], z[2];
  for (int j = 0; j < 8; ++j)  // per chunk: [v0 + v2, w0 + w2, v1 + v3, w1 + w3] of (v, w) = v[2j], v[2j+1]
    x[j] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * j], v[2 * j + 1]), _mm512_unpackhi_ps(v[2 * j], v[2 * j + 1]));
  for (int j = 0; j < 4; ++j)  // per chunk: the chunk's sums of v[4j .. 4j + 3]
    y[j] = _mm512_add_ps(_mm512_shuffle_ps(x[2 * j], x[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(x[2 * j], x[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int j = 0; j < 2; ++j)  // chunks: [y0 (0+1), y0 (2+3), y1 (0+1), y1 (2+3)] of (y0, y1) = y[2j], y[2j+1]
    z[j] = _mm512_add_ps(_mm512_shuffle_f32x4(y[2 * j], y[2 * j + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(y[2 * j], y[2 * j + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  // chunk j: the totals of v[4j .. 4j + 3]
  return _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(z[0], z[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

// The sum of v's 16 lanes by a fixed tree (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized).
inline float reduce_accumulator(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_cvtss_f32(v);
}

// C[r][c] (+)= A row r . B row c for r < R, c < NC, over k in [k0, k1) of the rows' K values.
// A block may run in slices of k (k0 and k1 multiples of 16 but for k1 = K): `carried` then holds
// its R * NC accumulators from one slice to the next (read when k0 > 0, written when k1 < K), and C
// is written by the last slice. Each lane adds the same products in the same order either way, so
// slicing changes no bit.
template <int R, int NC>
void dot_block(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t K, float* C, int64_t ldc,
               bool accumulate, int64_t k0, int64_t k1, float* carried) {
  // Plain unrolled loops (no lambda, no pointer to acc inside the loop): GCC then keeps the
  // accumulators in registers, where a lambda capturing them made it store all 16 every step.
  __m512 acc[R][NC];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_setzero_ps();
  if (k0 > 0) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_load_ps(carried + (r * NC + c) * kLanes);
  }
  int64_t k = k0;
  __mmask16 mask = static_cast<__mmask16>(0xFFFF);
  for (;;) {
    if (k + kLanes > k1) {
      if (k >= k1) break;
      mask = static_cast<__mmask16>((1u << (k1 - k)) - 1u);  // the last, partial vector (k1 = K)
    }
    __m512 a[R], b[NC];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) a[r] = _mm512_maskz_loadu_ps(mask, A + r * lda + k);
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) b[c] = _mm512_maskz_loadu_ps(mask, B + c * ldb + k);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_fmadd_ps(a[r], b[c], acc[r][c]);
    k += kLanes;
  }
  if (k1 < K) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) _mm512_store_ps(carried + (r * NC + c) * kLanes, acc[r][c]);
    return;
  }
  alignas(64) float sums[kLanes];
  if constexpr (R == kBlock && NC == kBlock) {
    const __m512 v[16] = {acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1], acc[1][2], acc[1][3],
                          acc[2][0], acc[2][1], acc[2][2], acc[2][3], acc[3][0], acc[3][1], acc[3][2], acc[3][3]};
    _mm512_store_ps(sums, reduce_16_accumulators(v));
  } else {
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < NC; ++c) sums[r * NC + c] = reduce_accumulator(acc[r][c]);
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < NC; ++c) {
      float& out = C[r * ldc + c];
      out = accumulate ? out + sums[r * NC + c] : sums[r * NC + c];
    }
}

using BlockFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t, bool, int64_t,
                        int64_t, float*);

template <int R>
BlockFn block_for_columns(int64_t nc) {
  switch (nc) {
    case 1: return dot_block<R, 1>;
    case 2: return dot_block<R, 2>;
    case 3: return dot_block<R, 3>;
    default: return dot_block<R, 4>;
  }
}

BlockFn block_for(int64_t rows, int64_t cols) {
  switch (rows) {
    case 1: return block_for_columns<1>(cols);
    case 2: return block_for_columns<2>(cols);
    case 3: return block_for_columns<3>(cols);
    default: return block_for_columns<4>(cols);
  }
}

// Rows [0, M) of A against rows [0, N) of B in 4 x 4 blocks, in slices of kc values of k (kc a
// multiple of 16, or K for one slice): each slice passes over every block of the tile while the
// slice's rows stay in L2, the blocks' accumulators carried in between (`carried`: 64-byte aligned,
// 256 floats per 4 x 4 block of C; unused, and may be null, with one slice). The first slice always
// runs, so K = 0 still writes C.
void dot_tile(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float* C,
              int64_t ldc, bool accumulate, int64_t kc, float* carried) {
  const int64_t col_blocks = (N + kBlock - 1) / kBlock;
  for (int64_t k0 = 0;; k0 += kc) {
    const int64_t k1 = std::min(K, k0 + kc);
    for (int64_t i = 0; i < M; i += kBlock) {
      const int64_t rows = std::min<int64_t>(kBlock, M - i);
      for (int64_t j = 0; j < N; j += kBlock) {
        float* state = kc < K ? carried + (i / kBlock * col_blocks + j / kBlock) * kBlock * kBlock * kLanes : nullptr;
        block_for(rows, std::min<int64_t>(kBlock, N - j))(A + i * lda, lda, B + j * ldb, ldb, K, C + i * ldc + j, ldc,
                                                          accumulate, k0, k1, state);
      }
    }
    if (k1 >= K) break;
  }
}
#endif

void check_sizes(const char* function, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  INQ_CHECK(M >= 0 && N >= 0 && K >= 0 && lda >= K && ldb >= K && ldc >= N,
            "Given {} of M={} N={} K={} with lda={} ldb={} ldc={}, expected non-negative sizes and strides at least "
            "the row lengths",
            function, M, N, K, lda, ldb, ldc);
}

}  // namespace

bool dot_gemm_supported() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

void dot_gemm(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float* C,
              int64_t ldc, bool accumulate) {
  check_sizes("dot_gemm", M, N, K, lda, ldb, ldc);
#if defined(__AVX512F__)
  dot_tile(A, lda, B, ldb, M, N, K, C, ldc, accumulate, K, nullptr);
#else
  (void)A, (void)B, (void)C, (void)accumulate;
  throw Error("dot_gemm needs a build with AVX-512 (check dot_gemm_supported() first)");
#endif
}

void dot_gemm_parallel(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K,
                       float* C, int64_t ldc, bool accumulate) {
  INQ_CHECK(dot_gemm_supported(), "dot_gemm_parallel needs a build with AVX-512 (check dot_gemm_supported() first)");
  check_sizes("dot_gemm_parallel", M, N, K, lda, ldb, ldc);
#if defined(__AVX512F__)
  // Tile edges at multiples of the 4 x 4 block: the tiles cut C into the blocks one call would use.
  // Up to kSliceMaxK values of k, a tile is up to 64 rows of A by as many rows of B as fit in 256
  // KiB, its blocks run whole. Longer rows (a 1x1 layer's weight gradient over a batch of 56x56
  // images: 25,088 values) would leave 4 rows of B per tile, and every block would stream its 8
  // rows from beyond L2; there a tile is 64 x 32 rows, run in slices of kSlice values of k (384 KiB
  // of rows, plus 128 KiB of carried accumulators).
  constexpr int64_t kTileBytes = int64_t{256} << 10, kTileRows = 64;
  constexpr int64_t kSliceMaxK = 2048, kSlice = 1024, kSlicedTileRowsB = 32;
  const bool sliced = K > kSliceMaxK;
  const int64_t b_rows =
      sliced ? kSlicedTileRowsB
             : std::max<int64_t>(kBlock, std::min<int64_t>(kTileRows, kTileBytes / (std::max<int64_t>(K, 1) * 4) /
                                                                          kBlock * kBlock));
  const int64_t row_tiles = (M + kTileRows - 1) / kTileRows, col_tiles = (N + b_rows - 1) / b_rows;
  const int64_t tiles = row_tiles * col_tiles;
  constexpr int64_t kCarriedFloats = (kTileRows / kBlock) * (kSlicedTileRowsB / kBlock) * kBlock * kBlock * kLanes;
  // Column tiles outermost: consecutive tiles of one thread share their rows of B.
#pragma omp parallel if (tiles > 1 && M * N * K >= (int64_t{1} << 20))
  {
    // Each thread's carried accumulators, kept from call to call (128 KiB, allocated once), at a
    // 64-byte boundary of the buffer.
    static thread_local std::vector<float> carried_buffer;
    if (sliced && carried_buffer.empty()) carried_buffer.resize(kCarriedFloats + kLanes);
    float* carried = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(carried_buffer.data()) + 63) &
                                              ~uintptr_t{63});
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t i0 = t % row_tiles * kTileRows, j0 = t / row_tiles * b_rows;
      const int64_t rows = std::min(kTileRows, M - i0), cols = std::min(b_rows, N - j0);
      dot_tile(A + i0 * lda, lda, B + j0 * ldb, ldb, rows, cols, K, C + i0 * ldc + j0, ldc, accumulate,
               sliced ? kSlice : K, carried);
    }
  }
#else
  (void)A, (void)lda, (void)B, (void)ldb, (void)M, (void)N, (void)K, (void)C, (void)ldc, (void)accumulate;
#endif
}

void dot_gemm_reference(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K,
                        float* C, int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[i * lda + k]) * B[j * ldb + k];
      float& out = C[i * ldc + j];
      out = accumulate ? out + static_cast<float>(s) : static_cast<float>(s);
    }
}

}  // namespace inq
