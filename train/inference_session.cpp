#include "train/inference_session.h"

#include <algorithm>
#include <cstring>

#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/threading.h"
#include "train/inference_model.h"

namespace inq {

InferenceSession::InferenceSession(const std::string& arch, const std::string& weights,
                                   const InferenceSessionOptions& options)
    : arch_(arch), weights_(weights) {
  const auto known = available_models();
  INQ_CHECK(std::find(known.begin(), known.end(), arch) != known.end(),
            "Given the architecture '{}', expected one of: {}", arch, fmt::join(known, ", "));
  const bool small = arch == "lenet5" || arch == "lenet5-caffe" || arch == "resnet20";
  in_channels_ = options.in_channels > 0 ? options.in_channels : (arch == "lenet5" || arch == "lenet5-caffe") ? 1 : 3;
  num_classes_ = options.num_classes > 0 ? options.num_classes : small ? 10 : 1000;
  set_threads(options.threads);
  InferenceModel loaded = load_inference_model(
      arch, inference_options({.num_classes = num_classes_, .in_channels = in_channels_}), weights, {.arch = arch});
  model_ = std::move(loaded.model);
  packed_ = loaded.packed;
  code_bytes_ = loaded.packed_summary.code_bytes;
}

void InferenceSession::set_threads(int threads) { set_num_threads(threads); }

Tensor InferenceSession::run(const Tensor& images) {
  INQ_CHECK(images.defined() && images.dim() == 4 && images.size(1) == in_channels_,
            "Given images of shape {} for {} from '{}', expected (N, {}, H, W)",
            images.defined() ? shape_str(images.shape()) : "(undefined)", arch_, weights_, in_channels_);
  check_input_size(arch_, images.size(2), images.size(3), fmt::format("the images of shape {}", shape_str(images.shape())));
  NoGradGuard no_grad;
  return model_->forward(images);
}

std::vector<float> InferenceSession::run(const float* images, const Shape& shape) {
  INQ_CHECK(images != nullptr && shape.size() == 4,
            "Given {} images of shape {}, expected a buffer of shape (N, C, H, W)", images ? "" : "null",
            shape_str(shape));
  Tensor x = Tensor::empty(shape);
  std::memcpy(x.data(), images, static_cast<size_t>(x.numel()) * sizeof(float));
  return run(x).to_vector();
}

}  // namespace inq
