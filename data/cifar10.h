#pragma once
// CIFAR-10 in its binary version (https://www.cs.toronto.edu/~kriz/cifar.html, "CIFAR-10 binary
// version"): files of 3073-byte records, each one label byte (0-9) then 3072 pixel bytes, the red
// plane, then green, then blue, each 32x32 row-major. Training is data_batch_1.bin ..
// data_batch_5.bin (50,000 images), testing test_batch.bin (10,000).
//
// A file is rejected, naming it, unless its size is a non-zero multiple of 3073 and every label is
// below 10; the size is checked before the file is read.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/fashion_mnist.h"

namespace inq {

inline constexpr int64_t kCifar10RecordBytes = 1 + 3 * 32 * 32;

struct Cifar10Records {
  std::vector<uint8_t> pixels;  // (N, 3, 32, 32)
  std::vector<uint8_t> labels;  // (N)
};

// Parses CIFAR-10 records from memory (the whole contents of one file). `source` names the bytes
// in errors. Throws inq::Error on a size that is not a non-zero multiple of 3073 or a label >= 10.
Cifar10Records parse_cifar10_records(const uint8_t* data, size_t size, const std::string& source);
// Reads and parses one file.
Cifar10Records read_cifar10_file(const std::string& path);

class Cifar10 final : public Dataset {
 public:
  // `root` holds the .bin files, directly or in the archive's cifar-10-batches-bin/ folder.
  explicit Cifar10(const std::string& root, Split split = Split::Train);

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Shape image_shape() const override { return {3, 32, 32}; }
  int64_t num_classes() const override { return kNumClasses; }
  void get(int64_t index, float* image_out, int64_t* label_out) const override;

  // Per-channel statistics of this split's pixels in [0, 1], computed at load.
  const ChannelStats& pixel_stats() const { return stats_; }
  const std::vector<uint8_t>& labels() const { return labels_; }
  Split split() const { return split_; }

  static constexpr int64_t kNumClasses = 10;
  static const std::array<const char*, 10>& class_names();  // "airplane", ..., "truck"
  // The split's files under root (the batches folder resolved as in the constructor).
  static std::vector<std::string> files(const std::string& root, Split split);
  // Training-split statistics (for normalizing the test split like the training one).
  static ChannelStats train_stats(const std::string& root);

 private:
  Split split_;
  std::vector<uint8_t> pixels_;  // (N, 3, 32, 32)
  std::vector<uint8_t> labels_;  // (N)
  ChannelStats stats_;
};

}  // namespace inq
