#include "data/image_transforms.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstring>
#include <vector>

#include "framework/error.h"

namespace inq {

namespace {

// PIL's PRECISION_BITS for 8-bit images: coefficients carry 22 fractional bits, so a sum of byte *
// coefficient products stays below 2^31.
constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr int kAttempts = 10;  // torchvision's RandomResizedCrop tries 10 windows

// PIL's bilinear_filter (support 1).
double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Python's round() for the non-negative values used here: half to even. nearbyint rounds in the
// current mode, which is round-to-nearest-even unless someone changed it.
int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

// One axis of PIL's resample: output positions [first_out, first_out + count) of a resize from
// in_size to out_size. Output position `first_out + i` reads `taps[i]` input pixels starting at
// `start[i]` with fixed-point weights `weights[i * max_taps ...]`.
struct AxisCoefficients {
  int64_t max_taps = 0;          // PIL's ksize
  std::vector<int64_t> start;    // PIL's xmin
  std::vector<int64_t> taps;     // PIL's xmax (after subtracting xmin)
  std::vector<int32_t> weights;  // (count, max_taps)
};

// PIL's precompute_coeffs + normalize_coeffs_8bpc (Resample.c) for the box [0, in_size), with the
// same double arithmetic in the same order so the rounded coefficients come out identical.
AxisCoefficients bilinear_axis(int64_t in_size, int64_t out_size, int64_t first_out, int64_t count) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0);  // widen the filter only when downscaling
  const double support = 1.0 * filter_scale;
  const double inverse_filter_scale = 1.0 / filter_scale;
  AxisCoefficients c;
  c.max_taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.start.resize(static_cast<size_t>(count));
  c.taps.resize(static_cast<size_t>(count));
  c.weights.assign(static_cast<size_t>(count * c.max_taps), 0);
  std::vector<double> w(static_cast<size_t>(c.max_taps));
  for (int64_t i = 0; i < count; ++i) {
    const int64_t out = first_out + i;
    const double center = (static_cast<double>(out) + 0.5) * scale;
    // PIL truncates toward zero ((int) casts), then clamps to the input.
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size);
    const int64_t n = hi - lo;
    assert(n >= 0 && n <= c.max_taps);
    double total = 0.0;
    for (int64_t k = 0; k < n; ++k) {
      const double v = triangle((static_cast<double>(k + lo) - center + 0.5) * inverse_filter_scale);
      w[static_cast<size_t>(k)] = v;
      total += v;
    }
    int32_t* fixed = c.weights.data() + i * c.max_taps;
    for (int64_t k = 0; k < n; ++k) {
      double v = w[static_cast<size_t>(k)];
      if (total != 0.0) v /= total;
      const double scaled = v * static_cast<double>(1 << kPrecisionBits);
      fixed[k] = static_cast<int32_t>(v < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    c.start[static_cast<size_t>(i)] = lo;
    c.taps[static_cast<size_t>(i)] = n;
  }
  return c;
}

// PIL's clip8: the accumulator holds value * 2^22 plus the rounding half; shift and saturate.
uint8_t clip8(int32_t accumulator) {
  return static_cast<uint8_t>(std::clamp<int32_t>(accumulator >> kPrecisionBits, 0, 255));
}

constexpr int32_t kRoundingHalf = int32_t{1} << (kPrecisionBits - 1);

void check_box_inside(const RgbImage& image, const CropBox& box, const char* what) {
  INQ_CHECK(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 && box.top + box.height <= image.height &&
                box.left + box.width <= image.width,
            "Given {} with box (top {}, left {}, height {}, width {}), expected a non-empty box inside the {}x{} "
            "(height x width) image",
            what, box.top, box.left, box.height, box.width, image.height, image.width);
}

}  // namespace

