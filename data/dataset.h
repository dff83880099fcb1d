#pragma once
// The interface every image-classification dataset implements, and one in-memory implementation.
//
// Contract: a Dataset is immutable after construction and get() is const and safe to call from
// several threads at once (the DataLoader's workers do). get() must not use OpenMP or BLAS (it runs
// on background threads; see framework/threading.h). Images are float (C, H, W), all the same
// shape; labels are in [0, num_classes()).
//
// Random loading: a dataset whose examples only get their fixed shape through a random step (an
// ImageFolder decodes images of any size and takes a RandomResizedCrop of each) draws from the
// Generator passed to get_with_generator. The DataLoader seeds that generator per (seed, epoch,
// position in the epoch) and hands the same generator on to its transforms afterwards, so loading
// stays deterministic whichever worker thread does it.
#include <cstdint>
#include <vector>

#include "framework/random.h"
#include "framework/tensor.h"

namespace inq {

// Which part of a dataset with a fixed train/test split to load.
enum class Split { Train, Test };

// One example, for callers that want an owning copy (tests, tools). // image: (C, H, W)
struct Example {
  Tensor image;
  int64_t label = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Shape image_shape() const = 0;  // (C, H, W)
  virtual int64_t num_classes() const = 0;
  // Writes example `index` (in [0, size())) as C*H*W floats into image_out and its label into
  // *label_out. Throws inq::Error on a bad index.
  virtual void get(int64_t index, float* image_out, int64_t* label_out) const = 0;
  // What the DataLoader calls: example `index`, drawing any randomness of its loading from `gen`.
  // The default ignores gen and calls get(), so datasets whose loading is not random need only get().
  virtual void get_with_generator(int64_t index, Generator& gen, float* image_out, int64_t* label_out) const;

  // An owning copy of example `index`.
  Example example(int64_t index) const;
  // C * H * W.
  int64_t image_numel() const { return shape_numel(image_shape()); }
};

// Checks 0 <= index < size, naming the dataset kind in the message.
void check_dataset_index(int64_t index, int64_t size, const char* dataset_kind);

// A dataset held in memory: images (N, C, H, W) and N labels in [0, num_classes). The images are
// cloned at construction, so later changes to the argument do not show through.
class TensorDataset final : public Dataset {
 public:
  TensorDataset(const Tensor& images /*(N, C, H, W)*/, std::vector<int64_t> labels, int64_t num_classes);
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  Shape image_shape() const override { return {images_.size(1), images_.size(2), images_.size(3)}; }
  int64_t num_classes() const override { return num_classes_; }
  void get(int64_t index, float* image_out, int64_t* label_out) const override;

 private:
  Tensor images_;  // (N, C, H, W)
  std::vector<int64_t> labels_;
  int64_t num_classes_;
};

}  // namespace inq
