// INQ quantizer (docs/INQ_SPEC.md section 3, paper Eq. 4): the spec's worked values literally, every
// interval boundary and its float neighbours against a slow reference written from Eq. 4, saturation,
// -0.0, and the tensor entry points.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <functional>

#include "framework/error.h"
#include "framework/random.h"
#include "inq/quantizer.h"
#include "tensor_testing.h"

using namespace inq;

namespace {

using test::bit_equal;

// Eq. 4 as written, in double: for adjacent non-negative codebook values alpha < beta,
// w -> sign(w) * beta when (alpha + beta) / 2 <= |w| < 3 * beta / 2; above 1.5 * 2^n1 saturate (D);
// otherwise 0 (as +0.0).
QuantizedValue reference_quantize(float w, const Codebook& cb) {
  const double a = std::fabs(static_cast<double>(w));
  std::vector<double> levels = {0.0};
  for (int k = cb.n2; k <= cb.n1; ++k) levels.push_back(std::ldexp(1.0, k));
  for (size_t i = 0; i + 1 < levels.size(); ++i) {
    const double alpha = levels[i], beta = levels[i + 1];
    if ((alpha + beta) / 2 <= a && a < 3 * beta / 2) {
      const auto v = static_cast<float>(beta);
      return {std::signbit(w) ? -v : v, false};
    }
  }
  if (a >= 1.5 * levels.back()) {
    const auto v = static_cast<float>(levels.back());
    return {std::signbit(w) ? -v : v, true};
  }
  return {0.0f, false};
}

void expect_same_as_reference(float w, const Codebook& cb) {
  const QuantizedValue got = quantize_value(w, cb), want = reference_quantize(w, cb);
  ASSERT_TRUE(bit_equal(got.value, want.value) && got.saturated == want.saturated)
      << "w = " << w << " (bits " << std::hex << std::bit_cast<uint32_t>(w) << std::dec
      << ") with n1 = " << cb.n1 << ", n2 = " << cb.n2 << ": got " << got.value
      << (got.saturated ? " saturated" : "") << ", want " << want.value
      << (want.saturated ? " saturated" : "");
}

// Every threshold of the codebook: 2^(n2-1), and 0.75 * 2^k, 1.5 * 2^k for n2 <= k <= n1.
std::vector<double> thresholds(const Codebook& cb) {
  std::vector<double> t = {std::ldexp(1.0, cb.n2 - 1)};
  for (int k = cb.n2; k <= cb.n1; ++k) {
    t.push_back(std::ldexp(0.75, k));
    t.push_back(std::ldexp(1.5, k));
  }
  return t;
}

}  // namespace

TEST(InqQuantizer, SpecWorkedValues) {
  // Section 3, n1 = 0, b = 5 (n2 = -7).
  const Codebook cb = make_codebook(0.75f, 5, "w");
  ASSERT_EQ(cb.n1, 0);
  ASSERT_EQ(cb.n2, -7);
  const struct {
    float w, want;
    bool saturated;
  } cases[] = {
      {0.9f, 1.0f, false},
      {0.75f, 1.0f, false},
      {-0.75f, -1.0f, false},
      {0.7499f, 0.5f, false},
      {0.375f, 0.5f, false},
      {std::ldexp(1.0f, -8), std::ldexp(1.0f, -7), false},
      {std::ldexp(1.0f, -9), 0.0f, false},
      {1.7f, 1.0f, true},
      {0.1f, 0.125f, false},
      {-0.3f, -0.25f, false},
  };
  for (const auto& c : cases) {
    const QuantizedValue q = quantize_value(c.w, cb);
    EXPECT_TRUE(bit_equal(q.value, c.want)) << c.w << " -> " << q.value << ", want " << c.want;
    EXPECT_EQ(q.saturated, c.saturated) << c.w;
    expect_same_as_reference(c.w, cb);
  }
}

TEST(InqQuantizer, NegativeZeroBecomesZero) {
  const Codebook cb{.bits = 5, .n1 = 0, .n2 = -7};
  EXPECT_TRUE(bit_equal(quantize_value(-0.0f, cb).value, 0.0f));
  EXPECT_TRUE(bit_equal(quantize_value(-std::ldexp(1.0f, -10), cb).value, 0.0f));  // small negatives too
  EXPECT_TRUE(bit_equal(quantize_value(0.0f, cb).value, 0.0f));
}

TEST(InqQuantizer, BoundariesRoundUpInMagnitude) {
  const Codebook cb{.bits = 3, .n1 = 2, .n2 = 1};                         // {0, +-2, +-4}
  EXPECT_EQ(quantize_value(1.0f, cb).value, 2.0f);                        // 2^(n2-1): inclusive
  EXPECT_EQ(quantize_value(std::nextafter(1.0f, 0.0f), cb).value, 0.0f);  // just below
  EXPECT_EQ(quantize_value(3.0f, cb).value, 4.0f);                        // 0.75 * 4 = 1.5 * 2
  EXPECT_EQ(quantize_value(std::nextafter(3.0f, 0.0f), cb).value, 2.0f);
  EXPECT_EQ(quantize_value(-3.0f, cb).value, -4.0f);
  EXPECT_EQ(quantize_value(6.0f, cb).value, 4.0f);  // 1.5 * 2^n1: saturates
  EXPECT_TRUE(quantize_value(6.0f, cb).saturated);
  EXPECT_FALSE(quantize_value(std::nextafter(6.0f, 0.0f), cb).saturated);
}

