#include "inq/packed_matrix.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "framework/error.h"
#include "framework/gemm.h"
#include "framework/workspace.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
// GCC 12's own intrinsic headers start masked operations from _mm512_undefined_*() values, which it
// then reports as "may be used uninitialized" in every function that inlines them: a known false
// positive (GCC bug 105593), silenced for this file only (clang has no such warning group).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define INQ_PACKED_AVX512 1
#else
#define INQ_PACKED_AVX512 0
#endif

namespace inq {

namespace {

constexpr int64_t kLanes = 16;  // floats per AVX-512 vector, and 32-bit lanes per 64-byte block
// Below this many weights one thread decodes faster than waking the team.
constexpr int64_t kMinParallelWeights = int64_t(1) << 16;
constexpr int64_t kMinParallelDecode = int64_t(1) << 21;
// Batches up to this size run the GEMV kernels; larger ones the panel + sgemm path.
constexpr int64_t kMaxGemvBatch = 8;
// The widest codes that get the lanes layout (the table then fits in two vector registers).
constexpr int kMaxLanesBits = 5;

#if INQ_PACKED_AVX512
// ---- lanes layout (b = 2..5) ----------------------------------------------------------------------
// The two table registers: for b <= 4 entry i of t0 is the value of code i mod 2^b (the permute reads
// 4 index bits, of which only the low b are the code); for b = 5 t0 and t1 hold codes 0..15 and 16..31.
struct LaneTables {
  __m512 t0, t1;
  LaneTables(int b, const float* table) {
    alignas(64) float periodic[16];
    for (int i = 0; i < 16; ++i) periodic[i] = table[i & ((1 << std::min(b, 4)) - 1)];
    t0 = _mm512_load_ps(periodic);
    t1 = _mm512_loadu_ps(table + 16);
  }
};

template <int kBits>
inline __m512 lane_values(__m512i block, int k, const LaneTables& t) {
  const __m512i idx = _mm512_srli_epi32(block, static_cast<unsigned>(k * kBits));
  if constexpr (kBits <= 4) {
    return _mm512_permutexvar_ps(idx, t.t0);
  } else {
    return _mm512_permutex2var_ps(t.t0, idx, t.t1);  // reads the low 5 bits: exactly the code
  }
}

// Rows [r0, r1) of y (N, rows) for N = kBatch images, kRows rows at a time so that kRows * kBatch
// independent accumulators hide the FMA latency; each 16 weights are decoded once per row and used
// for every image. x is (kBatch, ldx), zero-padded to the padded columns (padding codes mean 0).
template <int kBits, int kBatch, int kRows>
void lanes_gemv(const LaneTables& t, const uint8_t* codes, int64_t row_bytes, int64_t blocks, const float* x,
                int64_t ldx, int64_t r0, int64_t r1, const float* bias, float* y, int64_t ldy) {
  constexpr int kPerLane = 32 / kBits;
  constexpr int64_t kBlockCols = kLanes * kPerLane;
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) {
    __m512 acc[kRows][kBatch];
    for (int i = 0; i < kRows; ++i)
      for (int n = 0; n < kBatch; ++n) acc[i][n] = _mm512_setzero_ps();
    const uint8_t* row = codes + r * row_bytes;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      __m512i words[kRows];
      for (int i = 0; i < kRows; ++i) words[i] = _mm512_load_si512(row + i * row_bytes + blk * 64);
      const float* xb = x + blk * kBlockCols;
#pragma GCC unroll 16
      for (int k = 0; k < kPerLane; ++k) {
        __m512 xv[kBatch];
        for (int n = 0; n < kBatch; ++n) xv[n] = _mm512_loadu_ps(xb + n * ldx + k * kLanes);
        for (int i = 0; i < kRows; ++i) {
          const __m512 w = lane_values<kBits>(words[i], k, t);
          for (int n = 0; n < kBatch; ++n) acc[i][n] = _mm512_fmadd_ps(w, xv[n], acc[i][n]);
        }
      }
    }
    for (int i = 0; i < kRows; ++i)
      for (int n = 0; n < kBatch; ++n)
        y[n * ldy + r + i] = _mm512_reduce_add_ps(acc[i][n]) + (bias ? bias[r + i] : 0.0f);
  }
  // The last rows one at a time: the same sums in the same order, so results do not depend on kRows.
  if constexpr (kRows > 1) {
    if (r < r1) lanes_gemv<kBits, kBatch, 1>(t, codes, row_bytes, blocks, x, ldx, r, r1, bias, y, ldy);
  }
}

