// Per-example image transforms: flip, crop with zero padding, normalize, and pipelines.
#include <gtest/gtest.h>

#include <set>
#include <utility>
#include <vector>

#include "data/transforms.h"
#include "framework/error.h"
#include "framework/random.h"

using namespace inq;

namespace {

// A (C, H, W) image whose pixel (c, y, x) holds 100c + 10y + x + 1 (never 0, so padding shows).
std::vector<float> coded_image(int64_t C, int64_t H, int64_t W) {
  std::vector<float> v(static_cast<size_t>(C * H * W));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        v[static_cast<size_t>((c * H + y) * W + x)] = 100.0f * c + 10.0f * y + x + 1;
  return v;
}

float at(const std::vector<float>& v, int64_t H, int64_t W, int64_t c, int64_t y, int64_t x) {
  return v[static_cast<size_t>((c * H + y) * W + x)];
}

}  // namespace

TEST(Transforms, HorizontalFlipMirrorsRowsAndTwiceIsIdentity) {
  const int64_t C = 2, H = 3, W = 5;
  const std::vector<float> original = coded_image(C, H, W);
  std::vector<float> v = original;
  horizontal_flip({v.data(), C, H, W});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) EXPECT_EQ(at(v, H, W, c, y, x), at(original, H, W, c, y, W - 1 - x));
  horizontal_flip({v.data(), C, H, W});
  EXPECT_EQ(v, original);
}

TEST(Transforms, CropWithPaddingShiftsContentAndZeroFills) {
  const int64_t C = 2, H = 4, W = 6, pad = 2;
  const std::vector<float> original = coded_image(C, H, W);
  // Every offset: output (y, x) = input (y + top - pad, x + left - pad), or 0 outside.
  for (int64_t top = 0; top <= 2 * pad; ++top) {
    for (int64_t left = 0; left <= 2 * pad; ++left) {
      std::vector<float> v = original;
      crop_with_padding({v.data(), C, H, W}, pad, top, left);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < H; ++y)
          for (int64_t x = 0; x < W; ++x) {
            const int64_t sy = y + top - pad, sx = x + left - pad;
            const float want =
                (sy >= 0 && sy < H && sx >= 0 && sx < W) ? at(original, H, W, c, sy, sx) : 0.0f;
            ASSERT_EQ(at(v, H, W, c, y, x), want) << top << " " << left << " " << c << " " << y << " " << x;
          }
    }
  }
  // A concrete case: top = left = 0 moves the content 2 down and 2 right.
  std::vector<float> v = original;
  crop_with_padding({v.data(), C, H, W}, pad, 0, 0);
  EXPECT_EQ(at(v, H, W, 0, 2, 2), at(original, H, W, 0, 0, 0));
  EXPECT_EQ(at(v, H, W, 1, 3, 5), at(original, H, W, 1, 1, 3));
  EXPECT_EQ(at(v, H, W, 0, 1, 4), 0.0f);
  // The centre offset is the identity.
  v = original;
  crop_with_padding({v.data(), C, H, W}, pad, pad, pad);
  EXPECT_EQ(v, original);
  // Padding larger than the image: an extreme offset leaves only zeros.
  v = original;
  crop_with_padding({v.data(), C, H, W}, 7, 0, 0);
  EXPECT_EQ(v, std::vector<float>(v.size(), 0.0f));
  EXPECT_THROW(crop_with_padding({v.data(), C, H, W}, pad, 5, 0), Error);
  EXPECT_THROW(crop_with_padding({v.data(), C, H, W}, pad, 0, -1), Error);
  EXPECT_THROW(crop_with_padding({v.data(), C, H, W}, -1, 0, 0), Error);
}

TEST(Transforms, NormalizeUsesPerChannelMeanAndStd) {
  std::vector<float> v = {0.0f, 0.5f, 1.0f, 0.0f, 0.5f, 1.0f};  // (2, 1, 3)
  Generator gen(1);
  normalize({0.5f, 0.25f}, {0.5f, 2.0f})({v.data(), 2, 1, 3}, gen);
  EXPECT_EQ(v, (std::vector<float>{-1.0f, 0.0f, 1.0f, -0.125f, 0.125f, 0.375f}));
  // One mean/std for every channel.
  std::vector<float> w = {1.0f, 2.0f};  // (2, 1, 1)
  normalize({1.0f}, {0.5f})({w.data(), 2, 1, 1}, gen);
  EXPECT_EQ(w, (std::vector<float>{0.0f, 2.0f}));
  // Fashion-MNIST's train statistics: a 0 pixel becomes -mean/std.
  std::vector<float> z = {0.0f};
  normalize({0.2860406f}, {0.3530242f})({z.data(), 1, 1, 1}, gen);
  EXPECT_NEAR(z[0], -0.8102576, 1e-6);
  // Normalize draws nothing.
  Generator fresh(1);
  EXPECT_EQ(gen.next_u64(), fresh.next_u64());
  // Bad arguments.
  EXPECT_THROW(normalize({}, {}), Error);
  EXPECT_THROW(normalize({0.5f}, {0.0f}), Error);
  EXPECT_THROW(normalize({0.5f}, {-1.0f}), Error);
  EXPECT_THROW(normalize({0.5f, 0.5f}, {1.0f}), Error);
  EXPECT_THROW(normalize({0.5f, 0.5f}, {1.0f, 1.0f})({v.data(), 3, 1, 2}, gen), Error);
}

