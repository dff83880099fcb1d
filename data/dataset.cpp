#include "data/dataset.h"

#include <cstring>

#include "framework/error.h"

namespace inq {

Example Dataset::example(int64_t index) const {
  Example ex;
  ex.image = Tensor::empty(image_shape());
  get(index, ex.image.data(), &ex.label);
  return ex;
}

void Dataset::get_with_generator(int64_t index, Generator&, float* image_out, int64_t* label_out) const {
  get(index, image_out, label_out);
}

void check_dataset_index(int64_t index, int64_t size, const char* dataset_kind) {
  INQ_CHECK(index >= 0 && index < size,
            "Given a {} of {} examples, expected an index in [0, {}), but got {} instead", dataset_kind, size,
            size, index);
}

TensorDataset::TensorDataset(const Tensor& images, std::vector<int64_t> labels, int64_t num_classes)
    : labels_(std::move(labels)), num_classes_(num_classes) {
  INQ_CHECK(images.defined() && images.dim() == 4,
            "Given TensorDataset images of shape {}, expected 4 dimensions (N, C, H, W)",
            images.defined() ? shape_str(images.shape()) : std::string("(undefined)"));
  INQ_CHECK(images.size(0) == static_cast<int64_t>(labels_.size()),
            "Given TensorDataset images of shape {}, expected {} labels, but got {} instead",
            shape_str(images.shape()), images.size(0), labels_.size());
  INQ_CHECK(num_classes_ > 0, "Given a TensorDataset, expected num_classes > 0, but got {} instead",
            num_classes_);
  for (size_t i = 0; i < labels_.size(); ++i) {
    INQ_CHECK(labels_[i] >= 0 && labels_[i] < num_classes_,
              "Given TensorDataset labels, expected each in [0, {}), but label {} is {} instead",
              num_classes_, i, labels_[i]);
  }
  images_ = images.detach().clone();
}

void TensorDataset::get(int64_t index, float* image_out, int64_t* label_out) const {
  check_dataset_index(index, size(), "TensorDataset");
  const int64_t per_image = images_.numel() / images_.size(0);
  std::memcpy(image_out, images_.data() + index * per_image, static_cast<size_t>(per_image) * sizeof(float));
  *label_out = labels_[static_cast<size_t>(index)];
}

}  // namespace inq
