#pragma once
// The forward convolution of an inference layer whose weight is fixed, on framework/panel_gemm.h:
//   x (N, C, H, W)   weight (K, C*R*S) as panels (from `panel`)   b (K) or null   y (N, K, OH, OW)
// y = conv(x, w) + b, lowered as conv2d_forward lowers it (im2col; a 1x1 stride-1 unpadded layer
// multiplies the image itself), but the multiply is panel_gemm's: the weight's panels are laid out
// once (layers/inference_prep.h, float weights) or decoded from b-bit codes panel by panel
// (inq/packed_inference.h), never repacked per call as sgemm does, and its AVX-512 kernel runs at
// about twice this machine's OpenBLAS (AVX2 kernels) on ResNet-50's batch-1 shapes (measured in
// conv2d_panels.cpp). Lowering: images of up to kPanelColFloats of columns are lowered together;
// then each image's columns are multiplied straight into its rows of y, or, when images are small
// (7x7) or a masked tail would cost more than a copy, one wider GEMM is staged and scattered per
// image (multiply_per_image says which); larger images go a band of output rows at a time.
// groups must be 1.
#include "framework/im2col.h"
#include "framework/panel_gemm.h"

namespace inq {

// This build has the kernel and g has one group.
bool conv2d_panels_supported(const Conv2dGeometry& g);

void conv2d_forward_panels(float* y, const float* x, const PanelSource& panel, const float* b,
                           const Conv2dGeometry& g);
// With the weight laid out by pack_panels (as a K x C*R*S matrix).
void conv2d_forward_panels(float* y, const float* x, const float* panels, const float* b, const Conv2dGeometry& g);

}  // namespace inq