TEST(Transforms, RandomCropIsDeterministicAndCoversEveryOffset) {
  const int64_t H = 5, W = 5, pad = 2;
  const std::vector<float> original = coded_image(1, H, W);
  const Transform crop = random_crop(pad);
  std::set<std::pair<int64_t, int64_t>> seen;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    std::vector<float> a = original, b = original;
    Generator g1(seed), g2(seed);
    crop({a.data(), 1, H, W}, g1);
    crop({b.data(), 1, H, W}, g2);
    ASSERT_EQ(a, b) << seed;
    // The crop equals crop_with_padding at the offset drawn by the same generator sequence.
    Generator g3(seed);
    const auto top = static_cast<int64_t>(g3.uniform_int(2 * pad + 1));
    const auto left = static_cast<int64_t>(g3.uniform_int(2 * pad + 1));
    std::vector<float> c = original;
    crop_with_padding({c.data(), 1, H, W}, pad, top, left);
    ASSERT_EQ(a, c) << seed;
    seen.insert({top, left});
  }
  EXPECT_EQ(seen.size(), 25u);  // all (2p+1)^2 offsets occur
  EXPECT_THROW(random_crop(-1), Error);
}

TEST(Transforms, RandomFlipFlipsAboutHalfTheTimeAndAlwaysDrawsOnce) {
  const std::vector<float> original = coded_image(1, 2, 3);
  const Transform flip = random_horizontal_flip(0.5);
  int flipped = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    std::vector<float> v = original;
    Generator gen(seed);
    flip({v.data(), 1, 2, 3}, gen);
    if (v != original) {
      ++flipped;
      horizontal_flip({v.data(), 1, 2, 3});
      ASSERT_EQ(v, original);
    }
    // Exactly one draw, whatever the outcome.
    Generator ref(seed);
    ref.next_u64();
    ASSERT_EQ(gen.next_u64(), ref.next_u64());
  }
  EXPECT_NEAR(flipped, 1000, 120);
  // p = 0 never flips, p = 1 always does.
  std::vector<float> v = original;
  Generator gen(5);
  random_horizontal_flip(0.0)({v.data(), 1, 2, 3}, gen);
  EXPECT_EQ(v, original);
  random_horizontal_flip(1.0)({v.data(), 1, 2, 3}, gen);
  EXPECT_NE(v, original);
  EXPECT_THROW(random_horizontal_flip(1.5), Error);
}

TEST(Transforms, PipelineAppliesStepsInOrderDeterministically) {
  const int64_t H = 6, W = 6;
  const std::vector<float> original = coded_image(1, H, W);
  const TransformPipeline pipeline{random_horizontal_flip(), random_crop(2), normalize({10.0f}, {2.0f})};
  EXPECT_EQ(pipeline.size(), 3u);
  bool any_differs = false;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::vector<float> a = original, b = original, manual = original;
    Generator g1(seed), g2(seed), g3(seed);
    pipeline.apply({a.data(), 1, H, W}, g1);
    pipeline.apply({b.data(), 1, H, W}, g2);
    EXPECT_EQ(a, b);
    // The same steps by hand, in order, from the same generator.
    random_horizontal_flip()({manual.data(), 1, H, W}, g3);
    random_crop(2)({manual.data(), 1, H, W}, g3);
    normalize({10.0f}, {2.0f})({manual.data(), 1, H, W}, g3);
    EXPECT_EQ(a, manual);
    std::vector<float> other = original;
    Generator g4(seed + 1000);
    pipeline.apply({other.data(), 1, H, W}, g4);
    any_differs = any_differs || other != a;
  }
  EXPECT_TRUE(any_differs);
  TransformPipeline empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_THROW(empty.add(Transform()), Error);
}
