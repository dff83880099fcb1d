#include "inq/quantizer.h"

#include <cmath>

#include "framework/error.h"

namespace inq {

QuantizedValue quantize_value(float w, const Codebook& codebook) {
  INQ_CHECK(std::isfinite(w), "Given weight {}, expected a finite value to quantize", w);
  const double a = std::fabs(static_cast<double>(w));
  // Below half the smallest level (this also catches +-0.0, which must come out as +0.0).
  if (a < std::ldexp(1.0, codebook.n2 - 1)) return {};
  // k with 0.75 * 2^k <= a < 1.5 * 2^k; the interval of 2^n2 extends down to 2^(n2-1).
  int k = floor_log2_four_thirds(a);
  bool saturated = false;
  if (k < codebook.n2) k = codebook.n2;
  if (k > codebook.n1) {
    k = codebook.n1;
    saturated = true;
  }
  const float magnitude = std::ldexp(1.0f, k);
  return {std::signbit(w) ? -magnitude : magnitude, saturated};
}

namespace {

void check_entries_finite(const float* p, std::span<const int64_t> indices, int64_t numel, const Tensor& w,
                          const std::string& name) {
  for (const int64_t i : indices) {
    INQ_CHECK(i >= 0 && i < numel,
              "Given flat index {} into tensor '{}' with shape {}, expected an index in [0, {})", i, name,
              shape_str(w.shape()), numel);
    INQ_CHECK(std::isfinite(p[i]),
              "Given tensor '{}' with shape {}, expected finite weights, but entry {} is {}", name,
              shape_str(w.shape()), i, p[i]);
  }
}

}  // namespace

int64_t quantize_tensor_(Tensor& w, const Codebook& codebook, const std::string& name) {
  check_finite(w, name);
  float* p = w.data();
  int64_t saturated = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const QuantizedValue q = quantize_value(p[i], codebook);
    p[i] = q.value;
    saturated += q.saturated ? 1 : 0;
  }
  return saturated;
}

int64_t quantize_entries_(Tensor& w, std::span<const int64_t> indices, const Codebook& codebook,
                          const std::string& name) {
  float* p = w.data();
  check_entries_finite(p, indices, w.numel(), w, name);
  int64_t saturated = 0;
  for (const int64_t i : indices) {
    const QuantizedValue q = quantize_value(p[i], codebook);
    p[i] = q.value;
    saturated += q.saturated ? 1 : 0;
  }
  return saturated;
}

}  // namespace inq
