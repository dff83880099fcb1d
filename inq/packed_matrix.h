#pragma once
// A quantized weight matrix kept as its b-bit codes at inference time (issue: inference straight from
// packed low-bit weights). A Linear weight (out, in) is a matrix of `rows` = out and `cols` = in; a
// Conv2d weight (K, C/groups, R, S) one of rows = K and cols = C/groups * R * S.
//
// Layouts in memory (re-laid out once at load from the file's code stream; never floats):
//  - b = 2..5, the fast paths ("lanes"): a row is cut into blocks of 64 bytes, sixteen 32-bit lanes
//    of m = floor(32 / b) codes each (16, 10, 8, 6 codes for b = 2, 3, 4, 5). Column j of a block
//    is code j / 16 of lane j % 16, at bits [(j / 16) * b, (j / 16 + 1) * b) of the lane. Decoding 16
//    consecutive columns is then one shift of the block and one table permute (the permute reads
//    the low 4 or 5 bits of each lane; for b < 4 the 16-entry table repeats with period 2^b, so the
//    bits above the code do not matter). Cost: 32 / (m * b) of the file's bits: exactly b bits for
//    b = 2 and 4, 32/30 of them for b = 3 and 5.
//  - b = 6..10 ("groups"): the file's code stream cut into rows, each padded to whole groups of 16
//    codes (2b bytes each); a group is decoded by a byte shuffle, a shift per lane and a gather from
//    the table. Exactly b bits per code.
// Rows are padded with code 0 (the weight 0) to a whole number of blocks or groups.
//
// Decoding: a code is an index into a table of the 2^b values it can mean (inq/packed.h: 0, then
// +-2^k). Without AVX-512 (F + BW + VBMI) at compile time every kernel runs its portable scalar
// form instead, on the same layouts.
#include <cstdint>
#include <memory>
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

  // The same weights laid out for framework/panel_gemm.h: a matrix of ceil(rows / panel_rows) rows of
  // panel_rows * cols codes, weight (r, c) at row r / panel_rows, column c * panel_rows + r % panel_rows
  // (rows past `rows` hold code 0, the weight 0). decode_rows(p, p + 1, ...) then writes panel p.
  PackedMatrix as_panels(int64_t panel_rows) const;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const Codebook& codebook() const { return codebook_; }
  // Codes held, in bytes (the padded rows); what the weight costs in memory.
  int64_t code_bytes() const { return code_bytes_; }
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
  bool lanes_ = false;           // the layout: lanes (b <= 5) or groups
  int64_t block_cols_ = 0;      // columns per block: 16 * floor(32 / b) (lanes) or 16 (groups)
  int64_t block_bytes_ = 0;     // 64 (lanes) or 2b (groups)
  int64_t blocks_per_row_ = 0;  // ceil(cols / block_cols)
  int64_t row_bytes_ = 0;       // blocks_per_row * block_bytes
  // rows * row_bytes bytes, 64-byte aligned so that every lanes block is one cache line; shared by
  // copies (the codes never change after loading).
  std::shared_ptr<uint8_t> codes_;
  int64_t code_bytes_ = 0;
  std::vector<float> table_;    // 2^b entries (at least 32): the value of each code; invalid codes never occur

  // Zeroed codes and the table for `cb`, laid out for rows x cols.
  static PackedMatrix with_layout(const std::string& name, const Codebook& cb, int64_t rows, int64_t cols);
  int64_t padded_cols() const { return blocks_per_row_ * block_cols_; }
  uint32_t code(int64_t r, int64_t c) const;
  void set_code(int64_t r, int64_t c, uint32_t code);

  void matmul_small_batch(const float* x, int64_t N, const float* bias, float* y) const;
  void matmul_panels(const float* x, int64_t N, const float* bias, float* y) const;
};

// The naive twin of matmul_transposed: every weight decoded one at a time through at() and every dot
// product accumulated in double. The tests compare the fast kernels with it.
void packed_matmul_reference(const PackedMatrix& w, const float* x, int64_t N, const float* bias, float* y);

// True when this build has the AVX-512 decoding kernels (else every kernel is the scalar form).
bool packed_kernels_vectorized();

}  // namespace inq