// ---- groups layout (b = 6..10) --------------------------------------------------------------------
// The constants one group decode needs.
struct GroupDecoder {
  __mmask64 load_mask;  // the 2b bytes of a group
  __m512i byte_index;   // lane i gathers bytes (i*b)/8 .. (i*b)/8 + 3
  __m512i shift;        // lane i then shifts right by (i*b) % 8 ...
  __m512i code_mask;    // ... and keeps b bits
  const float* table;

  GroupDecoder(int b, const float* tbl) : table(tbl) {
    load_mask = static_cast<__mmask64>((uint64_t{1} << (2 * b)) - 1);
    alignas(64) uint8_t idx[64];
    alignas(64) int32_t sh[16];
    for (int i = 0; i < kLanes; ++i) {
      for (int j = 0; j < 4; ++j) idx[4 * i + j] = static_cast<uint8_t>((i * b) / 8 + j);
      sh[i] = (i * b) % 8;
    }
    byte_index = _mm512_load_si512(idx);
    shift = _mm512_load_si512(sh);
    code_mask = _mm512_set1_epi32((1 << b) - 1);
  }

  // The 16 weights of the group at p. The masked load reads only the group's 2b bytes.
  inline __m512 values(const uint8_t* p) const {
    const __m512i bytes = _mm512_maskz_loadu_epi8(load_mask, p);
    const __m512i gathered = _mm512_permutexvar_epi8(byte_index, bytes);
    const __m512i c = _mm512_and_si512(_mm512_srlv_epi32(gathered, shift), code_mask);
    return _mm512_i32gather_ps(c, table, 4);
  }
};

template <int kBatch>
void groups_gemv(const GroupDecoder& d, const uint8_t* codes, int64_t row_bytes, int64_t groups, int b,
                 const float* x, int64_t ldx, int64_t r0, int64_t r1, const float* bias, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; ++r) {
    __m512 acc[kBatch];
    for (int n = 0; n < kBatch; ++n) acc[n] = _mm512_setzero_ps();
    const uint8_t* row = codes + r * row_bytes;
    for (int64_t g = 0; g < groups; ++g) {
      const __m512 w = d.values(row + g * 2 * b);
      for (int n = 0; n < kBatch; ++n) acc[n] = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + n * ldx + g * kLanes), acc[n]);
    }
    for (int n = 0; n < kBatch; ++n) y[n * ldy + r] = _mm512_reduce_add_ps(acc[n]) + (bias ? bias[r] : 0.0f);
  }
}

// ---- dispatch ---------------------------------------------------------------------------------------
struct GemvArgs {
  const uint8_t* codes;
  int64_t row_bytes, blocks;
  int b;
  const float* x;
  int64_t ldx;
  const float* bias;
  float* y;
  int64_t ldy;
  const float* table;
};
using GemvFn = void (*)(const GemvArgs&, int64_t r0, int64_t r1);

template <int kBits, int kBatch>
void lanes_entry(const GemvArgs& a, int64_t r0, int64_t r1) {
  // Rows per step: 8 rows' accumulators (and 8 streams of codes) in flight at batch 1-2, within
  // the 32 vector registers. At 4 rows per step batch 1 streamed AlexNet's and VGG-16's
  // fully-connected codes at 55-75% of the measured read bandwidth, at 8 rows at 79-95%
  // (bench_packed_gemv, 2 threads, Zen 5 VM, 2026-12-02; the run in docs/RESULTS.md).
  constexpr int kRows = kBatch <= 2 ? 8 : kBatch <= 4 ? 4 : 2;
  const LaneTables t(kBits, a.table);
  lanes_gemv<kBits, kBatch, kRows>(t, a.codes, a.row_bytes, a.blocks, a.x, a.ldx, r0, r1, a.bias, a.y, a.ldy);
}

template <int kBatch>
void groups_entry(const GemvArgs& a, int64_t r0, int64_t r1) {
  const GroupDecoder d(a.b, a.table);
  groups_gemv<kBatch>(d, a.codes, a.row_bytes, a.blocks, a.b, a.x, a.ldx, r0, r1, a.bias, a.y, a.ldy);
}

template <int kBits, int kBatch>
GemvFn entry() {
  if constexpr (kBits == 0) {
    return groups_entry<kBatch>;
  } else {
    return lanes_entry<kBits, kBatch>;
  }
}

