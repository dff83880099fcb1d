#include "image_testing.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "framework/error.h"
#include "framework/random.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace inq::test {

namespace {

void append(void* context, void* data, int size) {
  auto* out = static_cast<Bytes*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

Bytes encode_png(const uint8_t* pixels, int width, int height, int channels) {
  Bytes out;
  INQ_CHECK(stbi_write_png_to_func(append, &out, width, height, channels, pixels, width * channels) != 0,
            "stb_image_write failed to encode a {}x{} PNG", width, height);
  return out;
}

Bytes encode_jpeg(const uint8_t* pixels, int width, int height, int channels, int quality) {
  Bytes out;
  INQ_CHECK(stbi_write_jpg_to_func(append, &out, width, height, channels, pixels, quality) != 0,
            "stb_image_write failed to encode a {}x{} JPEG", width, height);
  return out;
}

Bytes encode_png(const RgbImage& image) {
  return encode_png(image.pixels.data(), static_cast<int>(image.width), static_cast<int>(image.height), 3);
}

Bytes encode_jpeg(const RgbImage& image, int quality) {
  return encode_jpeg(image.pixels.data(), static_cast<int>(image.width), static_cast<int>(image.height), 3, quality);
}

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  INQ_CHECK(out.good(), "failed to write test file '{}'", path);
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

RgbImage test_pattern(int64_t height, int64_t width, uint64_t seed) {
  Generator gen(seed);
  const double phase = gen.uniform_double() * 6.0;
  RgbImage image(height, width);
  for (int64_t y = 0; y < height; ++y) {
    for (int64_t x = 0; x < width; ++x) {
      const double u = static_cast<double>(x) / static_cast<double>(width);
      const double v = static_cast<double>(y) / static_cast<double>(height);
      uint8_t* p = image.row(y) + 3 * x;
      const int noise = static_cast<int>(gen.uniform_int(9)) - 4;
      p[0] = static_cast<uint8_t>(std::clamp(static_cast<int>(255 * u) + noise, 0, 255));
      p[1] = static_cast<uint8_t>(std::clamp(static_cast<int>(255 * v) - noise, 0, 255));
      p[2] = static_cast<uint8_t>(std::clamp(static_cast<int>(127.5 + 120 * std::sin(phase + 9 * u * v)), 0, 255));
    }
  }
  return image;
}

std::vector<std::string> write_image_folder(const std::string& root, const std::vector<std::string>& classes,
                                            int per_class, int64_t min_side, int64_t max_side, uint64_t seed) {
  Generator gen(seed);
  std::vector<std::string> paths;
  for (size_t c = 0; c < classes.size(); ++c) {
    for (int i = 0; i < per_class; ++i) {
      const auto span = static_cast<uint64_t>(max_side - min_side + 1);
      const int64_t h = min_side + static_cast<int64_t>(gen.uniform_int(span));
      const int64_t w = min_side + static_cast<int64_t>(gen.uniform_int(span));
      RgbImage image = test_pattern(h, w, gen.next_u64());
      // The class's colour dominates one channel, so classes are learnable.
      for (size_t k = c % 3; k < image.pixels.size(); k += 3) image.pixels[k] = static_cast<uint8_t>(200 + k % 50);
      const bool png = i % 2 == 0;
      const std::string path = root + "/" + classes[c] + "/img" + std::to_string(i) + (png ? ".png" : ".jpg");
      write_bytes(path, png ? encode_png(image) : encode_jpeg(image, 95));
      paths.push_back(path);
    }
  }
  return paths;
}

}  // namespace inq::test
