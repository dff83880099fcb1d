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

// Whether the automatic choice multiplies the input in place (the kernel reads padded input rows
// through a table) instead of lowering it with im2col. Lowering writes C*R*S floats per output
// pixel and reads them back, which costs most next to the GEMM when the output channels are few
// (the 3-channel 7x7 stems: 147 col rows per pixel for 64 outputs). In place pays where a 32-column
// tile's rows (inner x 128 bytes) stay close to L1 and the panels stay in cache while every output
// row passes (one output row at a time, 16 columns per vector: wide rows waste little on a tail).
// Measured on the AMD EPYC VM (standalone timing of conv2d_forward_panels, 2026-12-05, best of 7,
// ms lowered -> in place, 2 threads / 1 thread): ResNet's 7x7/2 stem at batch 8 11.2 -> 6.0 /
// 11.8 -> 9.6 (312 GFLOP/s at 2 threads), batch 1 1.33 -> 0.72 / 1.39 -> 1.17; AlexNet's 11x11/4
// conv1 (inner 363) at batch 8 7.1 -> 4.1 / 7.9 -> 7.1; a 3x3 32c 56x56 layer 2.6 -> 2.0 / 3.1 ->
// 2.9; a 3x3/2 64c layer at 112x112 (inner 576) 10.9 -> 10.2 / 13.8 -> 14.3, hence kInPlaceMaxInner.
constexpr int64_t kInPlaceMaxInner = 512;
constexpr int64_t kInPlacePanelFloats = int64_t{1} << 16;
constexpr int64_t kInPlaceMinColumns = 48;
bool conv2d_panels_in_place(const Conv2dGeometry& g);

// Whether the lowered path (laid-out panels) gives each thread its own share of the images: at
// the current thread count T > 1, at least 2T images, each lowering in one piece (not in bands).
bool conv2d_panels_images_per_thread(const Conv2dGeometry& g);

// Which lowering to run; tests and benchmarks force one, everything else takes the automatic choice.
enum class PanelsLowering { Automatic, Lowered, InPlace };

void conv2d_forward_panels(float* y, const float* x, const PanelSource& panel, const float* b,
                           const Conv2dGeometry& g, PanelsLowering lowering = PanelsLowering::Automatic);
// With the weight laid out by pack_panels (as a K x C*R*S matrix). Where the lowered path runs and
// conv2d_panels_images_per_thread(g) holds, each thread lowers and multiplies its own share of the
// images (the same bits as the team's shared GEMMs).
void conv2d_forward_panels(float* y, const float* x, const float* panels, const float* b, const Conv2dGeometry& g,
                           PanelsLowering lowering = PanelsLowering::Automatic);

}  // namespace inq