template <int kBits>
GemvFn pick_for_bits(int64_t N) {
  switch (N) {
    case 1: return entry<kBits, 1>();
    case 2: return entry<kBits, 2>();
    case 3: return entry<kBits, 3>();
    case 4: return entry<kBits, 4>();
    case 5: return entry<kBits, 5>();
    case 6: return entry<kBits, 6>();
    case 7: return entry<kBits, 7>();
    default: return entry<kBits, 8>();
  }
}

// kBits = 0 stands for the groups layout (b = 6..10) in pick_for_bits.
GemvFn pick_gemv(int b, int64_t N) {
  switch (b) {
    case 2: return pick_for_bits<2>(N);
    case 3: return pick_for_bits<3>(N);
    case 4: return pick_for_bits<4>(N);
    case 5: return pick_for_bits<5>(N);
    default: return pick_for_bits<0>(N);
  }
}

template <int kBits>
void lanes_decode_row(const uint8_t* row, int64_t blocks, const float* table, float* dst) {
  constexpr int kPerLane = 32 / kBits;
  const LaneTables t(kBits, table);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const __m512i block = _mm512_load_si512(row + blk * 64);
#pragma GCC unroll 16
    for (int k = 0; k < kPerLane; ++k)
      _mm512_storeu_ps(dst + (blk * kPerLane + k) * kLanes, lane_values<kBits>(block, k, t));
  }
}
#endif

}  // namespace

bool packed_kernels_vectorized() { return INQ_PACKED_AVX512 != 0; }

uint32_t PackedMatrix::code(int64_t r, int64_t c) const {
  const int b = codebook_.bits;
  const uint8_t* row = codes_.get() + r * row_bytes_;
  const uint32_t mask = (uint32_t{1} << b) - 1;
  if (lanes_) {
    const int64_t blk = c / block_cols_, j = c % block_cols_;
    uint32_t word = 0;
    std::memcpy(&word, row + blk * 64 + (j % kLanes) * 4, 4);
    return (word >> ((j / kLanes) * b)) & mask;
  }
  const int64_t bit = c * b;
  uint32_t window = 0;
  for (int j = 0; j < 3 && (bit >> 3) + j < row_bytes_; ++j) window |= uint32_t{row[(bit >> 3) + j]} << (8 * j);
  return (window >> (bit & 7)) & mask;
}

void PackedMatrix::set_code(int64_t r, int64_t c, uint32_t code) {
  const int b = codebook_.bits;
  uint8_t* row = codes_.get() + r * row_bytes_;
  if (lanes_) {
    const int64_t blk = c / block_cols_, j = c % block_cols_;
    uint8_t* p = row + blk * 64 + (j % kLanes) * 4;
    uint32_t word = 0;
    std::memcpy(&word, p, 4);
    word |= code << ((j / kLanes) * b);
    std::memcpy(p, &word, 4);
    return;
  }
  const int64_t bit = c * b;
  const uint32_t shifted = code << (bit & 7);
  for (int j = 0; j < 3 && (bit >> 3) + j < row_bytes_; ++j) row[(bit >> 3) + j] |= static_cast<uint8_t>(shifted >> (8 * j));
}

PackedMatrix PackedMatrix::with_layout(const std::string& name, const Codebook& cb, int64_t rows, int64_t cols) {
  const int b = cb.bits;
  PackedMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  m.codebook_ = cb;
  m.lanes_ = b <= kMaxLanesBits;
  m.block_cols_ = m.lanes_ ? kLanes * (32 / b) : kLanes;
  m.block_bytes_ = m.lanes_ ? 64 : 2 * b;
  m.blocks_per_row_ = std::max<int64_t>(1, (cols + m.block_cols_ - 1) / m.block_cols_);
  m.row_bytes_ = m.blocks_per_row_ * m.block_bytes_;
  m.code_bytes_ = rows * m.row_bytes_;
  // 64-byte aligned and zeroed (code 0 is the weight 0, so padding needs no other value).
  const size_t bytes = static_cast<size_t>((m.code_bytes_ + 63) / 64 * 64 + 64);
  auto* raw = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
  INQ_CHECK(raw != nullptr, "Given packed tensor '{}', expected {} bytes for its codes, but the allocation failed",
            name, bytes);
  std::memset(raw, 0, bytes);
  m.codes_ = std::shared_ptr<uint8_t>(raw, [](uint8_t* p) { std::free(p); });
  // The value of every code (inq/packed.h); at least 32 entries so the two-register lookup can
  // always load two full vectors. Entries of invalid codes stay 0 (from_packed refuses them).
  m.table_.assign(std::max<size_t>(size_t{1} << b, 32), 0.0f);
  for (int k = cb.n2; k <= cb.n1; ++k) {
    const float magnitude = std::ldexp(1.0f, k);
    const size_t offset = static_cast<size_t>(cb.n1 - k + 1);
    m.table_[offset] = magnitude;
    m.table_[(size_t{1} << (b - 1)) | offset] = -magnitude;
  }
  return m;
}

