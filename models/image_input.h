#pragma once
// The entry check of the ImageNet-style classifiers: the batch must be (N, C, H, W) with the
// model's channel count and a spatial size its downsampling leaves non-empty. Checking once at the
// model's entry names the model and its size limit, instead of an error deep inside a pooling layer.
#include <cstdint>
#include <string>

#include "framework/tensor.h"

namespace inq {

// Throws inq::Error unless x is 4-d with x.size(1) == channels and H, W >= min_size.
void check_image_batch(const std::string& arch, const Tensor& x, int64_t channels, int64_t min_size);

}  // namespace inq
