#pragma once
// The packed low-bit form of one quantized tensor (docs/INQ_SPEC.md section 7). Every weight of a b-bit
// codebook {0, +-2^n2, ..., +-2^n1} becomes one b-bit code:
//
//   code = 0                                   the weight is 0
//   code = s * 2^(b-1) + (n1 - k + 1)          the weight is (-1)^s * 2^k, n2 <= k <= n1
//
// so the low b-1 bits of a non-zero weight hold 1 .. n1 - n2 + 1 = 1 .. 2^(b-2) (the exponent's
// offset below n1, plus one) and are never 0. The other codes (the sign bit over a zero offset, an
// offset above 2^(b-2)) mean nothing and are rejected. Codes are concatenated least significant bit
// first: weight i occupies bits [i*b, (i+1)*b) of a little-endian bit stream, in row-major order,
// and the bits after the last code, up to the byte boundary, are 0. A tensor of N weights takes
// ceil(N*b / 8) bytes.
#include <cstdint>
#include <string>
#include <vector>

#include "framework/tensor.h"
#include "inq/codebook.h"

namespace inq {

struct PackedTensor {
  Shape shape;
  Codebook codebook;
  std::vector<uint8_t> codes;  // packed_bytes(numel, codebook.bits) bytes
};

// ceil(numel * bits / 8). Throws inq::Error when numel is negative or the bit count overflows.
int64_t packed_bytes(int64_t numel, int bits);

// The code of one value, or -1 when the value is not in the codebook (-0.0, NaN and Inf included).
int32_t weight_code(float value, const Codebook& codebook);

// Packs `values`, every one of which must be in `codebook` (Codebook::contains); otherwise throws
// inq::Error naming the tensor `name`, the first offending index and its value.
PackedTensor pack_tensor(const std::string& name, const Tensor& values, const Codebook& codebook);

// The float values back, bit for bit as they were packed. Throws inq::Error naming `name` for an
// invalid codebook, a byte count other than packed_bytes(numel, bits), a code that means nothing
// (with its index) and padding bits that are not 0.
Tensor unpack_tensor(const std::string& name, const PackedTensor& packed);

}  // namespace inq