RgbImage resize_bilinear_window(const RgbImage& image, const CropBox& box, int64_t out_height, int64_t out_width,
                                const CropBox& window) {
  check_box_inside(image, box, "resize_bilinear");
  INQ_CHECK(out_height > 0 && out_width > 0 && out_height <= kMaxImageSide && out_width <= kMaxImageSide,
            "Given resize_bilinear to {}x{} (height x width), expected sizes in [1, {}]", out_height, out_width,
            kMaxImageSide);
  INQ_CHECK(window.top >= 0 && window.left >= 0 && window.height > 0 && window.width > 0 &&
                window.top + window.height <= out_height && window.left + window.width <= out_width,
            "Given resize_bilinear_window with window (top {}, left {}, height {}, width {}), expected a non-empty "
            "window inside the {}x{} output",
            window.top, window.left, window.height, window.width, out_height, out_width);
  // PIL skips a pass whose axis keeps its size (the coefficients would be the identity anyway).
  const bool need_horizontal = out_width != box.width;
  const bool need_vertical = out_height != box.height;

  // Rows of the box each output row reads; the identity when the vertical pass is skipped.
  AxisCoefficients vertical;
  int64_t rows_first = window.top, rows_end = window.top + window.height;  // box rows the window needs
  if (need_vertical) {
    vertical = bilinear_axis(box.height, out_height, window.top, window.height);
    rows_first = vertical.start.front();
    rows_end = vertical.start.back() + vertical.taps.back();
  }

  // Horizontal pass over just those rows (PIL's ybox_first .. ybox_last), rounding to bytes.
  RgbImage horizontal(rows_end - rows_first, window.width);
  if (need_horizontal) {
    const AxisCoefficients h = bilinear_axis(box.width, out_width, window.left, window.width);
    for (int64_t r = 0; r < horizontal.height; ++r) {
      const uint8_t* src = image.row(box.top + rows_first + r) + box.left * 3;
      uint8_t* dst = horizontal.row(r);
      for (int64_t x = 0; x < window.width; ++x) {
        const int32_t* w = h.weights.data() + x * h.max_taps;
        const uint8_t* p = src + h.start[static_cast<size_t>(x)] * 3;
        int32_t acc0 = kRoundingHalf, acc1 = kRoundingHalf, acc2 = kRoundingHalf;
        for (int64_t k = 0; k < h.taps[static_cast<size_t>(x)]; ++k) {
          acc0 += p[3 * k + 0] * w[k];
          acc1 += p[3 * k + 1] * w[k];
          acc2 += p[3 * k + 2] * w[k];
        }
        dst[3 * x + 0] = clip8(acc0);
        dst[3 * x + 1] = clip8(acc1);
        dst[3 * x + 2] = clip8(acc2);
      }
    }
  } else {
    for (int64_t r = 0; r < horizontal.height; ++r) {
      std::memcpy(horizontal.row(r), image.row(box.top + rows_first + r) + (box.left + window.left) * 3,
                  static_cast<size_t>(window.width * 3));
    }
  }
  if (!need_vertical) return horizontal;

  // Vertical pass: each output row is a weighted sum of rows of the horizontal result. Summing row
  // by row into an int32 accumulator gives the same integers as PIL's per-pixel loop.
  RgbImage out(window.height, window.width);
  const int64_t row_values = window.width * 3;
  std::vector<int32_t> acc(static_cast<size_t>(row_values));
  for (int64_t y = 0; y < window.height; ++y) {
    std::fill(acc.begin(), acc.end(), kRoundingHalf);
    const int32_t* w = vertical.weights.data() + y * vertical.max_taps;
    const int64_t first_row = vertical.start[static_cast<size_t>(y)] - rows_first;
    for (int64_t k = 0; k < vertical.taps[static_cast<size_t>(y)]; ++k) {
      const uint8_t* src = horizontal.row(first_row + k);
      const int32_t wk = w[k];
      for (int64_t i = 0; i < row_values; ++i) acc[static_cast<size_t>(i)] += src[i] * wk;
    }
    uint8_t* dst = out.row(y);
    for (int64_t i = 0; i < row_values; ++i) dst[i] = clip8(acc[static_cast<size_t>(i)]);
  }
  return out;
}

RgbImage resize_bilinear(const RgbImage& image, const CropBox& box, int64_t out_height, int64_t out_width) {
  return resize_bilinear_window(image, box, out_height, out_width, CropBox{0, 0, out_height, out_width});
}

RgbImage resize_bilinear(const RgbImage& image, int64_t out_height, int64_t out_width) {
  return resize_bilinear(image, CropBox{0, 0, image.height, image.width}, out_height, out_width);
}

