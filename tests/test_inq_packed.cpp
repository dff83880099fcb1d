// The packed low-bit codes of a quantized tensor (inq/packed.h, docs/INQ_SPEC.md section 7): a layout
// worked by hand, round trips at every bit-width, and refusal of values and codes that are not in
// the codebook.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "error_testing.h"
#include "framework/error.h"
#include "inq/packed.h"

using namespace inq;

namespace {

using test::expect_error;

Codebook codebook(int bits, int n1) { return Codebook{.bits = bits, .n1 = n1, .n2 = n1 + 1 - (1 << (bits - 2))}; }

std::vector<uint32_t> bit_patterns(const Tensor& t) {
  std::vector<uint32_t> out(static_cast<size_t>(t.numel()));
  std::memcpy(out.data(), t.data(), out.size() * sizeof(float));
  return out;
}

}  // namespace

TEST(InqPacked, ByteCounts) {
  EXPECT_EQ(packed_bytes(0, 5), 0);
  EXPECT_EQ(packed_bytes(1, 5), 1);
  EXPECT_EQ(packed_bytes(8, 5), 5);
  EXPECT_EQ(packed_bytes(9, 5), 6);
  EXPECT_EQ(packed_bytes(4, 2), 1);
  EXPECT_EQ(packed_bytes(5, 2), 2);
  EXPECT_EQ(packed_bytes(270608, 5), 169130);
  expect_error([] { packed_bytes(std::numeric_limits<int64_t>::max() / 2, 5); }, {"fits in 64 bits"});
}

TEST(InqPacked, CodesOfAThreeBitCodebookWorkedByHand) {
  // b = 3, n1 = -1, n2 = -2: {0, +-0.5, +-0.25}. Code = sign * 4 + (n1 - k + 1).
  const Codebook cb = codebook(3, -1);
  ASSERT_EQ(cb.n2, -2);
  EXPECT_EQ(weight_code(0.0f, cb), 0);
  EXPECT_EQ(weight_code(0.5f, cb), 1);
  EXPECT_EQ(weight_code(-0.5f, cb), 5);
  EXPECT_EQ(weight_code(0.25f, cb), 2);
  EXPECT_EQ(weight_code(-0.25f, cb), 6);
  EXPECT_EQ(weight_code(-0.0f, cb), -1);  // the sign of zero cannot be kept
  EXPECT_EQ(weight_code(1.0f, cb), -1);
  EXPECT_EQ(weight_code(0.125f, cb), -1);
  EXPECT_EQ(weight_code(0.3f, cb), -1);
  EXPECT_EQ(weight_code(std::nanf(""), cb), -1);
  EXPECT_EQ(weight_code(std::numeric_limits<float>::infinity(), cb), -1);

  // Codes 0, 1, 5, 2, 6 at bits 0-2, 3-5, 6-8, 9-11, 12-14, least significant bit first:
  // byte 0 = bit 3 (code 1) + bit 6 (low bit of code 5) = 0x48; byte 1 = bit 8 (high bit of code 5)
  // + bit 10 (code 2) + bits 13, 14 (code 6) = 0x01 + 0x04 + 0x20 + 0x40 = 0x65; bit 15 is padding.
  const Tensor values = Tensor::from_vector({5}, {0.0f, 0.5f, -0.5f, 0.25f, -0.25f});
  const PackedTensor p = pack_tensor("w", values, cb);
  EXPECT_EQ(p.codes, (std::vector<uint8_t>{0x48, 0x65}));
  EXPECT_EQ(p.shape, (Shape{5}));
  EXPECT_EQ(unpack_tensor("w", p).to_vector(), values.to_vector());
}

TEST(InqPacked, EveryBitWidthRoundTripsBitForBit) {
  std::mt19937 rng(7);
  for (int bits = 2; bits <= max_codebook_bits(); ++bits) {
    // The lowest n1 keeps 2^n2 a float (subnormal); also one ordinary and one large n1.
    const int lowest_n1 = -149 + (1 << (bits - 2)) - 1;
    for (int n1 : {lowest_n1, std::max(lowest_n1, -3), 127}) {
      const Codebook cb = codebook(bits, n1);
      const std::vector<float> levels = cb.levels();
      for (int64_t n : {1, 7, 13, 64, 1001}) {
        std::vector<float> v(static_cast<size_t>(n));
        for (auto& x : v) x = levels[rng() % levels.size()];
        if (n >= static_cast<int64_t>(levels.size()))  // every level at least once
          std::copy(levels.begin(), levels.end(), v.begin());
        const Tensor t = Tensor::from_vector({n}, v);
        const PackedTensor p = pack_tensor("w", t, cb);
        EXPECT_EQ(static_cast<int64_t>(p.codes.size()), packed_bytes(n, bits));
        EXPECT_EQ(bit_patterns(unpack_tensor("w", p)), bit_patterns(t)) << "bits " << bits << " n1 " << n1;
      }
    }
  }
}

TEST(InqPacked, PackingRefusesValuesOutsideTheCodebook) {
  const Codebook cb = codebook(4, 0);  // {0, +-2^-3 .. +-2^0}
  for (float bad : {0.3f, 2.0f, 0.0625f, -0.0f, std::nanf(""), -std::numeric_limits<float>::infinity()}) {
    const Tensor t = Tensor::from_vector({3}, {1.0f, bad, 0.5f});
    expect_error([&] { pack_tensor("layer.weight", t, cb); }, {"'layer.weight' to pack"});
    expect_error([&] { pack_tensor("layer.weight", t, cb); }, {"[1] ="});
  }
  expect_error([] { pack_tensor("w", Tensor::zeros({2}), Codebook{.bits = 4, .n1 = 0, .n2 = 0}); }, {"'w'"});
}

TEST(InqPacked, UnpackingRefusesCodesThatMeanNothing) {
  const Codebook cb = codebook(3, 0);  // offsets 1 and 2 are valid; 3 is not, nor 4 (minus zero)
  auto unpack = [&](std::vector<uint8_t> codes, int64_t n) {
    return unpack_tensor("w", PackedTensor{.shape = {n}, .codebook = cb, .codes = std::move(codes)});
  };
  EXPECT_EQ(unpack({0b010001}, 2).to_vector(), (std::vector<float>{1.0f, 0.5f}));
  expect_error([&] { unpack({0b011001}, 2); }, {"code [1] = 3"});
  expect_error([&] { unpack({0b100001}, 2); }, {"code [1] = 4"});  // sign bit over a zero offset
  expect_error([&] { unpack({0b111}, 1); }, {"code [0] = 7"});
  expect_error([&] { unpack({0b1000001}, 2); }, {"padding bits"});
  expect_error([&] { unpack({0x01, 0x00}, 2); }, {"expected 1 bytes"});
  expect_error([&] { unpack({}, 2); }, {"expected 1 bytes"});
}
