#pragma once
// The INQ quantizer (paper Eq. 4, docs/INQ_SPEC.md section 3). For adjacent non-negative codebook values
// alpha < beta, w -> sign(w) * beta when (alpha + beta) / 2 <= |w| < 3 * beta / 2. On |w|:
//   |w| <  2^(n2-1)                  -> 0
//   2^(n2-1)   <= |w| < 1.5 * 2^n2   -> 2^n2
//   0.75 * 2^k <= |w| < 1.5 * 2^k    -> 2^k   for n2 < k <= n1
//   |w| >= 1.5 * 2^n1                -> 2^n1  saturated (D: counted; the literal rule would give 0)
// Lower bounds are inclusive, so exact boundaries round up in magnitude. The sign is kept, except that
// every zero result is +0.0 (-0.0 -> 0). Comparisons are exact (thresholds are computed in double, where
// 0.75 * 2^k and 1.5 * 2^k are exact for every float exponent).
#include <cstdint>
#include <span>
#include <string>

#include "framework/tensor.h"
#include "inq/codebook.h"

namespace inq {

struct QuantizedValue {
  float value = 0;         // a codebook value
  bool saturated = false;  // |w| >= 1.5 * 2^n1
};

// Quantizes one finite value (throws inq::Error for NaN or Inf).
QuantizedValue quantize_value(float w, const Codebook& codebook);

// Quantizes every entry of w in place and returns how many saturated. Throws, naming `name`, before
// changing anything when an entry is NaN or Inf.
int64_t quantize_tensor_(Tensor& w, const Codebook& codebook, const std::string& name);
// Quantizes the entries w[i] for the flat indices i in `indices` (each in [0, numel)) and returns how
// many saturated. Checks the indices and the finiteness of those entries before changing anything.
int64_t quantize_entries_(Tensor& w, std::span<const int64_t> indices, const Codebook& codebook,
                          const std::string& name);

}  // namespace inq
