#include "data/fashion_mnist.h"

#include <array>
#include <cmath>
#include <filesystem>

#include "data/idx.h"
#include "framework/error.h"

namespace inq {

namespace {

// byte / 255 for every byte value: the exact quotient, computed once, so get() is a table lookup.
const std::array<float, 256>& byte_to_unit() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[static_cast<size_t>(v)] = static_cast<float>(v) / 255.0f;
    return t;
  }();
  return table;
}

// Mean and population std of bytes scaled to [0, 1]. A histogram makes it one pass of integer
// increments and an exact, order-independent sum.
ChannelStats byte_stats(const std::vector<uint8_t>& bytes) {
  std::array<uint64_t, 256> histogram{};
  for (uint8_t b : bytes) ++histogram[b];
  const double n = static_cast<double>(bytes.size());
  double mean = 0.0;
  for (int v = 0; v < 256; ++v) mean += static_cast<double>(histogram[static_cast<size_t>(v)]) * (v / 255.0);
  mean /= n;
  double var = 0.0;
  for (int v = 0; v < 256; ++v) {
    const double d = v / 255.0 - mean;
    var += static_cast<double>(histogram[static_cast<size_t>(v)]) * d * d;
  }
  var /= n;
  return ChannelStats{{static_cast<float>(mean)}, {static_cast<float>(std::sqrt(var))}};
}

// Checks an images array is (N, H, W) with N, H, W > 0.
void check_image_dims(const IdxArray& images, const std::string& path) {
  INQ_CHECK(images.dims[0] > 0 && images.dims[1] > 0 && images.dims[2] > 0,
            "Given IDX images file '{}', expected dimensions (N, H, W) all above 0, but got {} instead", path,
            fmt::join(images.dims, "x"));
}

// `name`.gz when it exists, else `name` when that exists, else `name`.gz (whose open fails with
// the path in the message).
std::string pick_file(const std::string& root, const std::string& name) {
  const std::filesystem::path gz = std::filesystem::path(root) / (name + ".gz");
  const std::filesystem::path plain = std::filesystem::path(root) / name;
  std::error_code ec;
  if (!std::filesystem::exists(gz, ec) && std::filesystem::exists(plain, ec)) return plain.string();
  return gz.string();
}

}  // namespace

IdxClassificationDataset::IdxClassificationDataset(const std::string& images_path,
                                                   const std::string& labels_path, int64_t num_classes)
    : images_path_(images_path), labels_path_(labels_path), num_classes_(num_classes) {
  INQ_CHECK(num_classes >= 1 && num_classes <= 256,
            "Given IDX dataset '{}', expected num_classes in [1, 256] (labels are bytes), but got {} instead",
            images_path, num_classes);
  IdxArray images = read_idx(images_path, 3);
  check_image_dims(images, images_path);
  IdxArray labels = read_idx(labels_path, 1);
  INQ_CHECK(
      labels.dims[0] == images.dims[0],
      "Given IDX images file '{}' with {} images, expected labels file '{}' to hold {} labels, but it holds "
      "{} instead",
      images_path, images.dims[0], labels_path, images.dims[0], labels.dims[0]);
  for (size_t i = 0; i < labels.data.size(); ++i) {
    INQ_CHECK(
        labels.data[i] < num_classes,
        "Given IDX labels file '{}', expected every label below {} (the number of classes), but label {} is "
        "{} instead",
        labels_path, num_classes, i, labels.data[i]);
  }
  count_ = images.dims[0];
  height_ = images.dims[1];
  width_ = images.dims[2];
  pixels_ = std::move(images.data);
  labels_ = std::move(labels.data);
  stats_ = byte_stats(pixels_);
}

void IdxClassificationDataset::get(int64_t index, float* image_out, int64_t* label_out) const {
  check_dataset_index(index, count_, "IDX dataset");
  const int64_t per_image = height_ * width_;
  const uint8_t* src = pixels_.data() + index * per_image;
  const std::array<float, 256>& unit = byte_to_unit();
  for (int64_t i = 0; i < per_image; ++i) image_out[i] = unit[src[i]];
  *label_out = labels_[static_cast<size_t>(index)];
}

int64_t IdxClassificationDataset::label(int64_t index) const {
  check_dataset_index(index, count_, "IDX dataset");
  return labels_[static_cast<size_t>(index)];
}

ChannelStats idx_image_stats(const std::string& images_path) {
  const IdxArray images = read_idx(images_path, 3);
  check_image_dims(images, images_path);
  return byte_stats(images.data);
}

FashionMnist::FashionMnist(const std::string& root, Split split)
    : IdxClassificationDataset(images_file(root, split), labels_file(root, split), kNumClasses),
      split_(split) {}

const std::array<const char*, 10>& FashionMnist::class_names() {
  static const std::array<const char*, 10> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                    "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                    "Bag",         "Ankle boot"};
  return names;
}

std::string FashionMnist::images_file(const std::string& root, Split split) {
  return pick_file(root, split == Split::Train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte");
}

std::string FashionMnist::labels_file(const std::string& root, Split split) {
  return pick_file(root, split == Split::Train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte");
}

ChannelStats FashionMnist::train_stats(const std::string& root) {
  return idx_image_stats(images_file(root, Split::Train));
}

}  // namespace inq