ImageSize shorter_side_resize_size(int64_t height, int64_t width, int64_t size) {
  INQ_CHECK(height > 0 && width > 0 && size > 0,
            "Given a resize of a {}x{} (height x width) image to shorter side {}, expected all three > 0", height,
            width, size);
  const int64_t short_side = std::min(height, width), long_side = std::max(height, width);
  // Python's int(size * long / short): exact integer product, correctly rounded division, truncation.
  const auto new_long =
      static_cast<int64_t>(static_cast<double>(size * long_side) / static_cast<double>(short_side));
  return width <= height ? ImageSize{new_long, size} : ImageSize{size, new_long};
}

RgbImage resize_shorter_side(const RgbImage& image, int64_t size) {
  const ImageSize s = shorter_side_resize_size(image.height, image.width, size);
  return resize_bilinear(image, s.height, s.width);
}

CenterCropPlacement center_crop_placement(int64_t height, int64_t width, int64_t crop_height, int64_t crop_width) {
  INQ_CHECK(height > 0 && width > 0 && crop_height > 0 && crop_width > 0,
            "Given a center crop of {}x{} from a {}x{} (height x width) image, expected all sizes > 0", crop_height,
            crop_width, height, width);
  // torchvision pads an axis the crop exceeds: (c - s) // 2 before, (c - s + 1) // 2 after.
  const int64_t pad_top = crop_height > height ? (crop_height - height) / 2 : 0;
  const int64_t pad_left = crop_width > width ? (crop_width - width) / 2 : 0;
  const int64_t pad_bottom = crop_height > height ? (crop_height - height + 1) / 2 : 0;
  const int64_t pad_right = crop_width > width ? (crop_width - width + 1) / 2 : 0;
  const int64_t padded_height = height + pad_top + pad_bottom, padded_width = width + pad_left + pad_right;
  // Then it crops at int(round((H - h) / 2.0)) of the padded image.
  const int64_t top = round_half_even(static_cast<double>(padded_height - crop_height) / 2.0);
  const int64_t left = round_half_even(static_cast<double>(padded_width - crop_width) / 2.0);
  // Output (y, x) is padded (y + top, x + left), i.e. image (y + top - pad_top, x + left - pad_left).
  const int64_t src_top = top - pad_top, src_left = left - pad_left;
  CenterCropPlacement p;
  p.out_top = std::max<int64_t>(-src_top, 0);
  p.out_left = std::max<int64_t>(-src_left, 0);
  p.source.top = std::max<int64_t>(src_top, 0);
  p.source.left = std::max<int64_t>(src_left, 0);
  p.source.height = std::min(height, src_top + crop_height) - p.source.top;
  p.source.width = std::min(width, src_left + crop_width) - p.source.left;
  return p;
}

namespace {

// The crop_height x crop_width output with `pixels` (the placement's source, already extracted)
// at the placement's offset and zeros elsewhere.
RgbImage place(const RgbImage& pixels, const CenterCropPlacement& p, int64_t crop_height, int64_t crop_width) {
  if (p.out_top == 0 && p.out_left == 0 && pixels.height == crop_height && pixels.width == crop_width) return pixels;
  RgbImage out(crop_height, crop_width);
  for (int64_t y = 0; y < pixels.height; ++y) {
    std::memcpy(out.row(p.out_top + y) + p.out_left * 3, pixels.row(y), static_cast<size_t>(pixels.width * 3));
  }
  return out;
}

}  // namespace

RgbImage crop(const RgbImage& image, const CropBox& box) {
  check_box_inside(image, box, "crop");
  RgbImage out(box.height, box.width);
  for (int64_t y = 0; y < box.height; ++y) {
    std::memcpy(out.row(y), image.row(box.top + y) + box.left * 3, static_cast<size_t>(box.width * 3));
  }
  return out;
}

RgbImage center_crop(const RgbImage& image, int64_t crop_height, int64_t crop_width) {
  const CenterCropPlacement p = center_crop_placement(image.height, image.width, crop_height, crop_width);
  return place(crop(image, p.source), p, crop_height, crop_width);
}

