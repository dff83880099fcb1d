// INQ codebook (docs/INQ_SPEC.md section 2): n1/n2 from max |w| and the bit-width, the exact
// floor(log2(4s/3)) at and around the power-of-two boundaries, levels, membership, and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "error_testing.h"
#include "framework/error.h"
#include "framework/random.h"
#include "inq/codebook.h"

using namespace inq;
using test::error_of;

namespace {

// The defining inequality, evaluated exactly in double: 2^k <= 4a/3 < 2^(k+1), i.e. 3 * 2^k <= 4a < 3 *
// 2^(k+1) (4a and 3 * 2^k are exact doubles for every float a).
bool is_floor_log2_four_thirds(double a, int k) {
  return std::ldexp(3.0, k) <= 4.0 * a && 4.0 * a < std::ldexp(3.0, k + 1);
}

}  // namespace

TEST(InqCodebook, SpecExamplesPerBitWidth) {
  // b=5 -> n1-n2 = 7 (17 values); b=4 -> 3 (9); b=3 -> 1 (5); b=2 -> 0 (ternary).
  const struct { int bits, span, values; } cases[] = {{5, 7, 17}, {4, 3, 9}, {3, 1, 5}, {2, 0, 3}};
  for (const auto& c : cases) {
    const Codebook cb = make_codebook(1.0f, c.bits, "w");
    SCOPED_TRACE(c.bits);
    EXPECT_EQ(cb.n1, 0);  // 4/3 -> floor(log2) = 0
    EXPECT_EQ(cb.n1 - cb.n2, c.span);
    EXPECT_EQ(cb.level_count(), c.values);
    EXPECT_EQ(static_cast<int>(cb.levels().size()), c.values);
    // Section 2: a b-bit codebook has 2^(b-1) non-zero values.
    EXPECT_EQ(cb.level_count() - 1, int64_t{1} << (c.bits - 1));
  }
  const Codebook ternary = make_codebook(0.3f, 2, "w");  // 0.4 -> n1 = -2
  EXPECT_EQ(ternary.n1, -2);
  EXPECT_EQ(ternary.levels(), (std::vector<float>{-0.25f, 0.0f, 0.25f}));
}

TEST(InqCodebook, N1AtPowerOfTwoBoundaries) {
  for (int k = -140; k <= 126; ++k) {
    SCOPED_TRACE(k);
    // s = 0.75 * 2^k gives n1 = k; s = 1.5 * 2^k gives n1 = k + 1.
    const double lo = std::ldexp(0.75, k), hi = std::ldexp(1.5, k);
    EXPECT_EQ(floor_log2_four_thirds(lo), k);
    EXPECT_EQ(floor_log2_four_thirds(hi), k + 1);
    // The float just below each boundary falls one lower.
    EXPECT_EQ(floor_log2_four_thirds(std::nextafter(static_cast<float>(lo), 0.0f)), k - 1);
    EXPECT_EQ(floor_log2_four_thirds(std::nextafter(static_cast<float>(hi), 0.0f)), k);
    // Powers of two themselves: 2^k -> 4/3 * 2^k -> k.
    EXPECT_EQ(floor_log2_four_thirds(std::ldexp(1.0, k)), k);
    if (k > -120 && k < 120) {
      EXPECT_EQ(make_codebook(static_cast<float>(lo), 5, "w").n1, k);
      EXPECT_EQ(make_codebook(static_cast<float>(hi), 5, "w").n1, k + 1);
    }
  }
}

TEST(InqCodebook, N1SatisfiesTheExactInequality) {
  // Every float around the boundaries and a spread of random floats: the result satisfies the defining
  // inequality exactly.
  int checked = 0;
  auto check = [&](float s) {
    const int k = floor_log2_four_thirds(s);
    ASSERT_TRUE(is_floor_log2_four_thirds(s, k)) << "s = " << s << " k = " << k;
    ++checked;
  };
  for (int k = -130; k <= 126; ++k)
    for (const double base : {0.75, 1.5}) {
      float s = static_cast<float>(std::ldexp(base, k));
      for (int i = 0; i < 4; ++i) s = std::nextafter(s, 0.0f);
      for (int i = 0; i < 9; ++i, s = std::nextafter(s, INFINITY)) check(s);
    }
  Generator gen(7);
  for (int i = 0; i < 20000; ++i) {
    uint32_t bits = static_cast<uint32_t>(gen.next_u64()) & 0x7f7fffffu;  // finite, positive
    float s;
    std::memcpy(&s, &bits, sizeof(s));
    if (s > 0) check(s);
  }
  EXPECT_GT(checked, 20000);
  // Doubles (the argument type) right next to the boundaries, where 4a/3 rounds onto a power of two.
  for (int k = -60; k <= 60; ++k)
    for (const double base : {0.75, 1.5}) {
      const double b = std::ldexp(base, k);
      for (const double a : {std::nextafter(b, 0.0), b, std::nextafter(b, INFINITY)}) {
        const int got = floor_log2_four_thirds(a);
        EXPECT_TRUE(is_floor_log2_four_thirds(a, got)) << "a = " << a << " k = " << got;
      }
    }
}

TEST(InqCodebook, ZeroTensorHasN1Zero) {
  const Codebook cb = make_codebook(Tensor::zeros({3, 4}), 5, "all_zero");
  EXPECT_EQ(cb.n1, 0);
  EXPECT_EQ(cb.n2, -7);
  EXPECT_EQ(make_codebook(0.0f, 2, "z").n2, 0);
}

