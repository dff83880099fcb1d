// Resizing and cropping of RGB images (data/image_transforms.h) against a naive reference, the
// torchvision size and offset rules, and RandomResizedCrop's determinism and bounds. The
// byte-for-byte comparison with PIL itself is in tests/image_parity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "data/image_transforms.h"
#include "framework/error.h"
#include "framework/random.h"
#include "image_testing.h"

using namespace inq;
using namespace inq::test;

namespace {

// Weights of PIL's antialiased triangle filter for one output pixel, straight from the definition:
// centre (o + 0.5) * scale, support max(scale, 1), weight 1 - |j + 0.5 - centre| / support for
// every input pixel j, normalized to sum 1. No bounds tricks, no fixed point.
std::vector<double> reference_weights(int64_t in_size, int64_t out_size, int64_t o) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double support = std::max(scale, 1.0);
  const double centre = (static_cast<double>(o) + 0.5) * scale;
  std::vector<double> w(static_cast<size_t>(in_size));
  double total = 0.0;
  for (int64_t j = 0; j < in_size; ++j) {
    const double d = std::fabs(static_cast<double>(j) + 0.5 - centre) / support;
    w[static_cast<size_t>(j)] = d < 1.0 ? 1.0 - d : 0.0;
    total += w[static_cast<size_t>(j)];
  }
  for (double& v : w) v /= total;
  return w;
}

