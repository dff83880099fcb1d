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

// A Conv2d layer's weight (K, C/groups, R, S) as a K x (C/groups * R * S) matrix of codes.
//  - With the panel kernel (an AVX-512 build) and one group, the codes are also laid out once as
//    panels of 14 output channels (PackedMatrix::as_panels), and each call decodes one panel at a
//    time into a thread's small buffer for framework/panel_gemm.h (layers/conv2d_panels.h lowers the
//    images as a frozen float layer does): no decoded matrix larger than a panel (14 x 4608 floats
//    in ResNet-50) ever exists.
//  - A layer the float path would run as Winograd (choose_conv2d_algorithm) runs as Winograd when
//    its blocks are wide enough to pay for transforming the filters on every call
//    (packed_winograd_pays), or always without the panel kernel: its filters are decoded by rows
//    and transformed a few hundred at a time, so the float weight never exists whole. Such layers
//    keep their codes by rows as well as in panels (the transform reads whole filters; turning
//    panels back into rows cost VGG-16 a fifth of its time): twice the codes of the 3x3 layers.
//  - Otherwise (grouped layers, builds without AVX-512) each image is lowered by im2col in bands of
//    output rows (at most 8 MiB of columns) and multiplied by sgemm with panels of weight rows
//    decoded into a buffer of at most 4 MiB.
class PackedConv2dKernel : public Conv2dWeightKernel {
 public:
  // `weight` holds the codes by rows (PackedMatrix::from_packed); options are the layer's.
  PackedConv2dKernel(const PackedMatrix& weight, Shape weight_shape, const Conv2dOptions& options);
  Tensor forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const override;
  bool holds_panels() const { return panels_.rows() > 0; }
  bool holds_rows() const { return rows_.rows() > 0; }
  // The codes held in memory, in both layouts.
  int64_t code_bytes() const { return rows_.code_bytes() + panels_.code_bytes(); }

 private:
  Tensor forward_by_rows(const Tensor& x, const float* bias, const Conv2dGeometry& g) const;

  PackedMatrix rows_;    // by rows: without the panel kernel, and for layers that may run Winograd
  PackedMatrix panels_;  // as panels, with the panel kernel and one group
  Shape weight_shape_;
  int64_t groups_ = 1;
};

// Whether a packed layer on g runs Winograd (when the float layer would): enough tiles to amortize
// transforming the filters on every call. Measured in packed_inference.cpp.
bool packed_winograd_pays(const Conv2dGeometry& g);

struct PackedInferenceSummary {
  std::string arch;           // as the file records it
  int64_t packed_layers = 0;  // Conv2d / Linear layers running from codes
  int64_t packed_weights = 0;
  int64_t code_bytes = 0;        // the codes held in memory (padded rows; both layouts of a convolution)
  int64_t unpacked_tensors = 0;  // quantized tensors that are not a Conv2d / Linear weight, loaded as floats
};

// Loads the packed model `file` into `model` as described at the top. Checks the file as
// unpack_model does (metadata, checksum, every code, padding) and the names and shapes as
// load_state_dict does (strict, with `optional`). `arch`, when not empty, must be the arch the
// file records. Throws inq::Error naming the file.
PackedInferenceSummary load_packed_for_inference(SafetensorsFile file, Module& model, const NamePredicate& optional = {},
                                                 const std::string& arch = "");

}  // namespace inq
