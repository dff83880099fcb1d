// This framework's image pipeline against torchvision's on the same files: the ImageFolder
// listing, decoding (PIL's Image.open + convert('RGB')), the evaluation preprocessing
// (Resize(256) + CenterCrop(224) + ToTensor) and RandomResizedCrop's crop-and-resize. The files
// and torchvision's tensors come from make_fixture.py, which ctest runs first (the
// image_parity_fixture test); the maximum differences are printed, JPEG and PNG apart.
//
// PNG is lossless, so every stage must match exactly: that checks the resampler against PIL's.
// JPEG decoders may round their IDCT, upsampling and colour conversion differently; this one
// reimplements libjpeg-turbo's (data/image_decode.cpp), so decoded JPEG pixels may differ from
// PIL's by at most one level, and the preprocessed tensors by at most 2/255 (the acceptance bound).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/image_folder.h"
#include "data/image_transforms.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = INQ_IMAGE_PARITY_DIR;

struct Sample {
  std::string path;  // relative to the val folder
  int64_t class_index = 0;
  std::string format;  // "JPEG" or "PNG" (the content, whatever the name says)
  std::string variant;
  CropBox box;
};

struct Fixture {
  std::vector<std::string> classes;
  std::vector<Sample> samples;
  SafetensorsFile reference;
  std::string root;
};

// Loaded once; a missing fixture fails every test with the way to make it.
const Fixture* fixture(std::string* error) {
  static std::string load_error;
  static const Fixture* loaded = [] () -> const Fixture* {
    const std::string listing = kFixture + "/listing.json", reference = kFixture + "/reference.safetensors";
    if (!fs::exists(listing) || !fs::exists(reference)) {
      load_error = "the image parity fixture is missing (" + listing +
                   "). It is made by the ctest test image_parity_fixture (run ctest, not this binary alone), "
                   "which needs Debian's python3 with PIL, torch and torchvision: "
                   "tools/install_deps.sh";
      return nullptr;
    }
    auto* f = new Fixture;
    const nlohmann::json j = nlohmann::json::parse(read_file(listing));
    f->classes = j.at("classes").get<std::vector<std::string>>();
    for (const auto& s : j.at("samples")) {
      const auto box = s.at("resized_crop_box").get<std::vector<int64_t>>();
      f->samples.push_back({s.at("path").get<std::string>(), s.at("class_index").get<int64_t>(),
                            s.at("format").get<std::string>(), s.at("variant").get<std::string>(),
                            CropBox{box.at(0), box.at(1), box.at(2), box.at(3)}});
    }
    f->reference = read_safetensors(reference);
    f->root = kFixture + "/folder/val";
    return f;
  }();
  *error = load_error;
  return loaded;
}

#define REQUIRE_FIXTURE(f)                 \
  std::string fixture_error;               \
  const Fixture* f = fixture(&fixture_error); \
  ASSERT_NE(f, nullptr) << fixture_error

const Tensor& reference(const Fixture& f, const std::string& name) {
  const StoredTensor* t = f.reference.find(name);
  if (t == nullptr) throw Error("the fixture has no tensor '" + name + "'");
  return t->f32;
}

// Largest |a - b| and where, over two equally long float arrays.
struct Difference {
  double max = 0.0;
  double mean = 0.0;
};
Difference compare(const float* a, const float* b, int64_t n) {
  Difference d;
  for (int64_t i = 0; i < n; ++i) {
    const double e = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
    d.max = std::max(d.max, e);
    d.mean += e;
  }
  d.mean /= static_cast<double>(std::max<int64_t>(n, 1));
  return d;
}

// Worst difference per format, printed at the end of a test.
struct PerFormat {
  std::map<std::string, double> max;
  void add(const std::string& format, double d) { max[format] = std::max(max[format], d); }
  void print(const char* what, double unit) const {
    for (const auto& [format, m] : max)
      std::printf("[image parity] %s, %s: max |difference| %.6g (%.3g / 255)\n", what, format.c_str(), m, m * 255.0 / unit);
  }
};

}  // namespace

TEST(ImageParity, ImageFolderListsTheClassesAndFilesTorchvisionLists) {
  REQUIRE_FIXTURE(f);
  const ImageFolderListing listing = list_image_folder(f->root);
  EXPECT_EQ(listing.classes, f->classes);
  ASSERT_EQ(listing.samples.size(), f->samples.size());
  for (size_t i = 0; i < f->samples.size(); ++i) {
    EXPECT_EQ(listing.samples[i].path, f->root + "/" + f->samples[i].path) << i;
    EXPECT_EQ(listing.samples[i].class_index, f->samples[i].class_index) << i;
  }
}

