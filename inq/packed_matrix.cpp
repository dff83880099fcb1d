#include "inq/packed_matrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "framework/error.h"
#include "framework/gemm.h"
#include "framework/workspace.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
// GCC 12's own intrinsic headers start masked operations from _mm512_undefined_*() values, which it
// then reports as "may be used uninitialized" in every function that inlines them: a known false
// positive (GCC bug 105593), silenced for this file only.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define INQ_PACKED_AVX512 1
#else
#define INQ_PACKED_AVX512 0
#endif

namespace inq {

namespace {

constexpr int64_t kGroup = 16;  // codes per group: one AVX-512 vector of floats
// Below this many weights one thread decodes faster than waking the team.
constexpr int64_t kMinParallelWeights = int64_t(1) << 16;
// Batches up to this size run the GEMV kernels; larger ones the panel + sgemm path.
constexpr int64_t kMaxGemvBatch = 8;

// Code `i` (0..15) of the group of 16 b-bit codes that starts at p (2b bytes), portably: the bytes
// are copied into a zero-padded local buffer so the 3-byte read below never leaves the group.
inline void decode_group_scalar(const uint8_t* p, int b, const float* table, float* out) {
  uint8_t bytes[24] = {};
  std::memcpy(bytes, p, static_cast<size_t>(2 * b));
  const uint32_t mask = (uint32_t{1} << b) - 1;
  for (int i = 0; i < kGroup; ++i) {
    const int bit = i * b;
    const uint32_t window = uint32_t{bytes[bit >> 3]} | uint32_t{bytes[(bit >> 3) + 1]} << 8 |
                            uint32_t{bytes[(bit >> 3) + 2]} << 16;
    out[i] = table[(window >> (bit & 7)) & mask];
  }
}

#if INQ_PACKED_AVX512
// How the table lookup is done: one permute over 16 entries (b <= 4), a two-register permute over
// 32 (b = 5), or a gather from memory (b >= 6).
enum Lookup { kPermute16 = 0, kPermute32 = 1, kGather = 2 };

int lookup_for_bits(int b) { return b <= 4 ? kPermute16 : b == 5 ? kPermute32 : kGather; }

// The constants one group decode needs, built once per call.
struct Decoder {
  __mmask64 load_mask;  // the 2b bytes of a group
  __m512i byte_index;   // lane i gathers bytes (i*b)/8 .. (i*b)/8 + 3
  __m512i shift;        // lane i then shifts right by (i*b) % 8 ...
  __m512i code_mask;    // ... and keeps b bits
  __m512 t0, t1;        // table entries 0..15 and 16..31
  const float* table;

  Decoder(int b, const float* tbl) : table(tbl) {
    load_mask = static_cast<__mmask64>((uint64_t{1} << (2 * b)) - 1);
    alignas(64) uint8_t idx[64];
    alignas(64) int32_t sh[16];
    for (int i = 0; i < kGroup; ++i) {
      for (int j = 0; j < 4; ++j) idx[4 * i + j] = static_cast<uint8_t>((i * b) / 8 + j);
      sh[i] = (i * b) % 8;
    }
    byte_index = _mm512_load_si512(idx);
    shift = _mm512_load_si512(sh);
    code_mask = _mm512_set1_epi32((1 << b) - 1);
    t0 = _mm512_loadu_ps(tbl);
    t1 = _mm512_loadu_ps(tbl + 16);
  }

  // The 16 codes of the group at p as int32 lanes. The masked load reads only the group's 2b bytes,
  // so it never touches memory past the end of the codes.
  inline __m512i codes(const uint8_t* p) const {
    const __m512i bytes = _mm512_maskz_loadu_epi8(load_mask, p);
    const __m512i gathered = _mm512_permutexvar_epi8(byte_index, bytes);
    return _mm512_and_si512(_mm512_srlv_epi32(gathered, shift), code_mask);
  }