TEST(InqCodebook, FromTensorUsesMaxAbs) {
  const Codebook cb = make_codebook(Tensor::from_vector({4}, {0.1f, -0.9f, 0.3f, 0.2f}), 4, "w");
  EXPECT_EQ(cb.n1, 0);  // 4 * 0.9 / 3 = 1.2
  EXPECT_EQ(cb.n2, -3);
  const Codebook neg = make_codebook(Tensor::from_vector({2}, {0.1f, -0.375f}), 3, "w");
  EXPECT_EQ(neg.n1, -1);  // 0.375 = 0.75 * 2^-1 -> exactly -1
  EXPECT_EQ(neg.n2, -2);
}

TEST(InqCodebook, RejectsBadBitWidths) {
  for (int b : {1, 0, -3}) {
    const std::string m = error_of([&] { make_codebook(1.0f, b, "layer.weight"); });
    EXPECT_NE(m.find("b = " + std::to_string(b)), std::string::npos) << m;
    EXPECT_NE(m.find("expected b >= 2"), std::string::npos) << m;
    EXPECT_NE(m.find("layer.weight"), std::string::npos) << m;
  }
  EXPECT_EQ(max_codebook_bits(), 10);  // 2^8 exponents fit in float's 277; 2^9 do not
  EXPECT_THROW(make_codebook(1.0f, max_codebook_bits() + 1, "w"), Error);
  // b = 10 needs n2 = n1 - 255 >= -149, i.e. a very large s.
  EXPECT_THROW(make_codebook(1.0f, 10, "w"), Error);
  EXPECT_EQ(make_codebook(std::ldexp(1.0f, 120), 10, "w").n2, 120 - 255);
}

TEST(InqCodebook, NonFiniteWeightsNameTheTensor) {
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    Tensor w = Tensor::from_vector({2, 2}, {0.1f, 0.2f, bad, 0.3f});
    const std::string m = error_of([&] { make_codebook(w, 5, "features.3.weight"); });
    EXPECT_NE(m.find("features.3.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("entry 2"), std::string::npos) << m;
    EXPECT_THROW(make_codebook(bad, 5, "w"), Error);
  }
  EXPECT_THROW(make_codebook(-1.0f, 5, "w"), Error);
}

TEST(InqCodebook, RejectsScalesOutsideFloatRange) {
  // s >= 1.5 * 2^127 would need 2^128.
  EXPECT_THROW(make_codebook(std::numeric_limits<float>::max(), 5, "huge"), Error);
  EXPECT_EQ(make_codebook(std::ldexp(1.0f, 127), 5, "big").n1, 127);
  // s tiny: n2 below 2^-149.
  const std::string m = error_of([] { make_codebook(std::ldexp(1.0f, -145), 5, "tiny"); });
  EXPECT_NE(m.find("tiny"), std::string::npos) << m;
  EXPECT_EQ(make_codebook(std::ldexp(1.0f, -142), 5, "ok").n2, -149);
}

TEST(InqCodebook, LevelsAscendingAndExact) {
  const Codebook cb{.bits = 4, .n1 = 1, .n2 = -2};
  EXPECT_EQ(cb.levels(), (std::vector<float>{-2, -1, -0.5f, -0.25f, 0, 0.25f, 0.5f, 1, 2}));
  for (float v : cb.levels()) EXPECT_TRUE(cb.contains(v)) << v;
}

TEST(InqCodebook, ContainsIsExact) {
  const Codebook cb{.bits = 5, .n1 = 0, .n2 = -7};
  EXPECT_TRUE(cb.contains(0.0f));
  EXPECT_FALSE(cb.contains(-0.0f));  // the quantizer never writes -0.0
  EXPECT_TRUE(cb.contains(1.0f));
  EXPECT_TRUE(cb.contains(-1.0f));
  EXPECT_TRUE(cb.contains(std::ldexp(1.0f, -7)));
  EXPECT_FALSE(cb.contains(2.0f));                  // k = 1 > n1
  EXPECT_FALSE(cb.contains(std::ldexp(1.0f, -8)));  // k = -8 < n2
  EXPECT_FALSE(cb.contains(0.75f));                 // not a power of two
  EXPECT_FALSE(cb.contains(std::nextafter(0.5f, 1.0f)));
  EXPECT_FALSE(cb.contains(std::nextafter(0.5f, 0.0f)));
  EXPECT_FALSE(cb.contains(NAN));
  EXPECT_FALSE(cb.contains(INFINITY));
  // Subnormal powers of two.
  const Codebook tiny{.bits = 3, .n1 = -147, .n2 = -148};
  EXPECT_TRUE(tiny.contains(std::ldexp(1.0f, -148)));
  EXPECT_FALSE(tiny.contains(std::ldexp(1.0f, -149)));
}

TEST(InqCodebook, ValidateChecksConsistency) {
  EXPECT_NO_THROW((Codebook{.bits = 5, .n1 = 0, .n2 = -7}.validate("w")));
  EXPECT_THROW((Codebook{.bits = 5, .n1 = 0, .n2 = -6}.validate("w")), Error);
  EXPECT_THROW((Codebook{.bits = 1, .n1 = 0, .n2 = 1}.validate("w")), Error);
  EXPECT_THROW((Codebook{.bits = 2, .n1 = 128, .n2 = 128}.validate("w")), Error);
  EXPECT_THROW((Codebook{.bits = 2, .n1 = -150, .n2 = -150}.validate("w")), Error);
}
