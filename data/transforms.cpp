#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "framework/error.h"

namespace inq {

namespace {

void check_image(ImageRef image, const char* transform) {
  INQ_CHECK(image.data != nullptr && image.channels > 0 && image.height > 0 && image.width > 0,
            "Given an image of shape [{}, {}, {}] for {}, expected a non-empty (C, H, W) image",
            image.channels, image.height, image.width, transform);
}

}  // namespace

Transform normalize(std::vector<float> mean, std::vector<float> std) {
  INQ_CHECK(!mean.empty() && mean.size() == std.size(),
            "Given normalize with {} means and {} stds, expected the same non-zero number of each",
            mean.size(), std.size());
  for (size_t c = 0; c < std.size(); ++c) {
    INQ_CHECK(
        std::isfinite(std[c]) && std[c] > 0.0f && std::isfinite(mean[c]),
        "Given normalize with mean {} and std {} for channel {}, expected a finite mean and a finite std > 0",
        mean[c], std[c], c);
  }
  return [mean = std::move(mean), std = std::move(std)](ImageRef image, Generator&) {
    check_image(image, "normalize");
    INQ_CHECK(mean.size() == 1 || static_cast<int64_t>(mean.size()) == image.channels,
              "Given an image with {} channels for normalize, expected {} channel(s) (one per mean)",
              image.channels, mean.size());
    const int64_t plane = image.height * image.width;
    for (int64_t c = 0; c < image.channels; ++c) {
      const size_t k = mean.size() == 1 ? 0 : static_cast<size_t>(c);
      float* p = image.data + c * plane;
      for (int64_t i = 0; i < plane; ++i) p[i] = (p[i] - mean[k]) / std[k];
    }
  };
}

void horizontal_flip(ImageRef image) {
  check_image(image, "horizontal_flip");
  for (int64_t row = 0; row < image.channels * image.height; ++row) {
    float* p = image.data + row * image.width;
    std::reverse(p, p + image.width);
  }
}

void crop_with_padding(ImageRef image, int64_t padding, int64_t top, int64_t left) {
  check_image(image, "crop_with_padding");
  INQ_CHECK(
      padding >= 0 && top >= 0 && top <= 2 * padding && left >= 0 && left <= 2 * padding,
      "Given crop_with_padding with padding {}, expected top and left in [0, {}], but got top {} and left {} "
      "instead",
      padding, 2 * padding, top, left);
  const int64_t dy = top - padding, dx = left - padding;  // output (y, x) reads input (y + dy, x + dx)
  if (dy == 0 && dx == 0) return;
  const int64_t H = image.height, W = image.width;
  std::vector<float> plane(static_cast<size_t>(H * W));
  // Columns of the output that read inside the input: x + dx in [0, W).
  const int64_t x0 = std::clamp<int64_t>(-dx, 0, W), x1 = std::clamp<int64_t>(W - dx, 0, W);
  for (int64_t c = 0; c < image.channels; ++c) {
    float* p = image.data + c * H * W;
    std::fill(plane.begin(), plane.end(), 0.0f);
    for (int64_t y = 0; y < H; ++y) {
      const int64_t sy = y + dy;
      if (sy < 0 || sy >= H || x1 <= x0) continue;
      std::memcpy(&plane[static_cast<size_t>(y * W + x0)], p + sy * W + x0 + dx,
                  static_cast<size_t>(x1 - x0) * sizeof(float));
    }
    std::memcpy(p, plane.data(), plane.size() * sizeof(float));
  }
}

Transform random_crop(int64_t padding) {
  INQ_CHECK(padding >= 0, "Given random_crop with padding {}, expected padding >= 0", padding);
  return [padding](ImageRef image, Generator& gen) {
    const auto span = static_cast<uint64_t>(2 * padding + 1);
    const auto top = static_cast<int64_t>(gen.uniform_int(span));
    const auto left = static_cast<int64_t>(gen.uniform_int(span));
    crop_with_padding(image, padding, top, left);
  };
}

Transform random_horizontal_flip(double p) {
  INQ_CHECK(p >= 0.0 && p <= 1.0, "Given random_horizontal_flip with p = {}, expected p in [0, 1]", p);
  return [p](ImageRef image, Generator& gen) {
    if (gen.bernoulli(p)) horizontal_flip(image);
  };
}

TransformPipeline::TransformPipeline(std::initializer_list<Transform> steps) {
  for (const Transform& step : steps) add(step);
}

TransformPipeline& TransformPipeline::add(Transform step) {
  INQ_CHECK(static_cast<bool>(step), "Given an empty transform, expected a callable one");
  steps_.push_back(std::move(step));
  return *this;
}

void TransformPipeline::apply(ImageRef image, Generator& gen) const {
  for (const Transform& step : steps_) step(image, gen);
}

}  // namespace inq