  template <int kLookup>
  inline __m512 values(const uint8_t* p) const {
    const __m512i c = codes(p);
    if constexpr (kLookup == kPermute16) return _mm512_permutexvar_ps(c, t0);
    if constexpr (kLookup == kPermute32) return _mm512_permutex2var_ps(t0, c, t1);
    return _mm512_i32gather_ps(c, table, 4);
  }
};

// Rows [r0, r1) of y (N, rows) for N = kBatch images: kRows rows at a time, so kRows * kBatch
// independent accumulators hide the FMA latency; each group of codes is decoded once per row and
// multiplied into every image. x is padded to groups * 16 columns with zeros (the padding codes mean 0).
template <int kLookup, int kBatch, int kRows>
void gemv_rows(const Decoder& d, const uint8_t* codes, int64_t row_bytes, int64_t groups, int b, const float* x,
               int64_t ldx, int64_t r0, int64_t r1, const float* bias, float* y, int64_t ldy) {
  const int64_t group_bytes = 2 * b;
  int64_t r = r0;
  for (; r + kRows <= r1; r += kRows) {
    __m512 acc[kRows][kBatch];
    for (int i = 0; i < kRows; ++i)
      for (int n = 0; n < kBatch; ++n) acc[i][n] = _mm512_setzero_ps();
    const uint8_t* row = codes + r * row_bytes;
    for (int64_t g = 0; g < groups; ++g) {
      __m512 xv[kBatch];
      for (int n = 0; n < kBatch; ++n) xv[n] = _mm512_loadu_ps(x + n * ldx + g * kGroup);
      for (int i = 0; i < kRows; ++i) {
        const __m512 w = d.values<kLookup>(row + i * row_bytes + g * group_bytes);
        for (int n = 0; n < kBatch; ++n) acc[i][n] = _mm512_fmadd_ps(w, xv[n], acc[i][n]);
      }
    }
    for (int i = 0; i < kRows; ++i)
      for (int n = 0; n < kBatch; ++n)
        y[n * ldy + r + i] = _mm512_reduce_add_ps(acc[i][n]) + (bias ? bias[r + i] : 0.0f);
  }
  // The last rows one at a time (the same sums in the same order, so results do not depend on kRows).
  if constexpr (kRows > 1) {
    if (r < r1) gemv_rows<kLookup, kBatch, 1>(d, codes, row_bytes, groups, b, x, ldx, r, r1, bias, y, ldy);
  }
}

template <int kLookup, int kBatch>
void gemv_batch(const Decoder& d, const uint8_t* codes, int64_t row_bytes, int64_t groups, int b, const float* x,
                int64_t ldx, int64_t r0, int64_t r1, const float* bias, float* y, int64_t ldy) {
  // Enough rows per step to keep about 8 accumulators in flight, within the 32 vector registers.
  constexpr int kRows = kBatch == 1 ? 4 : kBatch == 2 ? 4 : kBatch <= 4 ? 2 : 1;
  gemv_rows<kLookup, kBatch, kRows>(d, codes, row_bytes, groups, b, x, ldx, r0, r1, bias, y, ldy);
}

using GemvFn = void (*)(const Decoder&, const uint8_t*, int64_t, int64_t, int, const float*, int64_t, int64_t,
                        int64_t, const float*, float*, int64_t);

template <int kLookup>
GemvFn pick_gemv_for_lookup(int64_t N) {
  switch (N) {
    case 1: return gemv_batch<kLookup, 1>;
    case 2: return gemv_batch<kLookup, 2>;
    case 3: return gemv_batch<kLookup, 3>;
    case 4: return gemv_batch<kLookup, 4>;
    case 5: return gemv_batch<kLookup, 5>;
    case 6: return gemv_batch<kLookup, 6>;
    case 7: return gemv_batch<kLookup, 7>;
    default: return gemv_batch<kLookup, 8>;
  }
}

GemvFn pick_gemv(int lookup, int64_t N) {
  switch (lookup) {
    case kPermute16: return pick_gemv_for_lookup<kPermute16>(N);
    case kPermute32: return pick_gemv_for_lookup<kPermute32>(N);
    default: return pick_gemv_for_lookup<kGather>(N);
  }
}
#endif

}  // namespace

bool packed_kernels_vectorized() { return INQ_PACKED_AVX512 != 0; }

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

  PackedMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  m.codebook_ = cb;
  m.groups_per_row_ = (cols + kGroup - 1) / kGroup;
  m.row_bytes_ = m.groups_per_row_ * 2 * b;
  m.codes_.assign(static_cast<size_t>(rows * m.row_bytes_), 0);
  // The value of every code (inq/packed.h); at least 32 entries so the two-register lookup can
  // always load two full vectors. Invalid codes are marked NaN while checking, then set to 0.
  const size_t codes_count = size_t{1} << b;
  std::vector<float> value_of(std::max<size_t>(codes_count, 32), 0.0f);
  std::vector<bool> valid(codes_count, false);
  valid[0] = true;
  for (int k = cb.n2; k <= cb.n1; ++k) {
    const float magnitude = std::ldexp(1.0f, k);
    const size_t offset = static_cast<size_t>(cb.n1 - k + 1);
    value_of[offset] = magnitude;
    value_of[(size_t{1} << (b - 1)) | offset] = -magnitude;
    valid[offset] = valid[(size_t{1} << (b - 1)) | offset] = true;
  }
  m.table_ = std::move(value_of);

