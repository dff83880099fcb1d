#pragma once
// Resizing and cropping of decoded 8-bit RGB images (data/image.h), reproducing what torchvision
// 0.14 does to PIL images, so that a model trained or evaluated with torchvision's ImageNet
// preprocessing sees the same pixels here:
//   Resize(size)             shorter side to `size`, the long side int(size * long / short)
//                            (torchvision.transforms.functional._compute_resized_output_size),
//                            resampled with PIL's BILINEAR filter (below)
//   CenterCrop(size)         offsets int(round((H - h) / 2.0)) with Python's round (half to even);
//                            an image smaller than the crop is zero-padded first, as
//                            torchvision's center_crop does
//   RandomResizedCrop(size)  torchvision's get_params (scale (0.08, 1), ratio (3/4, 4/3) drawn
//                            log-uniformly, 10 attempts, then the central fallback), then the crop
//                            resized to size x size with BILINEAR
//   ToTensor                 byte / 255 as float, (H, W, 3) -> (3, H, W)
// Horizontal flip and Normalize act on the float tensor (data/transforms.h).
//
// PIL's BILINEAR resize (libImaging/Resample.c, ImagingResample) is not the 2x2 interpolation of
// textbooks: it is a separable convolution with a triangle filter whose support widens with the
// downscaling factor (antialiasing). Per axis, output pixel i has its centre at (i + 0.5) * scale
// in input coordinates (scale = in / out), and weights triangle((j + 0.5 - centre) / max(scale, 1))
// over the input pixels j within max(scale, 1) of the centre, normalized to sum 1 and then
// rounded to fixed point with 22 fractional bits. The horizontal pass runs first and rounds to
// bytes; the vertical pass reads those bytes. resize_bilinear does exactly that, so its output is
// PIL's to the byte (tests/image_parity compares them).
#include <cstdint>

#include "data/image.h"
#include "framework/random.h"

namespace inq {

// A window of an image: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
  bool operator==(const CropBox&) const = default;
};

// PIL's Image.resize(..., BILINEAR) of the window `box` of `image` (PIL: image.crop(box) then
// resize) to out_height x out_width. The box must lie inside the image; sizes must be > 0.
RgbImage resize_bilinear(const RgbImage& image, const CropBox& box, int64_t out_height, int64_t out_width);
RgbImage resize_bilinear(const RgbImage& image, int64_t out_height, int64_t out_width);

// torchvision's output size for Resize(size) with an int size: the shorter side becomes `size`,
// the longer int(size * long / short). Returns {height, width}.
struct ImageSize {
  int64_t height = 0, width = 0;
  bool operator==(const ImageSize&) const = default;
};
ImageSize shorter_side_resize_size(int64_t height, int64_t width, int64_t size);
// torchvision's Resize(size) on a PIL image (unchanged when already that size).
RgbImage resize_shorter_side(const RgbImage& image, int64_t size);

// Output pixels [window] of resize_bilinear(image, box, out_height, out_width), computed without
// the rest: each output pixel depends only on its own coefficients, so this is the same bytes as
// cropping the full resize, for a fraction of the work and memory. window lies inside the output.
RgbImage resize_bilinear_window(const RgbImage& image, const CropBox& box, int64_t out_height, int64_t out_width,
                                const CropBox& window);

// torchvision's CenterCrop((crop_height, crop_width)) on a PIL image, zero padding included.
RgbImage center_crop(const RgbImage& image, int64_t crop_height, int64_t crop_width);
// Where CenterCrop's output comes from in an image of height x width: the pixels of `source` land
// at (out_top, out_left) of the crop_height x crop_width output; the rest is zero padding.
struct CenterCropPlacement {
  CropBox source;
  int64_t out_top = 0, out_left = 0;
};
CenterCropPlacement center_crop_placement(int64_t height, int64_t width, int64_t crop_height, int64_t crop_width);
// center_crop(resize_shorter_side(image, resize_size), crop_height, crop_width), resampling only
// the pixels the crop keeps.
RgbImage resize_and_center_crop(const RgbImage& image, int64_t resize_size, int64_t crop_height, int64_t crop_width);
// The pixels of `box`, which must lie inside the image.
RgbImage crop(const RgbImage& image, const CropBox& box);

struct RandomResizedCropOptions {
  double scale_min = 0.08, scale_max = 1.0;          // fraction of the image's area
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // width / height, drawn log-uniformly
  // Throws inq::Error naming the bad option: 0 < scale_min <= scale_max, 0 < ratio_min <= ratio_max.
  void validate() const;
};

// torchvision's RandomResizedCrop.get_params for an image of height x width, with the random
// numbers drawn from `gen` instead of torch's generator. Every call draws exactly 40 doubles (4
// per attempt for all 10 attempts, whichever attempt succeeds), so what a later transform draws
// does not depend on this one's outcome. Per attempt: area fraction, log aspect ratio, and two
// values that place the window (floor(u * (H - h + 1)), like torch.randint's range).
CropBox random_resized_crop_box(int64_t height, int64_t width, const RandomResizedCropOptions& options,
                                Generator& gen);

// How a decoded image of any size becomes a fixed size x size image (torchvision's ImageNet
// recipes): for evaluation Resize(resize_size) + CenterCrop(crop_size); for training
// RandomResizedCrop(crop_size). Flip and normalization follow on floats (data/transforms.h).
struct ImagePreprocessing {
  enum class Kind { ResizeCenterCrop, RandomResizedCrop };
  Kind kind = Kind::ResizeCenterCrop;
  int64_t resize_size = 256;  // ResizeCenterCrop: the shorter side before cropping
  int64_t crop_size = 224;    // the output's height and width
  RandomResizedCropOptions random_crop = {};

  // Throws inq::Error naming the bad field: sizes in [1, kMaxImageSide].
  void validate() const;
  // Draws from gen only for RandomResizedCrop (40 doubles, see random_resized_crop_box).
  RgbImage apply(const RgbImage& image, Generator& gen) const;
};

// torchvision's ToTensor: out (3, H, W) = pixel / 255 as float (the exact float quotient).
void rgb_to_chw_unit(const RgbImage& image, float* out /*(3, H, W)*/);

}  // namespace inq
