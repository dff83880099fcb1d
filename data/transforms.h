#pragma once
// Per-example image transforms: functions that change one (C, H, W) float image in place, drawing
// any randomness from the Generator they are given. Given the same generator state they produce
// the same image, and each always draws the same number of random values whatever the outcome, so
// a pipeline's results depend only on the generator's seed. Transforms keep the image's shape.
//
// Transforms are called from DataLoader worker threads: they must be safe to call concurrently
// (keep no mutable state; scratch memory is local) and must not use OpenMP or BLAS.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "framework/random.h"

namespace inq {

// A mutable view of one image. // data: (C, H, W)
struct ImageRef {
  float* data = nullptr;
  int64_t channels = 0, height = 0, width = 0;
  int64_t numel() const { return channels * height * width; }
};

using Transform = std::function<void(ImageRef image, Generator& gen)>;

// (x - mean[c]) / std[c] per channel. mean and std need one entry per channel (or one entry, used
// for every channel); every std must be finite and > 0. Draws nothing from the generator.
Transform normalize(std::vector<float> mean, std::vector<float> std);
// Zero-pads `padding` pixels on each side, then crops an H x W window at a uniformly random offset
// (top, left) in [0, 2 * padding]^2 (top drawn first). padding >= 0; 0 leaves the image unchanged
// but still draws two values.
Transform random_crop(int64_t padding);
// Mirrors left-right with probability p (one draw, uniform_double, every call). p in [0, 1].
Transform random_horizontal_flip(double p = 0.5);

// The deterministic steps the random transforms are made of (exposed for tests and tools).
void horizontal_flip(ImageRef image);
// The window at (top, left) of the image zero-padded by `padding` on each side: output pixel (y, x)
// is input pixel (y + top - padding, x + left - padding), or 0 outside the input. top and left must
// be in [0, 2 * padding].
void crop_with_padding(ImageRef image, int64_t padding, int64_t top, int64_t left);

// An ordered list of transforms applied one after another to each example.
class TransformPipeline {
 public:
  TransformPipeline() = default;
  TransformPipeline(std::initializer_list<Transform> steps);
  TransformPipeline& add(Transform step);
  void apply(ImageRef image, Generator& gen) const;
  bool empty() const { return steps_.empty(); }
  size_t size() const { return steps_.size(); }

 private:
  std::vector<Transform> steps_;
};

}  // namespace inq