PackedMatrix PackedMatrix::as_panels(int64_t panel_rows) const {
  INQ_CHECK(panel_rows > 0, "Given panels of {} rows, expected at least 1", panel_rows);
  PackedMatrix m = with_layout("panels", codebook_, (rows_ + panel_rows - 1) / panel_rows, panel_rows * cols_);
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t c = 0; c < cols_; ++c)
      if (const uint32_t v = code(r, c); v != 0) m.set_code(r / panel_rows, c * panel_rows + r % panel_rows, v);
  return m;
}

PackedMatrix PackedMatrix::from_packed(const std::string& name, const PackedTensor& packed, int64_t rows,
                                       int64_t cols) {
  const Codebook& cb = packed.codebook;
  cb.validate(name);
  const int64_t n = shape_numel(packed.shape);
  INQ_CHECK(rows >= 0 && cols >= 0 && rows * cols == n,
            "Given packed tensor '{}' of shape {}, expected {} x {} = {} weights, but it holds {}", name,
            shape_str(packed.shape), rows, cols, rows * cols, n);
  const int b = cb.bits;
  const int64_t want = packed_bytes(n, b);
  INQ_CHECK(static_cast<int64_t>(packed.codes.size()) == want,
            "Given packed tensor '{}' of shape {} at {} bits, expected {} bytes of codes, but got {}", name,
            shape_str(packed.shape), b, want, packed.codes.size());

  PackedMatrix m = with_layout(name, cb, rows, cols);
  const size_t codes_count = size_t{1} << b;
  std::vector<bool> valid(codes_count, false);
  valid[0] = true;
  for (int k = cb.n2; k <= cb.n1; ++k) {
    const size_t offset = static_cast<size_t>(cb.n1 - k + 1);
    valid[offset] = valid[(size_t{1} << (b - 1)) | offset] = true;
  }

  // Read the file's stream code by code (as unpack_tensor does) and place each code in the layout.
  const uint64_t mask = (uint64_t{1} << b) - 1;
  uint64_t acc = 0;
  int acc_bits = 0;
  size_t at = 0;
  int64_t index = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c, ++index) {
      while (acc_bits < b) {
        acc |= static_cast<uint64_t>(packed.codes[at++]) << acc_bits;
        acc_bits += 8;
      }
      const uint64_t code = acc & mask;
      acc >>= b;
      acc_bits -= b;
      INQ_CHECK(valid[code],
                "Given packed tensor '{}' at {} bits (n1 = {}), expected valid codes, but code [{}] = {} is neither 0 "
                "nor a sign and an exponent offset in [1, {}]",
                name, b, cb.n1, index, code, cb.exponent_count());
      if (code != 0) m.set_code(r, c, static_cast<uint32_t>(code));
    }
  }
  INQ_CHECK(acc == 0 && at == packed.codes.size(),
            "Given packed tensor '{}', expected the padding bits after its {} codes to be 0", name, n);
  return m;
}

float PackedMatrix::at(int64_t r, int64_t c) const { return table_[code(r, c)]; }

void PackedMatrix::decode_rows(int64_t r0, int64_t r1, float* out, int64_t ld) const {
  [[maybe_unused]] const int b = codebook_.bits;  // the vector paths' only (the scalar tail reads the table)
  // Serial below kMinParallelDecode weights: the panels the GEMM paths decode (about 1 MiB) take a
  // fraction of the time of the sgemm that follows, and a parallel region between every two
  // OpenBLAS calls costs more in thread hand-offs than it saves (measured on ResNet-18, 2 threads).
#pragma omp parallel for schedule(static) if ((r1 - r0) * cols_ >= kMinParallelDecode)
  for (int64_t r = r0; r < r1; ++r) {
    float* dst = out + (r - r0) * ld;
    [[maybe_unused]] const uint8_t* row = codes_.get() + r * row_bytes_;
    // Whole blocks that fit in the row of `out` go straight there; the last, partial one through a
    // small buffer.
    [[maybe_unused]] const int64_t whole = cols_ / block_cols_;
    int64_t done = 0;
#if INQ_PACKED_AVX512
    switch (lanes_ ? b : 0) {
      case 2: lanes_decode_row<2>(row, whole, table_.data(), dst); break;
      case 3: lanes_decode_row<3>(row, whole, table_.data(), dst); break;
      case 4: lanes_decode_row<4>(row, whole, table_.data(), dst); break;
      case 5: lanes_decode_row<5>(row, whole, table_.data(), dst); break;
      default: {
        const GroupDecoder d(b, table_.data());
        for (int64_t g = 0; g < whole; ++g) _mm512_storeu_ps(dst + g * kLanes, d.values(row + g * 2 * b));
      }
    }
    done = whole * block_cols_;
#endif
    for (int64_t c = done; c < cols_; ++c) dst[c] = table_[code(r, c)];
  }
}