// The 2-D filter in double, rounded once at the end.
RgbImage reference_resize(const RgbImage& in, int64_t out_h, int64_t out_w) {
  RgbImage out(out_h, out_w);
  for (int64_t y = 0; y < out_h; ++y) {
    const std::vector<double> wy = reference_weights(in.height, out_h, y);
    for (int64_t x = 0; x < out_w; ++x) {
      const std::vector<double> wx = reference_weights(in.width, out_w, x);
      for (int c = 0; c < 3; ++c) {
        double v = 0.0;
        for (int64_t j = 0; j < in.height; ++j) {
          if (wy[static_cast<size_t>(j)] == 0.0) continue;
          for (int64_t i = 0; i < in.width; ++i) v += wy[static_cast<size_t>(j)] * wx[static_cast<size_t>(i)] * in.row(j)[3 * i + c];
        }
        out.row(y)[3 * x + c] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return out;
}

int max_abs_difference(const RgbImage& a, const RgbImage& b) {
  EXPECT_EQ(a.height, b.height);
  EXPECT_EQ(a.width, b.width);
  int worst = 0;
  for (size_t i = 0; i < std::min(a.pixels.size(), b.pixels.size()); ++i)
    worst = std::max(worst, std::abs(int{a.pixels[i]} - int{b.pixels[i]}));
  return worst;
}

}  // namespace

TEST(ImageResize, MatchesTheNaiveTriangleFilterWithinOneLevel) {
  // Up, down (by integer and odd factors) and mixed, on a pattern with noise.
  const struct {
    int64_t in_h, in_w, out_h, out_w;
  } cases[] = {{13, 17, 13, 40}, {40, 30, 7, 11}, {25, 25, 24, 26}, {9, 50, 31, 5}, {64, 48, 16, 12}, {5, 3, 17, 11}};
  for (const auto& c : cases) {
    const RgbImage in = test_pattern(c.in_h, c.in_w, static_cast<uint64_t>(c.in_h * 100 + c.out_w));
    const RgbImage fast = resize_bilinear(in, c.out_h, c.out_w);
    // PIL rounds to bytes between its two passes; that and the final rounding cost at most 1.
    EXPECT_LE(max_abs_difference(fast, reference_resize(in, c.out_h, c.out_w)), 1)
        << c.in_h << "x" << c.in_w << " -> " << c.out_h << "x" << c.out_w;
  }
}

TEST(ImageResize, SameSizeIsACopyAndConstantStaysConstant) {
  const RgbImage in = test_pattern(11, 19, 4);
  EXPECT_EQ(resize_bilinear(in, 11, 19).pixels, in.pixels);
  RgbImage flat(23, 31);
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t{173});
  for (const auto& [h, w] : {std::pair<int64_t, int64_t>{5, 7}, {50, 90}, {23, 4}}) {
    const RgbImage out = resize_bilinear(flat, h, w);
    EXPECT_TRUE(std::all_of(out.pixels.begin(), out.pixels.end(), [](uint8_t v) { return v == 173; }))
        << h << "x" << w;
  }
}

TEST(ImageResize, WindowAndBoxAreTheCorrespondingPartsOfTheFullResize) {
  const RgbImage in = test_pattern(57, 83, 5);
  const RgbImage full = resize_bilinear(in, 40, 29);
  const CropBox window{7, 3, 20, 19};
  const RgbImage part = resize_bilinear_window(in, CropBox{0, 0, 57, 83}, 40, 29, window);
  EXPECT_EQ(part.pixels, crop(full, window).pixels);
  // A box resizes like PIL's crop-then-resize.
  const CropBox box{10, 20, 30, 40};
  EXPECT_EQ(resize_bilinear(in, box, 13, 17).pixels, resize_bilinear(crop(in, box), 13, 17).pixels);
  EXPECT_THROW(resize_bilinear(in, CropBox{50, 0, 10, 10}, 5, 5), Error);  // outside the image
  EXPECT_THROW(resize_bilinear(in, 0, 5), Error);
}

TEST(ImageResize, ShorterSideSizeFollowsTorchvision) {
  // torchvision: new_long = int(size * long / short), the short side exactly size.
  EXPECT_EQ(shorter_side_resize_size(375, 500, 256), (ImageSize{256, 341}));  // 341.33
  EXPECT_EQ(shorter_side_resize_size(500, 375, 256), (ImageSize{341, 256}));
  EXPECT_EQ(shorter_side_resize_size(333, 500, 256), (ImageSize{256, 384}));  // 384.38
  EXPECT_EQ(shorter_side_resize_size(256, 256, 256), (ImageSize{256, 256}));
  EXPECT_EQ(shorter_side_resize_size(3, 1000, 256), (ImageSize{256, 85333}));
  EXPECT_EQ(shorter_side_resize_size(100, 150, 224), (ImageSize{224, 336}));  // upscaling
  EXPECT_EQ(shorter_side_resize_size(7, 9, 256), (ImageSize{256, 329}));      // 329.14
  EXPECT_THROW(shorter_side_resize_size(0, 10, 256), Error);
}

TEST(ImageCrop, CenterCropRoundsHalfToEvenLikePython) {
  // int(round((H - h) / 2.0)): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4.
  EXPECT_EQ(center_crop_placement(11, 10, 10, 10).source.top, 0);
  EXPECT_EQ(center_crop_placement(13, 10, 10, 10).source.top, 2);
  EXPECT_EQ(center_crop_placement(15, 10, 10, 10).source.top, 2);
  EXPECT_EQ(center_crop_placement(10, 17, 10, 10).source.left, 4);
  EXPECT_EQ(center_crop_placement(256, 341, 224, 224).source, (CropBox{16, 58, 224, 224}));  // 58.5 -> 58

  const RgbImage in = test_pattern(15, 12, 6);
  const RgbImage out = center_crop(in, 10, 10);
  for (int64_t y = 0; y < 10; ++y)
    for (int64_t x = 0; x < 10; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(out.row(y)[3 * x + c], in.row(y + 2)[3 * (x + 1) + c]);
}

TEST(ImageCrop, CenterCropLargerThanTheImagePadsWithZerosLikeTorchvision) {
  // Crop 7x6 from 3x4: rows padded (7-3)//2 = 2 above, 2 below; columns 1 left, 1 right.
  const RgbImage in = test_pattern(3, 4, 7);
  const RgbImage out = center_crop(in, 7, 6);
  ASSERT_EQ(out.height, 7);
  ASSERT_EQ(out.width, 6);
  for (int64_t y = 0; y < 7; ++y)
    for (int64_t x = 0; x < 6; ++x) {
      const bool inside = y >= 2 && y < 5 && x >= 1 && x < 5;
      for (int c = 0; c < 3; ++c)
        EXPECT_EQ(out.row(y)[3 * x + c], inside ? in.row(y - 2)[3 * (x - 1) + c] : 0) << y << "," << x;
    }
  // Padded on one axis, cropped on the other: 5 rows from 2 (pad 1 above, 2 below); 3 columns of 8
  // at int(round(5 / 2.0)) = 2.
  const RgbImage tall = test_pattern(2, 8, 8);
  const RgbImage mixed = center_crop(tall, 5, 3);
  EXPECT_EQ(mixed.row(1)[0], tall.row(0)[3 * 2]);
  EXPECT_EQ(mixed.row(0)[0], 0);
  EXPECT_EQ(mixed.row(4)[0], 0);
}

TEST(ImageCrop, ResizeAndCenterCropEqualsTheTwoStepsForManySizes) {
  Generator gen(9);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t h = 1 + static_cast<int64_t>(gen.uniform_int(90));
    const int64_t w = 1 + static_cast<int64_t>(gen.uniform_int(90));
    const int64_t resize = 1 + static_cast<int64_t>(gen.uniform_int(40));
    const int64_t crop_size = 1 + static_cast<int64_t>(gen.uniform_int(50));  // sometimes larger: padding
    const RgbImage in = test_pattern(h, w, static_cast<uint64_t>(trial));
    const RgbImage two_steps = center_crop(resize_shorter_side(in, resize), crop_size, crop_size);
    EXPECT_EQ(resize_and_center_crop(in, resize, crop_size, crop_size).pixels, two_steps.pixels)
        << h << "x" << w << " resize " << resize << " crop " << crop_size;
  }
}

TEST(RandomResizedCrop, SameGeneratorStateSameBoxAndAlwaysFortyDraws) {
  const RandomResizedCropOptions options;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Generator a(seed), b(seed), counted(seed);
    const CropBox box_a = random_resized_crop_box(375, 500, options, a);
    EXPECT_EQ(box_a, random_resized_crop_box(375, 500, options, b));
    for (int i = 0; i < 40; ++i) counted.uniform_double();
    EXPECT_EQ(a.next_u64(), counted.next_u64()) << "seed " << seed;  // exactly 40 draws
  }
  // A 1x1000 strip defeats every attempt; the fallback is the central window of ratio 4/3.
  Generator gen(1);
  EXPECT_EQ(random_resized_crop_box(1, 1000, options, gen), (CropBox{0, 499, 1, 1}));
  EXPECT_EQ(random_resized_crop_box(1000, 3, options, gen), (CropBox{498, 0, 4, 3}));  // round(3 / 0.75)
}

