#pragma once
// Image-classification datasets stored as a pair of IDX files (MNIST, Fashion-MNIST), and
// Fashion-MNIST itself as Debian ships it (package dataset-fashion-mnist).
//
// Images are read whole into memory as bytes (Fashion-MNIST train: 47 MB) and scaled to [0, 1]
// floats on get(). Both files pass read_idx's checks (data/idx.h), and additionally: the images
// file has 3 dimensions (N, H, W) with N, H, W > 0, the labels file 1 dimension (N) with the same
// N, and every label is below num_classes. Errors name the file(s).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace inq {

// Per-channel mean and (population) standard deviation of pixel values scaled to [0, 1].
struct ChannelStats {
  std::vector<float> mean;  // (C)
  std::vector<float> std;   // (C)
};

class IdxClassificationDataset : public Dataset {
 public:
  IdxClassificationDataset(const std::string& images_path, const std::string& labels_path,
                           int64_t num_classes);

  int64_t size() const override { return count_; }
  Shape image_shape() const override { return {1, height_, width_}; }  // (1, H, W)
  int64_t num_classes() const override { return num_classes_; }
  void get(int64_t index, float* image_out, int64_t* label_out) const override;

  int64_t label(int64_t index) const;
  const std::vector<uint8_t>& labels() const { return labels_; }  // (N)
  const std::vector<uint8_t>& pixels() const { return pixels_; }  // (N, H, W), raw bytes
  // Statistics of this dataset's pixels, computed once at load. Normalize with the train split's.
  const ChannelStats& pixel_stats() const { return stats_; }
  const std::string& images_path() const { return images_path_; }
  const std::string& labels_path() const { return labels_path_; }

 private:
  std::string images_path_, labels_path_;
  std::vector<uint8_t> pixels_;  // (N, H, W)
  std::vector<uint8_t> labels_;  // (N)
  int64_t count_ = 0, height_ = 0, width_ = 0, num_classes_ = 0;
  ChannelStats stats_;
};

// Statistics of the images in one IDX file (3 dimensions, unsigned bytes), without needing labels:
// lets an evaluation of the test split normalize with the train split's statistics.
ChannelStats idx_image_stats(const std::string& images_path);

inline constexpr const char* kFashionMnistDefaultRoot = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST: 60,000 train / 10,000 test grey 28x28 images, 10 classes. Under `root` it reads
// train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz (Split::Train) or t10k-*; the
// uncompressed names (without .gz) are used when the .gz ones are absent.
class FashionMnist final : public IdxClassificationDataset {
 public:
  explicit FashionMnist(const std::string& root = kFashionMnistDefaultRoot, Split split = Split::Train);
  Split split() const { return split_; }

  static constexpr int64_t kNumClasses = 10;
  static const std::array<const char*, 10>& class_names();  // "T-shirt/top", ..., "Ankle boot"
  // The path used for the split's images / labels under root.
  static std::string images_file(const std::string& root, Split split);
  static std::string labels_file(const std::string& root, Split split);
  // Train-split statistics without loading the labels (for evaluating on the test split).
  static ChannelStats train_stats(const std::string& root = kFashionMnistDefaultRoot);

 private:
  Split split_;
};

}  // namespace inq
