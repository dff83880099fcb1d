#include "data/cifar10.h"

#include <array>
#include <cmath>
#include <filesystem>

#include "framework/error.h"
#include "framework/fileio.h"

namespace inq {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kPlane = 32 * 32;
constexpr int64_t kImageBytes = 3 * kPlane;

void check_record_count(uint64_t size, const std::string& source) {
  INQ_CHECK(size > 0 && size % kCifar10RecordBytes == 0,
            "Given CIFAR-10 file '{}' of {} bytes, expected a non-zero multiple of {} bytes (records of 1 label byte "
            "+ 3x32x32 pixel bytes), but {}",
            source, size, kCifar10RecordBytes,
            size == 0 ? std::string("it is empty")
                      : fmt::format("{} bytes are left over after {} records", size % kCifar10RecordBytes,
                                    size / kCifar10RecordBytes));
}

// Mean and population std per channel of (N, 3, 32, 32) bytes scaled to [0, 1], from exact
// histograms (so the result does not depend on summation order).
ChannelStats channel_stats(const std::vector<uint8_t>& pixels) {
  std::array<std::array<uint64_t, 256>, 3> histogram{};
  const size_t images = pixels.size() / static_cast<size_t>(kImageBytes);
  for (size_t i = 0; i < images; ++i)
    for (int64_t c = 0; c < 3; ++c) {
      const uint8_t* p = pixels.data() + i * kImageBytes + c * kPlane;
      for (int64_t k = 0; k < kPlane; ++k) ++histogram[static_cast<size_t>(c)][p[k]];
    }
  ChannelStats stats;
  const double n = static_cast<double>(images) * static_cast<double>(kPlane);
  for (const auto& h : histogram) {
    double mean = 0.0, var = 0.0;
    for (int v = 0; v < 256; ++v) mean += static_cast<double>(h[static_cast<size_t>(v)]) * (v / 255.0);
    mean /= n;
    for (int v = 0; v < 256; ++v) {
      const double d = v / 255.0 - mean;
      var += static_cast<double>(h[static_cast<size_t>(v)]) * d * d;
    }
    stats.mean.push_back(static_cast<float>(mean));
    stats.std.push_back(static_cast<float>(std::sqrt(var / n)));
  }
  return stats;
}

// The folder holding the .bin files: root itself, or the archive's cifar-10-batches-bin/ in it.
std::string batches_dir(const std::string& root) {
  std::error_code ec;
  const fs::path nested = fs::path(root) / "cifar-10-batches-bin";
  if (!fs::exists(fs::path(root) / "test_batch.bin", ec) && fs::is_directory(nested, ec)) return nested.string();
  return root;
}

}  // namespace

Cifar10Records parse_cifar10_records(const uint8_t* data, size_t size, const std::string& source) {
  check_record_count(size, source);
  const size_t count = size / static_cast<size_t>(kCifar10RecordBytes);
  Cifar10Records records;
  records.labels.resize(count);
  records.pixels.resize(count * static_cast<size_t>(kImageBytes));
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* record = data + i * kCifar10RecordBytes;
    INQ_CHECK(record[0] < Cifar10::kNumClasses,
              "Given CIFAR-10 file '{}', expected every label below {}, but record {} (byte offset {}) has label {}",
              source, Cifar10::kNumClasses, i, i * kCifar10RecordBytes, record[0]);
    records.labels[i] = record[0];
    std::copy(record + 1, record + kCifar10RecordBytes, records.pixels.begin() + static_cast<ptrdiff_t>(i * kImageBytes));
  }
  return records;
}

Cifar10Records read_cifar10_file(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  INQ_CHECK(!ec, "Given CIFAR-10 file '{}', expected a readable file, but got: {}", path, ec.message());
  check_record_count(size, path);  // before reading anything
  const std::string bytes = read_file(path);
  return parse_cifar10_records(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

Cifar10::Cifar10(const std::string& root, Split split) : split_(split) {
  for (const std::string& path : files(root, split)) {
    Cifar10Records r = read_cifar10_file(path);
    pixels_.insert(pixels_.end(), r.pixels.begin(), r.pixels.end());
    labels_.insert(labels_.end(), r.labels.begin(), r.labels.end());
  }
  stats_ = channel_stats(pixels_);
}

void Cifar10::get(int64_t index, float* image_out, int64_t* label_out) const {
  check_dataset_index(index, size(), "CIFAR-10 dataset");
  const uint8_t* src = pixels_.data() + index * kImageBytes;
  for (int64_t i = 0; i < kImageBytes; ++i) image_out[i] = static_cast<float>(src[i]) / 255.0f;
  *label_out = labels_[static_cast<size_t>(index)];
}

const std::array<const char*, 10>& Cifar10::class_names() {
  // The order of batches.meta.txt.
  static const std::array<const char*, 10> names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                    "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

std::vector<std::string> Cifar10::files(const std::string& root, Split split) {
  const fs::path dir = batches_dir(root);
  if (split == Split::Test) return {(dir / "test_batch.bin").string()};
  std::vector<std::string> out;
  for (int i = 1; i <= 5; ++i) out.push_back((dir / fmt::format("data_batch_{}.bin", i)).string());
  return out;
}

ChannelStats Cifar10::train_stats(const std::string& root) { return Cifar10(root, Split::Train).pixel_stats(); }

}  // namespace inq
