#pragma once
// The INQ codebook of one weight tensor (docs/INQ_SPEC.md section 2): zero and the signed powers of two
//   P = {0, +-2^n2, ..., +-2^n1},   n1 = floor(log2(4s/3)),   n2 = n1 + 1 - 2^(b-1)/2,
// where s = max |w| of the tensor when INQ starts and b >= 2 is the bit-width (one bit encodes zero, so
// b bits give 2^(b-1) non-zero values: n1 - n2 + 1 = 2^(b-2) exponents, each with both signs).
// n1 and n2 are fixed for the whole run and recorded in the INQ state and in reports.
#include <cstdint>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace inq {

// The largest bit-width whose 2^(b-2) exponents all fit between float's smallest subnormal power of
// two (2^-149) and its largest power of two (2^127). Derived from float's limits, not chosen.
int max_codebook_bits();

// floor(log2(4a/3)) for a finite a > 0, exactly: the unique k with 2^k <= 4a/3 < 2^(k+1), which is
// also the k with 0.75 * 2^k <= a < 1.5 * 2^k. a = 0.75 * 2^k gives k; a = 1.5 * 2^k gives k + 1.
int floor_log2_four_thirds(double a);

struct Codebook {
  int bits = 0;  // b >= 2
  int n1 = 0;    // largest exponent: 2^n1 is the largest magnitude
  int n2 = 0;    // smallest exponent: n2 = n1 + 1 - 2^(b-2)

  // Number of exponents n1 - n2 + 1 = 2^(b-2), and of values 2 * that + 1 (zero included).
  int64_t exponent_count() const { return static_cast<int64_t>(n1) - n2 + 1; }
  int64_t level_count() const { return 2 * exponent_count() + 1; }
  // Every value, ascending: -2^n1, ..., -2^n2, 0, 2^n2, ..., 2^n1.
  std::vector<float> levels() const;
  // True when v is exactly +0.0 or +-2^k with n2 <= k <= n1. -0.0 is not a codebook value: the
  // quantizer never produces it and the packed format cannot keep its sign bit. NaN and Inf: false.
  bool contains(float v) const;

  // Throws inq::Error unless bits is in [2, max_codebook_bits()], n2 == n1 + 1 - 2^(b-2), and 2^n2
  // and 2^n1 are floats (n2 >= -149, n1 <= 127). `name` (the tensor) is used in the message.
  void validate(const std::string& name) const;
};

bool operator==(const Codebook& a, const Codebook& b);

// The codebook for a tensor whose largest magnitude is s (finite, >= 0). s = 0 gives n1 = 0 (D).
// Throws, naming `name`, for bits < 2 (b = 1 is undefined), bits > max_codebook_bits(), a non-finite
// or negative s, and an s whose levels would not be floats.
Codebook make_codebook(float s, int bits, const std::string& name);
// Same, with s = max |w| of the tensor; a NaN or Inf entry throws naming `name` and the entry's index.
Codebook make_codebook(const Tensor& w, int bits, const std::string& name);

// Throws inq::Error, naming the tensor, the index and the value, at the first NaN or Inf of w.
void check_finite(const Tensor& w, const std::string& name);

}  // namespace inq