RgbImage resize_and_center_crop(const RgbImage& image, int64_t resize_size, int64_t crop_height, int64_t crop_width) {
  const ImageSize resized = shorter_side_resize_size(image.height, image.width, resize_size);
  INQ_CHECK(resized.height <= kMaxImageSide && resized.width <= kMaxImageSide,
            "Given a {}x{} (height x width) image to resize to shorter side {}, expected a result of at most {} "
            "pixels per side, but it would be {}x{}",
            image.height, image.width, resize_size, kMaxImageSide, resized.height, resized.width);
  const CenterCropPlacement p = center_crop_placement(resized.height, resized.width, crop_height, crop_width);
  const RgbImage kept = resize_bilinear_window(image, CropBox{0, 0, image.height, image.width}, resized.height,
                                               resized.width, p.source);
  return place(kept, p, crop_height, crop_width);
}

void RandomResizedCropOptions::validate() const {
  INQ_CHECK(std::isfinite(scale_min) && std::isfinite(scale_max) && scale_min > 0.0 && scale_min <= scale_max,
            "Given RandomResizedCrop scale ({}, {}), expected 0 < min <= max", scale_min, scale_max);
  INQ_CHECK(std::isfinite(ratio_min) && std::isfinite(ratio_max) && ratio_min > 0.0 && ratio_min <= ratio_max,
            "Given RandomResizedCrop ratio ({}, {}), expected 0 < min <= max", ratio_min, ratio_max);
}

CropBox random_resized_crop_box(int64_t height, int64_t width, const RandomResizedCropOptions& options,
                                Generator& gen) {
  options.validate();
  INQ_CHECK(height > 0 && width > 0, "Given RandomResizedCrop of a {}x{} image, expected both sizes > 0", height,
            width);
  double draws[kAttempts][4];
  for (auto& attempt : draws)
    for (double& u : attempt) u = gen.uniform_double();
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double log_ratio_min = std::log(options.ratio_min), log_ratio_max = std::log(options.ratio_max);
  for (const auto& u : draws) {
    const double target_area = area * (options.scale_min + (options.scale_max - options.scale_min) * u[0]);
    const double aspect_ratio = std::exp(log_ratio_min + (log_ratio_max - log_ratio_min) * u[1]);
    const int64_t w = round_half_even(std::sqrt(target_area * aspect_ratio));
    const int64_t h = round_half_even(std::sqrt(target_area / aspect_ratio));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const auto top = static_cast<int64_t>(u[2] * static_cast<double>(height - h + 1));
      const auto left = static_cast<int64_t>(u[3] * static_cast<double>(width - w + 1));
      return CropBox{top, left, h, w};
    }
  }
  // torchvision's fallback: the largest central window whose ratio is within the range.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < options.ratio_min) {
    h = round_half_even(static_cast<double>(w) / options.ratio_min);
  } else if (in_ratio > options.ratio_max) {
    w = round_half_even(static_cast<double>(h) * options.ratio_max);
  }
  return CropBox{(height - h) / 2, (width - w) / 2, h, w};
}

void ImagePreprocessing::validate() const {
  INQ_CHECK(crop_size >= 1 && crop_size <= kMaxImageSide, "Given image crop size {}, expected a size in [1, {}]",
            crop_size, kMaxImageSide);
  INQ_CHECK(kind != Kind::ResizeCenterCrop || (resize_size >= 1 && resize_size <= kMaxImageSide),
            "Given image resize size {}, expected a size in [1, {}]", resize_size, kMaxImageSide);
  if (kind == Kind::RandomResizedCrop) random_crop.validate();
}

RgbImage ImagePreprocessing::apply(const RgbImage& image, Generator& gen) const {
  if (kind == Kind::ResizeCenterCrop) return resize_and_center_crop(image, resize_size, crop_size, crop_size);
  const CropBox box = random_resized_crop_box(image.height, image.width, random_crop, gen);
  return resize_bilinear(image, box, crop_size, crop_size);
}

void rgb_to_chw_unit(const RgbImage& image, float* out) {
  // byte / 255 for every byte value, computed once: the exact float quotient torchvision's
  // ToTensor gives (uint8 -> float, then div(255)).
  static const auto table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[static_cast<size_t>(v)] = static_cast<float>(v) / 255.0f;
    return t;
  }();
  const int64_t plane = image.height * image.width;
  const uint8_t* p = image.pixels.data();
  for (int64_t i = 0; i < plane; ++i) {
    out[i] = table[p[3 * i + 0]];
    out[plane + i] = table[p[3 * i + 1]];
    out[2 * plane + i] = table[p[3 * i + 2]];
  }
}

}  // namespace inq