void PackedMatrix::matmul_transposed(const float* x, int64_t N, const float* bias, float* y) const {
  if (N <= 0 || rows_ == 0) return;
  if (cols_ == 0) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t r = 0; r < rows_; ++r) y[n * rows_ + r] = bias ? bias[r] : 0.0f;
    return;
  }
  if (N <= kMaxGemvBatch) {
    matmul_small_batch(x, N, bias, y);
  } else {
    matmul_panels(x, N, bias, y);
  }
}

void PackedMatrix::matmul_small_batch(const float* x, int64_t N, const float* bias, float* y) const {
  const int64_t ldx = padded_cols();
  // The images padded to whole blocks with zeros: the padding codes mean 0, and 0 * 0 adds nothing.
  float* xp = thread_workspace().floats(N * ldx);
  for (int64_t n = 0; n < N; ++n) {
    std::copy(x + n * cols_, x + (n + 1) * cols_, xp + n * ldx);
    std::fill(xp + n * ldx + cols_, xp + (n + 1) * ldx, 0.0f);
  }
  // Threads split the rows in blocks of 16: each reads its own codes once, all read every image.
  const int64_t row_blocks = (rows_ + 15) / 16;
  const bool parallel = rows_ * cols_ >= kMinParallelWeights;
#if INQ_PACKED_AVX512
  const GemvArgs args{codes_.get(), row_bytes_, blocks_per_row_, codebook_.bits, xp, ldx, bias, y, rows_,
                      table_.data()};
  const GemvFn gemv = pick_gemv(lanes_ ? codebook_.bits : 0, N);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < row_blocks; ++blk) gemv(args, blk * 16, std::min(rows_, blk * 16 + 16));
#else
  // Portable form: 16 lane sums per row and image, added up at the end, as the vector kernels do.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < row_blocks; ++blk) {
    for (int64_t r = blk * 16; r < std::min(rows_, blk * 16 + 16); ++r) {
      for (int64_t n = 0; n < N; ++n) {
        float lanes[kLanes] = {};
        for (int64_t c = 0; c < ldx; ++c) lanes[c % kLanes] += table_[code(r, c)] * xp[n * ldx + c];
        float s = 0.0f;
        for (float v : lanes) s += v;
        y[n * rows_ + r] = s + (bias ? bias[r] : 0.0f);
      }
    }
  }
#endif
}

void PackedMatrix::matmul_panels(const float* x, int64_t N, const float* bias, float* y) const {
  // A panel of rows decoded into a buffer of about 1 MiB (it stays in cache while sgemm reads it),
  // at least 16 rows so sgemm has some width.
  const int64_t panel_rows = std::clamp<int64_t>((int64_t{1} << 18) / cols_, 16, rows_);
  float* panel = thread_workspace().floats(panel_rows * cols_);
  float beta = 0.0f;
  if (bias) {
    for (int64_t n = 0; n < N; ++n) std::copy(bias, bias + rows_, y + n * rows_);
    beta = 1.0f;
  }
  for (int64_t r0 = 0; r0 < rows_; r0 += panel_rows) {
    const int64_t r1 = std::min(rows_, r0 + panel_rows);
    decode_rows(r0, r1, panel, cols_);
    // y[:, r0:r1] (N, r1-r0) = x (N, cols) * panel^T
    sgemm(false, true, N, r1 - r0, cols_, 1.0f, x, cols_, panel, cols_, beta, y + r0, rows_);
  }
}

void packed_matmul_reference(const PackedMatrix& w, const float* x, int64_t N, const float* bias, float* y) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t r = 0; r < w.rows(); ++r) {
      double s = bias ? bias[r] : 0.0;
      for (int64_t c = 0; c < w.cols(); ++c) s += static_cast<double>(w.at(r, c)) * x[n * w.cols() + c];
      y[n * w.rows() + r] = static_cast<float>(s);
    }
}

}  // namespace inq
