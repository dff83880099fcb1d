#include "inq/codebook.h"

#include <cmath>
#include <limits>

#include "framework/error.h"

namespace inq {

namespace {

// Exponents of float's largest and smallest (subnormal) powers of two: 2^127 and 2^-149.
constexpr int kMaxFloatExponent = std::numeric_limits<float>::max_exponent - 1;
constexpr int kMinFloatExponent =
    std::numeric_limits<float>::min_exponent - 1 - (std::numeric_limits<float>::digits - 1);

constexpr int compute_max_bits() {
  const int64_t span = kMaxFloatExponent - kMinFloatExponent + 1;  // exponents a float can hold
  int b = 2;
  while ((int64_t{1} << (b + 1 - 2)) <= span) ++b;  // would b + 1 still fit?
  return b;
}

// 2^(b-1)/2 = 2^(b-2): the number of exponents of a b-bit codebook. bits must be in [2, max].
int64_t exponents_for_bits(int bits) { return int64_t{1} << (bits - 2); }

void check_bits(int bits, const std::string& name) {
  INQ_CHECK(bits >= 2,
            "Given bit-width b = {} for tensor '{}', expected b >= 2 (one bit encodes zero, so b = 1 leaves "
            "no bit for the non-zero powers of two and is undefined)",
            bits, name);
  INQ_CHECK(bits <= max_codebook_bits(),
            "Given bit-width b = {} for tensor '{}', expected b <= {} (a wider codebook has more powers of "
            "two than float can represent)",
            bits, name, max_codebook_bits());
}

}  // namespace

int max_codebook_bits() { return compute_max_bits(); }

int floor_log2_four_thirds(double a) {
  // std::log2(4a/3) would round twice (4a/3 is inexact, and so is log2) and can land on the wrong
  // side of an integer exactly at a = 0.75 * 2^k. frexp reads the exponent exactly instead:
  // a = m * 2^e with m in [0.5, 1), so 4a/3 = (4m/3) * 2^e with 4m/3 in [2/3, 4/3): the floor of its
  // log2 is e when m >= 0.75 and e - 1 otherwise. Every step is exact.
  int e = 0;
  const double m = std::frexp(a, &e);
  return m >= 0.75 ? e : e - 1;
}

std::vector<float> Codebook::levels() const {
  std::vector<float> out;
  out.reserve(static_cast<size_t>(level_count()));
  for (int k = n1; k >= n2; --k) out.push_back(-std::ldexp(1.0f, k));
  out.push_back(0.0f);
  for (int k = n2; k <= n1; ++k) out.push_back(std::ldexp(1.0f, k));
  return out;
}

bool Codebook::contains(float v) const {
  if (v == 0) return !std::signbit(v);
  if (!std::isfinite(v)) return false;
  int e = 0;
  const float m = std::frexp(std::fabs(v), &e);  // |v| = m * 2^e, m in [0.5, 1); exact for subnormals too
  const int k = e - 1;
  return m == 0.5f && k >= n2 && k <= n1;
}

void Codebook::validate(const std::string& name) const {
  check_bits(bits, name);
  const int64_t want_n2 = int64_t{n1} + 1 - exponents_for_bits(bits);
  INQ_CHECK(
      n2 == want_n2,
      "Given codebook of tensor '{}' with b = {}, n1 = {}, n2 = {}, expected n2 = n1 + 1 - 2^(b-1)/2 = {}, "
      "but got {} instead",
      name, bits, n1, n2, want_n2, n2);
  INQ_CHECK(n1 <= kMaxFloatExponent,
            "Given codebook of tensor '{}' with n1 = {}, expected n1 <= {} (2^n1 must be a float), but got "
            "{} instead",
            name, n1, kMaxFloatExponent, n1);
  INQ_CHECK(
      n2 >= kMinFloatExponent,
      "Given codebook of tensor '{}' with b = {} and n1 = {}, expected n2 >= {} (2^n2 must be a float), "
      "but got n2 = {} instead",
      name, bits, n1, kMinFloatExponent, n2);
}

bool operator==(const Codebook& a, const Codebook& b) {
  return a.bits == b.bits && a.n1 == b.n1 && a.n2 == b.n2;
}

Codebook make_codebook(float s, int bits, const std::string& name) {
  check_bits(bits, name);
  INQ_CHECK(std::isfinite(s) && s >= 0,
            "Given max |w| = {} for tensor '{}', expected a finite value >= 0 to build its codebook", s,
            name);
  // An all-zero tensor has no scale; n1 = 0 by definition (docs/INQ_SPEC.md section 2, D).
  const int64_t n1 = s == 0 ? 0 : floor_log2_four_thirds(s);
  const int64_t n2 = n1 + 1 - exponents_for_bits(bits);
  INQ_CHECK(
      n1 <= kMaxFloatExponent,
      "Given tensor '{}' with max |w| = {}, expected a codebook whose largest level 2^n1 is a float, but "
      "got n1 = {} > {} instead",
      name, s, n1, kMaxFloatExponent);
  INQ_CHECK(
      n2 >= kMinFloatExponent,
      "Given tensor '{}' with max |w| = {} and b = {}, expected a codebook whose smallest level 2^n2 is "
      "a float, but got n2 = {} < {} instead",
      name, s, bits, n2, kMinFloatExponent);
  return Codebook{.bits = bits, .n1 = static_cast<int>(n1), .n2 = static_cast<int>(n2)};
}

void check_finite(const Tensor& w, const std::string& name) {
  const float* p = w.data();
  const int64_t n = w.numel();
  for (int64_t i = 0; i < n; ++i)
    INQ_CHECK(std::isfinite(p[i]),
              "Given tensor '{}' with shape {}, expected finite weights, but entry {} is {}", name,
              shape_str(w.shape()), i, p[i]);
}

Codebook make_codebook(const Tensor& w, int bits, const std::string& name) {
  INQ_CHECK(w.defined(), "Given tensor '{}', expected a defined tensor to build its codebook", name);
  check_finite(w, name);
  const float* p = w.data();
  float s = 0;
  for (int64_t i = 0; i < w.numel(); ++i) s = std::max(s, std::fabs(p[i]));
  return make_codebook(s, bits, name);
}

}  // namespace inq
