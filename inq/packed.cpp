#include "inq/packed.h"

#include <cmath>

#include "framework/error.h"

namespace inq {

int64_t packed_bytes(int64_t numel, int bits) {
  INQ_CHECK(numel >= 0 && bits > 0, "Given {} values of {} bits, expected a count >= 0 and bits > 0", numel, bits);
  int64_t total_bits = 0;
  INQ_CHECK(!__builtin_mul_overflow(numel, int64_t{bits}, &total_bits),
            "Given {} values of {} bits, expected a bit count that fits in 64 bits", numel, bits);
  return total_bits / 8 + (total_bits % 8 != 0 ? 1 : 0);
}

int32_t weight_code(float value, const Codebook& codebook) {
  if (!codebook.contains(value)) return -1;
  if (value == 0.0f) return 0;
  int e = 0;
  std::frexp(value, &e);  // |value| = 0.5 * 2^e exactly, since it is a power of two
  const int k = e - 1;
  const int32_t sign = value < 0.0f ? int32_t{1} << (codebook.bits - 1) : 0;
  return sign | (codebook.n1 - k + 1);
}

PackedTensor pack_tensor(const std::string& name, const Tensor& values, const Codebook& codebook) {
  codebook.validate(name);
  PackedTensor out{.shape = values.shape(), .codebook = codebook, .codes = {}};
  const int64_t n = values.numel();
  out.codes.assign(static_cast<size_t>(packed_bytes(n, codebook.bits)), 0);
  const float* v = values.data();
  const int b = codebook.bits;
  // Appends codes to a 64-bit accumulator and flushes whole bytes; b <= 10, so it never overflows.
  uint64_t acc = 0;
  int acc_bits = 0;
  size_t at = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t code = weight_code(v[i], codebook);
    INQ_CHECK(code >= 0, "Given tensor '{}' to pack, expected every value to be 0 or +-2^k with {} <= k <= {}, but "
              "[{}] = {:.9g}", name, codebook.n2, codebook.n1, i, v[i]);
    acc |= static_cast<uint64_t>(code) << acc_bits;
    acc_bits += b;
    while (acc_bits >= 8) {
      out.codes[at++] = static_cast<uint8_t>(acc & 0xFF);
      acc >>= 8;
      acc_bits -= 8;
    }
  }
  if (acc_bits > 0) out.codes[at++] = static_cast<uint8_t>(acc);
  return out;
}

Tensor unpack_tensor(const std::string& name, const PackedTensor& packed) {
  const Codebook& cb = packed.codebook;
  cb.validate(name);
  const int64_t n = shape_numel(packed.shape);
  const int64_t want = packed_bytes(n, cb.bits);
  INQ_CHECK(static_cast<int64_t>(packed.codes.size()) == want,
            "Given packed tensor '{}' of shape {} at {} bits, expected {} bytes of codes, but got {}", name,
            shape_str(packed.shape), cb.bits, want, packed.codes.size());
  // The value of every code, invalid ones as NaN (never a codebook value).
  const int b = cb.bits;
  std::vector<float> value_of(size_t{1} << b, std::nanf(""));
  value_of[0] = 0.0f;
  for (int k = cb.n2; k <= cb.n1; ++k) {
    const float magnitude = std::ldexp(1.0f, k);
    value_of[static_cast<size_t>(cb.n1 - k + 1)] = magnitude;
    value_of[(size_t{1} << (b - 1)) | static_cast<size_t>(cb.n1 - k + 1)] = -magnitude;
  }
  Tensor out = Tensor::empty(packed.shape);
  float* v = out.data();
  const uint64_t mask = (uint64_t{1} << b) - 1;
  uint64_t acc = 0;
  int acc_bits = 0;
  size_t at = 0;
  for (int64_t i = 0; i < n; ++i) {
    while (acc_bits < b) {
      acc |= static_cast<uint64_t>(packed.codes[at++]) << acc_bits;
      acc_bits += 8;
    }
    const uint64_t code = acc & mask;
    acc >>= b;
    acc_bits -= b;
    v[i] = value_of[code];
    INQ_CHECK(!std::isnan(v[i]), "Given packed tensor '{}' at {} bits (n1 = {}), expected valid codes, but code [{}] "
              "= {} is neither 0 nor a sign and an exponent offset in [1, {}]", name, b, cb.n1, i, code,
              cb.exponent_count());
  }
  // What is left of the last byte is padding, which must be 0.
  INQ_CHECK(acc == 0 && at == packed.codes.size(),
            "Given packed tensor '{}', expected the padding bits after its {} codes to be 0", name, n);
  return out;
}

}  // namespace inq