TEST(RandomResizedCrop, BoxesLieInsideWithinScaleAndRatioAndCoverTheImage) {
  const RandomResizedCropOptions options;
  Generator gen(11);
  int64_t touched_right = 0, touched_left = 0, fallbacks = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    // Aspect ratios within the drawn range: when all ten attempts fail (rare), the fallback is then
    // the whole image, which also satisfies the bounds below. Extreme shapes' fallback is tested above.
    const int64_t h = 20 + static_cast<int64_t>(gen.uniform_int(400));
    const auto w = static_cast<int64_t>(std::lround(static_cast<double>(h) * (0.8 + 0.45 * gen.uniform_double())));
    const CropBox b = random_resized_crop_box(h, w, options, gen);
    ASSERT_TRUE(b.top >= 0 && b.left >= 0 && b.height > 0 && b.width > 0 && b.top + b.height <= h &&
                b.left + b.width <= w)
        << h << "x" << w << ": " << b.top << "," << b.left << " " << b.height << "x" << b.width;
    const double area = static_cast<double>(b.height * b.width) / static_cast<double>(h * w);
    const double ratio = static_cast<double>(b.width) / static_cast<double>(b.height);
    // Rounding w and h to integers moves area and ratio a little beyond the drawn values.
    const double slack_w = 1.0 / static_cast<double>(b.width), slack_h = 1.0 / static_cast<double>(b.height);
    const bool whole = b.height == h && b.width == w;
    if (whole && std::abs(static_cast<double>(w) / static_cast<double>(h) - 1.0) < 0.3) ++fallbacks;
    EXPECT_GE(area, 0.08 * (1 - slack_w) * (1 - slack_h) - 1e-9);
    EXPECT_LE(ratio, 4.0 / 3.0 * (1 + slack_w) * (1 + slack_h) + 1e-9);
    EXPECT_GE(ratio, 3.0 / 4.0 / ((1 + slack_w) * (1 + slack_h)) - 1e-9);
    touched_left += b.left == 0;
    touched_right += b.left + b.width == w;
  }
  EXPECT_GT(touched_left, 20);  // windows reach both edges
  EXPECT_GT(touched_right, 20);
  EXPECT_LT(fallbacks, 20);  // the fallback is rare for ordinary shapes
}

TEST(ImagePreprocessing, GivesTheCropSizeAndDrawsOnlyWhenRandom) {
  const RgbImage in = test_pattern(60, 90, 12);
  ImagePreprocessing eval{.kind = ImagePreprocessing::Kind::ResizeCenterCrop, .resize_size = 36, .crop_size = 32};
  Generator a(1), untouched(1);
  const RgbImage e = eval.apply(in, a);
  EXPECT_EQ(e.height, 32);
  EXPECT_EQ(e.width, 32);
  EXPECT_EQ(e.pixels, center_crop(resize_shorter_side(in, 36), 32, 32).pixels);
  EXPECT_EQ(a.next_u64(), untouched.next_u64());

  ImagePreprocessing train{.kind = ImagePreprocessing::Kind::RandomResizedCrop, .crop_size = 24};
  Generator g1(5), g2(5), g3(6);
  const RgbImage t1 = train.apply(in, g1);
  EXPECT_EQ(t1.height, 24);
  EXPECT_EQ(t1.pixels, train.apply(in, g2).pixels);
  EXPECT_NE(t1.pixels, train.apply(in, g3).pixels);

  EXPECT_THROW((ImagePreprocessing{.crop_size = 0}.validate()), Error);
  EXPECT_THROW((RandomResizedCropOptions{.scale_min = 0.5, .scale_max = 0.1}.validate()), Error);
}

TEST(ImagePreprocessing, ToTensorIsChannelsFirstOverTwoFiftyFive) {
  const RgbImage in = test_pattern(3, 4, 13);
  std::vector<float> out(3 * 3 * 4);
  rgb_to_chw_unit(in, out.data());
  for (int c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 4; ++x)
        EXPECT_EQ(out[static_cast<size_t>((c * 3 + y) * 4 + x)], static_cast<float>(in.row(y)[3 * x + c]) / 255.0f);
}
