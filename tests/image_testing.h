#pragma once
// Helpers for the image tests: encoding test images (PNG and JPEG, with stb_image_write, compiled
// into tests/image_testing.cpp) and building small image folders on disk.
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace inq::test {

using Bytes = std::vector<uint8_t>;

// `pixels` is (height, width, channels) interleaved; channels 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
Bytes encode_png(const uint8_t* pixels, int width, int height, int channels);
// Baseline JPEG; quality <= 90 subsamples chroma 2x2 (stb_image_write's rule).
Bytes encode_jpeg(const uint8_t* pixels, int width, int height, int channels, int quality);
Bytes encode_png(const RgbImage& image);
Bytes encode_jpeg(const RgbImage& image, int quality);

void write_bytes(const std::string& path, const Bytes& bytes);
Bytes read_bytes(const std::string& path);

// A smooth colour gradient with a little deterministic noise, different per seed.
RgbImage test_pattern(int64_t height, int64_t width, uint64_t seed);

// Writes root/<class>/<name> images: per class `per_class` files of varied sizes in [min_side,
// max_side], alternating PNG and JPEG, each class with its own dominant colour (so a model can
// tell them apart). Returns the paths written, class by class.
std::vector<std::string> write_image_folder(const std::string& root, const std::vector<std::string>& classes,
                                            int per_class, int64_t min_side, int64_t max_side, uint64_t seed);

}  // namespace inq::test
