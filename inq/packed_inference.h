#pragma once
// Inference straight from a packed model's b-bit codes (docs/INQ_SPEC.md section 7, docs/PACKED_INFERENCE.md).
// Every Conv2d and Linear layer whose weight the file stores as codes gets a packed kernel
// (inq/packed_matrix.h) in place of its float weight; the float weight's storage is released and
// never filled. Everything else (biases, BatchNorm, layers excluded from INQ) loads as floats.
// Inference only: no gradient reaches a packed weight.
//
// To keep the process's memory that of the codes, build the model under a SkipParameterInitGuard
// (layers/init.h) and hand the file over by value: each tensor's codes are moved out of it and
// re-laid out one tensor at a time.
#include <cstdint>
#include <memory>
#include <string>

#include "framework/safetensors.h"
#include "framework/state_dict.h"
#include "inq/packed_matrix.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/module.h"

namespace inq {

// A Linear layer's weight (out, in) as codes.
class PackedLinearKernel : public LinearWeightKernel {
 public:
  explicit PackedLinearKernel(PackedMatrix weight) : weight_(std::move(weight)) {}
  Tensor forward(const Tensor& x, const Tensor& bias) const override;
  const PackedMatrix& weight() const { return weight_; }

 private:
  PackedMatrix weight_;
};

// A Conv2d layer's weight (K, C/groups, R, S) as a K x (C/groups * R * S) matrix of codes. Each image
// is lowered by im2col in bands of output rows (at most 8 MiB of columns; a 1x1 / stride 1 / unpadded
// convolution at batch 1 uses the image as it is; small images of a batch are lowered several at a
// time, side by side, for a wider GEMM) and multiplied by panels of weight rows decoded into a buffer
// of at most 4 MiB, so no float copy of the whole weight, nor of a whole large lowered image, exists.
// A layer the float path would run as Winograd F(4x4, 3x3) (choose_conv2d_algorithm) runs as Winograd
// too: its filters are decoded 256 KiB at a time and transformed straight away, every call.
class PackedConv2dKernel : public Conv2dWeightKernel {
 public:
  PackedConv2dKernel(PackedMatrix weight, Shape weight_shape)
      : weight_(std::move(weight)), weight_shape_(std::move(weight_shape)) {}
  Tensor forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const override;
  const PackedMatrix& weight() const { return weight_; }

 private:
  PackedMatrix weight_;
  Shape weight_shape_;
};

struct PackedInferenceSummary {
  std::string arch;           // as the file records it
  int64_t packed_layers = 0;  // Conv2d / Linear layers running from codes
  int64_t packed_weights = 0;
  int64_t code_bytes = 0;        // the codes held in memory (rows padded to 16 codes)
  int64_t unpacked_tensors = 0;  // quantized tensors that are not a Conv2d / Linear weight, loaded as floats
};

// Loads the packed model `file` into `model` as described at the top. Checks the file as
// unpack_model does (metadata, checksum, every code, padding) and the names and shapes as
// load_state_dict does (strict, with `optional`). `arch`, when not empty, must be the arch the
// file records. Throws inq::Error naming the file.
PackedInferenceSummary load_packed_for_inference(SafetensorsFile file, Module& model, const NamePredicate& optional = {},
                                                 const std::string& arch = "");

}  // namespace inq
