#pragma once
// A quantized weight matrix kept as its b-bit codes at inference time (issue: inference straight from
// packed low-bit weights). A Linear weight (out, in) is a matrix of `rows` = out and `cols` = in; a
// Conv2d weight (K, C/groups, R, S) one of rows = K and cols = C/groups * R * S.
//
// Layout in memory: the packed file's code stream (inq/packed.h: b bits per weight, least
// significant bit first) cut into rows, each row padded with code 0 (the weight 0) to a multiple of
// 16 codes. 16 codes of b bits are exactly 2b bytes, so every row and every group of 16 codes starts
// on a byte boundary, and the kernels decode one group into one 16-lane vector without looking at
// its neighbours. The padding costs under 16 codes per row; there is never a float copy of the matrix.
//
// Decoding: a code is an index into a table of the 2^b values it can mean (inq/packed.h: 0, then
// +-2^k). For b <= 5 the table fits in one or two AVX-512 registers and the lookup is one
// permute; for b = 6..10 it is a gather from the table in memory. Without AVX-512 (F + VBMI) at
// compile time every kernel runs its portable scalar form instead.
#include <cstdint>
#include <string>
#include <vector>

#include "inq/codebook.h"
#include "inq/packed.h"

namespace inq {

class PackedMatrix {
 public:
  PackedMatrix() = default;
  // Re-lays `packed` (a tensor of rows * cols weights as inq/packed.h stores it) out by rows,
  // checking every code and the padding as unpack_tensor does. Throws inq::Error naming `name` for
  // an invalid codebook, a byte count or element count that does not match, a code that means
  // nothing (with its index) or non-zero padding.
  static PackedMatrix from_packed(const std::string& name, const PackedTensor& packed, int64_t rows, int64_t cols);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const Codebook& codebook() const { return codebook_; }
  // Codes held, in bytes (the padded rows); what the weight costs in memory.
  int64_t code_bytes() const { return static_cast<int64_t>(codes_.size()); }
  // The value of weight (r, c), by the table: for tests and the reference kernel.
  float at(int64_t r, int64_t c) const;

  // Writes rows [r0, r1) as floats into out (r1 - r0 rows of cols floats, row stride ld >= cols).
  // Threads split the rows when there are enough of them. For a panel of a GEMM, never the whole matrix.
  void decode_rows(int64_t r0, int64_t r1, float* out, int64_t ld) const;

  // y (N, rows) = x (N, cols) * W^T (+ bias (rows) when not null). Overwrites y. Batches of up to 8
  // decode each group of codes once and multiply it into every image (a GEMV streaming the codes);
  // larger batches decode panels of rows into a small buffer and hand them to sgemm.
  void matmul_transposed(const float* x, int64_t N, const float* bias, float* y) const;

 private:
  int64_t rows_ = 0, cols_ = 0;
  Codebook codebook_;
  int64_t groups_per_row_ = 0;  // ceil(cols / 16)
  int64_t row_bytes_ = 0;       // groups_per_row * 2b
  std::vector<uint8_t> codes_;  // rows * row_bytes
  std::vector<float> table_;    // 2^b entries (at least 32): the value of each code; invalid codes never occur

  void matmul_small_batch(const float* x, int64_t N, const float* bias, float* y) const;
  void matmul_panels(const float* x, int64_t N, const float* bias, float* y) const;
};

// The naive twin of matmul_transposed: every weight decoded one at a time through at() and every dot
// product accumulated in double. The tests compare the fast kernels with it.
void packed_matmul_reference(const PackedMatrix& w, const float* x, int64_t N, const float* bias, float* y);

// True when this build has the AVX-512 decoding kernels (else every kernel is the scalar form).
bool packed_kernels_vectorized();

}  // namespace inq