  // Read the file's stream code by code (as unpack_tensor does) and write each row's codes into its
  // own byte-aligned, zero-padded slot.
  const uint64_t mask = (uint64_t{1} << b) - 1;
  uint64_t acc = 0;
  int acc_bits = 0;
  size_t at = 0;
  int64_t index = 0;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* out = m.codes_.data() + r * m.row_bytes_;
    uint64_t out_acc = 0;
    int out_bits = 0;
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
      out_acc |= code << out_bits;
      out_bits += b;
      while (out_bits >= 8) {
        *out++ = static_cast<uint8_t>(out_acc & 0xFF);
        out_acc >>= 8;
        out_bits -= 8;
      }
    }
    if (out_bits > 0) *out = static_cast<uint8_t>(out_acc);
  }
  INQ_CHECK(acc == 0 && at == packed.codes.size(),
            "Given packed tensor '{}', expected the padding bits after its {} codes to be 0", name, n);
  return m;
}

float PackedMatrix::at(int64_t r, int64_t c) const {
  const int b = codebook_.bits;
  const uint8_t* row = codes_.data() + r * row_bytes_;
  const int64_t bit = c * b;
  uint32_t window = 0;
  for (int j = 0; j < 3 && (bit >> 3) + j < row_bytes_; ++j) window |= uint32_t{row[(bit >> 3) + j]} << (8 * j);
  return table_[(window >> (bit & 7)) & ((uint32_t{1} << b) - 1)];
}

void PackedMatrix::decode_rows(int64_t r0, int64_t r1, float* out, int64_t ld) const {
  const int b = codebook_.bits;
  const int64_t full = cols_ / kGroup, tail = cols_ - full * kGroup;
#pragma omp parallel for schedule(static) if ((r1 - r0) * cols_ >= kMinParallelWeights)
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = codes_.data() + r * row_bytes_;
    float* dst = out + (r - r0) * ld;
#if INQ_PACKED_AVX512
    const Decoder d(b, table_.data());
    const int lookup = lookup_for_bits(b);
    for (int64_t g = 0; g < full; ++g) {
      const uint8_t* p = row + g * 2 * b;
      const __m512 v = lookup == kPermute16   ? d.values<kPermute16>(p)
                       : lookup == kPermute32 ? d.values<kPermute32>(p)
                                              : d.values<kGather>(p);
      _mm512_storeu_ps(dst + g * kGroup, v);
    }
#else
    for (int64_t g = 0; g < full; ++g) decode_group_scalar(row + g * 2 * b, b, table_.data(), dst + g * kGroup);
#endif
    if (tail > 0) {
      float last[kGroup];
      decode_group_scalar(row + full * 2 * b, b, table_.data(), last);
      std::copy(last, last + tail, dst + full * kGroup);
    }
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
  const int b = codebook_.bits;
  const int64_t ldx = groups_per_row_ * kGroup;
  // The images padded to whole groups with zeros: the padding codes mean 0, and 0 * 0 adds nothing.
  std::vector<float> padded(static_cast<size_t>(N * ldx), 0.0f);
  for (int64_t n = 0; n < N; ++n) std::copy(x + n * cols_, x + (n + 1) * cols_, padded.data() + n * ldx);
  const float* xp = padded.data();
  // Threads split the rows in blocks of 16: each reads its own codes once, all read every image.
  const int64_t blocks = (rows_ + 15) / 16;
  const bool parallel = rows_ * cols_ >= kMinParallelWeights;
#if INQ_PACKED_AVX512
  const Decoder d(b, table_.data());
  const GemvFn gemv = pick_gemv(lookup_for_bits(b), N);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t r0 = blk * 16, r1 = std::min(rows_, r0 + 16);
    gemv(d, codes_.data(), row_bytes_, groups_per_row_, b, xp, ldx, r0, r1, bias, y, rows_);
  }
#else
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t r0 = blk * 16, r1 = std::min(rows_, r0 + 16);
    float w[kGroup];
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = codes_.data() + r * row_bytes_;
      for (int64_t n = 0; n < N; ++n) {
        // 16 lane sums, added up at the end, as the vector kernel does.
        float lanes[kGroup] = {};
        for (int64_t g = 0; g < groups_per_row_; ++g) {
          decode_group_scalar(row + g * 2 * b, b, table_.data(), w);
          for (int i = 0; i < kGroup; ++i) lanes[i] += w[i] * xp[n * ldx + g * kGroup + i];
        }
        float s = 0.0f;
        for (int i = 0; i < kGroup; ++i) s += lanes[i];
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