TEST(ImageParity, DecodingMatchesPilExactlyForPngAndCloselyForJpeg) {
  REQUIRE_FIXTURE(f);
  PerFormat worst;
  for (size_t i = 0; i < f->samples.size(); ++i) {
    const Sample& s = f->samples[i];
    const RgbImage mine = read_image(f->root + "/" + s.path);
    const Tensor& pil = reference(*f, "decoded." + std::to_string(i));  // (H, W, 3) in 0..255
    ASSERT_EQ(pil.shape(), (Shape{mine.height, mine.width, 3})) << s.path;
    std::vector<float> as_float(mine.pixels.begin(), mine.pixels.end());
    const Difference d = compare(as_float.data(), pil.data(), pil.numel());
    worst.add(s.format, d.max);
    std::printf("[image parity] decoded %-22s %-24s %4lldx%-4lld max %3.0f mean %.3f\n", s.path.c_str(),
                s.variant.c_str(), static_cast<long long>(mine.width), static_cast<long long>(mine.height), d.max,
                d.mean);
    if (s.format == "PNG") {
      EXPECT_EQ(d.max, 0.0) << s.path << " (" << s.variant << ")";
    } else {
      // stb's own IDCT and upsampling gave up to 6 here; libjpeg-turbo's arithmetic gives 0.
      EXPECT_LE(d.max, 1.0) << s.path << " (" << s.variant << ")";
    }
  }
  worst.print("decoded pixels (0..255)", 255.0);
}

TEST(ImageParity, EvalPreprocessingMatchesTorchvisionWithinTwoLevels) {
  REQUIRE_FIXTURE(f);
  // The KEY acceptance check: ImageFolder with Resize(256) + CenterCrop(224), before normalization,
  // against torchvision's Compose([Resize(256), CenterCrop(224), ToTensor()]) on PIL images.
  ImageFolder folder(f->root, {.preprocessing = {.resize_size = 256, .crop_size = 224}});
  ASSERT_EQ(folder.size(), static_cast<int64_t>(f->samples.size()));
  PerFormat worst;
  std::vector<float> mine(3 * 224 * 224);
  for (size_t i = 0; i < f->samples.size(); ++i) {
    const Sample& s = f->samples[i];
    int64_t label = -1;
    folder.get(static_cast<int64_t>(i), mine.data(), &label);
    EXPECT_EQ(label, s.class_index);
    const Tensor& tv = reference(*f, "eval." + std::to_string(i));
    ASSERT_EQ(tv.shape(), (Shape{3, 224, 224}));
    const Difference d = compare(mine.data(), tv.data(), tv.numel());
    worst.add(s.format, d.max);
    std::printf("[image parity] eval    %-22s %-24s max %.5f (%.2f/255) mean %.6f\n", s.path.c_str(), s.variant.c_str(),
                d.max, d.max * 255.0, d.mean);
    EXPECT_LE(d.max, 2.0 / 255.0 + 1e-6) << s.path << " (" << s.variant << ")";
    if (s.format == "PNG") {
      EXPECT_EQ(d.max, 0.0) << s.path << ": the resampler must match PIL's exactly";
    }
  }
  worst.print("eval tensors Resize(256)+CenterCrop(224)+ToTensor", 1.0);
}

TEST(ImageParity, RandomResizedCropsResizeMatchesTorchvisionsResizedCrop) {
  REQUIRE_FIXTURE(f);
  PerFormat worst;
  std::vector<float> mine(3 * 224 * 224);
  for (size_t i = 0; i < f->samples.size(); ++i) {
    const Sample& s = f->samples[i];
    const RgbImage decoded = read_image(f->root + "/" + s.path);
    rgb_to_chw_unit(resize_bilinear(decoded, s.box, 224, 224), mine.data());
    const Tensor& tv = reference(*f, "resized_crop." + std::to_string(i));
    ASSERT_EQ(tv.shape(), (Shape{3, 224, 224}));
    const Difference d = compare(mine.data(), tv.data(), tv.numel());
    worst.add(s.format, d.max);
    EXPECT_LE(d.max, 2.0 / 255.0 + 1e-6) << s.path << " (" << s.variant << ")";
    if (s.format == "PNG") {
      EXPECT_EQ(d.max, 0.0) << s.path;
    }
  }
  worst.print("resized_crop to 224x224 + ToTensor", 1.0);
}