TEST(InqQuantizer, MatchesEq4AtEveryBoundaryAndItsNeighbours) {
  for (int bits = 2; bits <= 6; ++bits)
    for (int n1 : {-20, -3, 0, 1, 7}) {
      const Codebook cb{.bits = bits, .n1 = n1, .n2 = n1 + 1 - (1 << (bits - 2))};
      for (const double t : thresholds(cb)) {
        float x = static_cast<float>(t);
        ASSERT_EQ(static_cast<double>(x), t);  // thresholds are exact floats here
        for (int i = 0; i < 3; ++i) x = std::nextafter(x, 0.0f);
        for (int i = 0; i < 7; ++i, x = std::nextafter(x, INFINITY)) {
          expect_same_as_reference(x, cb);
          expect_same_as_reference(-x, cb);
        }
      }
    }
}

TEST(InqQuantizer, MatchesEq4OnADenseSweepOfFloats) {
  // Every 1021st float bit pattern from 2^-12 up to 8 (about 120k values), for a 5-bit and a 2-bit codebook.
  const Codebook cbs[] = {{.bits = 5, .n1 = 0, .n2 = -7}, {.bits = 2, .n1 = -1, .n2 = -1}};
  const uint32_t lo = std::bit_cast<uint32_t>(std::ldexp(1.0f, -12)), hi = std::bit_cast<uint32_t>(8.0f);
  for (const Codebook& cb : cbs)
    for (uint32_t b = lo; b <= hi; b += 1021) {
      const float x = std::bit_cast<float>(b);
      expect_same_as_reference(x, cb);
      expect_same_as_reference(-x, cb);
    }
}

TEST(InqQuantizer, MatchesEq4OnRandomValues) {
  Generator gen(3);
  const Codebook cb{.bits = 4, .n1 = -1, .n2 = -4};
  for (int i = 0; i < 20000; ++i) {
    const float w = static_cast<float>(gen.normal(0.0, 0.5));
    expect_same_as_reference(w, cb);
    EXPECT_TRUE(cb.contains(quantize_value(w, cb).value));
  }
}

TEST(InqQuantizer, RejectsNonFinite) {
  const Codebook cb{.bits = 5, .n1 = 0, .n2 = -7};
  EXPECT_THROW(quantize_value(NAN, cb), Error);
  EXPECT_THROW(quantize_value(INFINITY, cb), Error);
}

TEST(InqQuantizer, TensorInPlaceCountsSaturation) {
  const Codebook cb{.bits = 5, .n1 = 0, .n2 = -7};
  Tensor w = Tensor::from_vector({2, 3}, {0.9f, -1.7f, 2.5f, 0.1f, -0.0f, 0.003f});
  EXPECT_EQ(quantize_tensor_(w, cb, "w"), 2);
  EXPECT_EQ(w.to_vector(), (std::vector<float>{1, -1, 1, 0.125f, 0, 0}));
  EXPECT_FALSE(std::signbit(w.data()[4]));
}

TEST(InqQuantizer, TensorErrorsNameTheTensorAndChangeNothing) {
  const Codebook cb{.bits = 5, .n1 = 0, .n2 = -7};
  Tensor w = Tensor::from_vector({3}, {0.9f, NAN, 0.3f});
  try {
    quantize_tensor_(w, cb, "layer4.1.conv2.weight");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer4.1.conv2.weight"), std::string::npos) << e.what();
  }
  EXPECT_EQ(w.data()[0], 0.9f);  // untouched
}

TEST(InqQuantizer, EntriesOnlyTouchTheGivenIndices) {
  const Codebook cb{.bits = 5, .n1 = 0, .n2 = -7};
  Tensor w = Tensor::from_vector({4}, {0.9f, 0.3f, 1.7f, NAN});
  const std::vector<int64_t> idx = {0, 2};
  EXPECT_EQ(quantize_entries_(w, idx, cb, "w"), 1);
  EXPECT_EQ(w.data()[0], 1.0f);
  EXPECT_EQ(w.data()[1], 0.3f);
  EXPECT_EQ(w.data()[2], 1.0f);
  const std::vector<int64_t> bad = {1, 4};
  EXPECT_THROW(quantize_entries_(w, bad, cb, "w"), Error);
  EXPECT_EQ(w.data()[1], 0.3f);  // checked before changing anything
  const std::vector<int64_t> nan = {1, 3};
  EXPECT_THROW(quantize_entries_(w, nan, cb, "w"), Error);
  EXPECT_EQ(w.data()[1], 0.3f);
}
