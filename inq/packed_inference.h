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
//  - A 3x3 stride-1 layer runs Winograd where a frozen float layer would with kept filters
//    (choose_conv2d_algorithm with filters_kept: F(2x2) on small images too), from the same panels:
//    winograd_conv2d_forward_streamed (layers/conv2d_winograd.h) has each thread decode a panel,
//    transform it into its own buffer (one panel's U, 14 x C x 36 floats at most) and use it at
//    once, so no whole U is written per call. Without AVX-512, Winograd layers decode their rows a
//    few hundred filters at a time and transform them into a U for the call.
//  - Otherwise (grouped layers, builds without AVX-512) each image is lowered by im2col in bands of
//    output rows (at most 8 MiB of columns) and multiplied by sgemm with panels of weight rows
//    decoded into a buffer of at most 4 MiB.
class PackedConv2dKernel : public Conv2dWeightKernel {
 public:
  // `weight` holds the codes by rows (PackedMatrix::from_packed); options are the layer's.
  PackedConv2dKernel(const PackedMatrix& weight, Shape weight_shape, const Conv2dOptions& options);
  Tensor forward(const Tensor& x, const Tensor& bias, const Conv2dOptions& options) const override;
  bool holds_panels() const { return panels_.rows() > 0; }
  // The codes held in memory (one layout: panels or rows).
  int64_t code_bytes() const { return rows_.code_bytes() + panels_.code_bytes(); }

 private:
  Tensor forward_by_rows(const Tensor& x, const float* bias, const Conv2dGeometry& g) const;

  PackedMatrix rows_;    // by rows: without the panel kernel, or with groups
  PackedMatrix panels_;  // as panels, with the panel kernel and one group
  Shape weight_shape_;
  int64_t groups_ = 1;
};

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
