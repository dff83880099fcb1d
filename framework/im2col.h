#pragma once
// Convolution geometry and the im2col / col2im lowering (after Caffe's im2col.cpp and tiny-dnn's
// conv_params). Legend:
//   x   (N, C, H, W)        input images
//   w   (K, C/G, R, S)      weights: K output channels, G groups, an R x S kernel
//   y   (N, K, OH, OW)      output, OH = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1 (same for OW)
//   col (C*R*S, n*OH*OW)    lowered images: row (c, r, s), column (b, oh, ow) for image b of a chunk
//                           of n images. Rows of group g are the contiguous block
//                           [g*(C/G)*R*S, (g+1)*(C/G)*R*S), so one lowering serves every group.
// Convolving is then, per group, the GEMM  y_g (K/G, n*OH*OW) = w_g (K/G, (C/G)*R*S) * col_g.
#include <cstdint>
#include <string>

#include "framework/tensor.h"

namespace inq {

// A (height, width) pair. Implicit from one integer so options can say `.kernel_size = 3` or
// `.kernel_size = {3, 5}`.
struct Size2 {
  int64_t h = 0, w = 0;
  Size2(int64_t v) : h(v), w(v) {}  // NOLINT(google-explicit-constructor): intentional
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  bool operator==(const Size2&) const = default;
};

// Everything about one convolution's shapes, computed and validated once by make() and shared by
// forward, backward, tests and benchmarks.
struct Conv2dGeometry {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t K = 0, R = 0, S = 0;         // output channels, kernel height and width
  int64_t OH = 0, OW = 0;              // output height and width
  Size2 stride = 1, padding = 0, dilation = 1;
  int64_t groups = 1;
  // How many images one GEMM covers (see choose_images_per_gemm). make() sets it from the policy;
  // tests and benchmarks may change it on a copy to exercise or time other chunk sizes.
  int64_t images_per_gemm = 1;
  // Whether the convolution runs its chunks of images in parallel, one chunk per thread with
  // single-threaded BLAS, instead of one chunk at a time with multi-threaded BLAS (see
  // choose_parallel_images). Set by make(); tests may change it on a copy.
  bool parallel_images = false;
  // Whether the forward and the input gradient (not the weight gradient) run whole chunks per
  // thread on a layer too large for parallel_images (see choose_parallel_data_chunks). Set by
  // make(); tests may change it on a copy.
  bool parallel_data_chunks = false;

  // Validates and derives the output size. `input` is (N, C, H, W), `weight` is (K, C/G, R, S).
  // Throws inq::Error naming both shapes and the offending setting when: a shape is not 4-D or
  // has a zero dim, stride or dilation < 1, padding < 0, groups < 1, C or K not divisible by
  // groups, weight dim 1 != C/groups, or the output would be empty.
  static Conv2dGeometry make(const Shape& input, const Shape& weight, Size2 stride = 1, Size2 padding = 0,
                             Size2 dilation = 1, int64_t groups = 1);

  int64_t channels_per_group() const { return C / groups; }                // C/G
  int64_t outputs_per_group() const { return K / groups; }                 // K/G
  int64_t output_pixels() const { return OH * OW; }                        // P
  int64_t col_rows() const { return C * R * S; }                           // rows of col, all groups
  int64_t group_col_rows() const { return channels_per_group() * R * S; }  // GEMM inner size
  // A 1x1 kernel with unit stride and no padding: the image already is its col matrix.
  bool is_pointwise() const;
  Shape input_shape() const { return {N, C, H, W}; }
  Shape weight_shape() const { return {K, channels_per_group(), R, S}; }
  Shape output_shape() const { return {N, K, OH, OW}; }
  // Multiply-adds times two for the forward pass (backward's input and weight grads each cost as
  // much again).
  double forward_flops() const;
  std::string str() const;  // "N=8 C=64 H=56 W=56 K=64 R=3 S=3 stride=1x1 pad=1x1 dil=1x1 groups=1"
};

// The one place that decides how many images are lowered into one col matrix and multiplied in
// one GEMM. One image at a time (Caffe) keeps the col buffer small; several at a time make the GEMM
// wider, which matters for small spatial sizes (7x7, 14x14). Chosen by bench/bench_conv.cpp.
int64_t choose_images_per_gemm(const Conv2dGeometry& g);
// Small layers (ResNet-20's, LeNet-5's: a few MFLOP per image) make thin GEMMs (K = 6..64 rows) on
// which OpenBLAS's threads mostly wait for each other, and every im2col, GEMM and scatter is its
// own fork and join. With at least two chunks per thread, running whole chunks in parallel keeps
// each core busy on its own images and joins once per layer. The same holds for larger layers
// whose per-thread buffers stay small: with one image at a time over the team, a lowering of under
// 2^19 floats ran on one thread while the other waited, and every GEMM was a fork and a join.
// Measured on the AMD EPYC VM (standalone timing of conv2d_forward / conv2d_backward, 2 threads,
// batch 8, 2026-12-05, medians of 11 calls, 2-3 alternating runs, ms one chunk at a time ->
// parallel images): ResNet-18's 3x3/2 64->128c at 56x56 forward 7.9 / 8.3 -> 3.6 / 4.1, input and
// weight gradients 11.5 / 11.3 -> 8.9 / 8.7; ResNet-50's 1x1/2 256->512c at 56x56 forward 9.6 /
// 9.9 -> 7.1 / 7.4, gradients 19.9 / 19.6 -> 16.8 / 14.6; its 1x1 1024->256c at 14x14 gradients
// 7.4 / 8.3 / 8.6 -> 6.8 / 7.1 / 7.3 (parallel_data_chunks: 7.1 / 8.1 / 8.4). Where the
// weight is larger (ResNet-50's 3x3/2 256c, 589824 floats: gradients 18.2 / 16.1 -> 18.0 / 18.5;
// AlexNet's 3x3 layers at 13x13), each thread's partial weight gradient and the sum of the
// partials cost more than the team's GEMM saves. True when the current thread count
// (framework/threading.h) is above 1, there are at least 2 chunks per thread, and either the
// forward costs at most kParallelImagesMaxFlops per image or the weight has at most
// kParallelImagesMaxWeightFloats and a chunk's lowered images at most kParallelImagesMaxColFloats.
bool choose_parallel_images(const Conv2dGeometry& g);
inline constexpr double kParallelImagesMaxFlops = 32e6;
inline constexpr int64_t kParallelImagesMaxWeightFloats = int64_t{1} << 19;
inline constexpr int64_t kParallelImagesMaxColFloats = int64_t{1} << 20;
// Larger layers ran their chunks one after another, each GEMM over the whole team; on ResNet-50's
// 7x7 and 14x14 layers at batch 8 those are a few narrow GEMMs (N = 196..392 columns), which split
// poorly between threads. Their forward and input gradient take one chunk per thread instead when
// the chunks are equal and divide evenly among the threads (an uneven split, 6 + 2 images, was
// slower; such layers take equal shares instead, data_chunk_images); the weight gradient, a sum over every chunk, keeps the team GEMM (it measured slower
// per thread on the 512-channel 7x7 layer). True when not parallel_images, the current thread count
// is above 1, the images split into a multiple of it equal chunks and a chunk's GEMM has at most
// kNarrowGemmColumns columns (wider ones, AlexNet's and VGG's large images, split well over the
// team and would need a col buffer per thread of up to 115 MB). (bench_conv, 2 threads,
// forced, 3 alternating runs, GFLOP/s: 3x3 512c 7x7 forward 219 -> 266, input gradient 245 -> 279,
// weight gradient 284 -> 236; 1x1 1024->256c 14x14 forward 208 -> 289, input gradient 211 -> 272.)
bool choose_parallel_data_chunks(const Conv2dGeometry& g);
// Images per chunk under parallel_data_chunks: images_per_gemm where those chunks divide evenly
// among the threads or all the images make one chunk (one GEMM for the team), else an equal share
// per thread (N / threads) where the images divide evenly.
// ResNet-50's 1x1 layers at 7x7 (images_per_gemm 6 at batch 8: 6 + 2) take 4 + 4: standalone timing,
// batch 8, 2 threads, AMD EPYC VM, 2026-12-05, medians of 11 calls, two alternating runs, ms one
// chunk at a time over the team -> 4 + 4: 512->2048 forward 3.5 / 3.9 -> 3.0 / 3.3, input gradient
// 3.7 / 4.1 -> 3.3 / 3.2; 2048->512 forward 4.3 / 4.4 -> 3.3 / 3.4; 1x1/2 1024->2048 at 14x14
// forward 8.4 / 9.5 -> 7.3 / 8.0, input gradient 8.6 / 9.3 -> 6.7 / 7.8; ResNet-18's 3x3/2 256->512
// forward 5.6 / 6.4 -> 4.2 / 4.6, input gradient 5.0 / 5.4 -> 3.9 / 4.8.
int64_t data_chunk_images(const Conv2dGeometry& g);
// Images per chunk of a weight gradient computed on its own over the team (after the input
// gradient ran per thread, or with no input gradient wanted): as many as lower into
// kWeightChunkColFloats, at least images_per_gemm. Its GEMM sums over the chunk's pixels, so wider
// chunks mean longer rows for the dot-product kernel and fewer passes over dw. Standalone timing,
// batch 8, 2 threads, AMD EPYC VM, 2026-12-05, two runs, ms, chunks of images_per_gemm -> all 8
// images: 1x1 512->2048c at 7x7 5.2 / 5.3 -> 3.9 / 4.7; 2048->512c 5.7 / 6.0 -> 4.2 / 4.4; 1x1/2
// 1024->2048c at 14x14 12.0 / 12.0 -> 10.5 / 9.7; 3x3/2 256->512c at 14x14 5.9 / 5.8 -> 4.0 / 3.4;
// 3x3 512c at 7x7 (im2col forced) 10.4 / 10.1 -> 7.8 / 6.8. Except a pointwise layer of at least
// kWeightChunkOwnImagePixels pixels per image run one image per GEMM: x is then its own col matrix
// and dy needs no gathering into chunk rows (25.7 MB copied per call on ResNet-50's 64->256c 56x56
// layer at batch 8), and its rows are long enough for the dot-product kernel's slices. bench_conv,
// that layer's weight gradient, AMD EPYC VM, 2026-12-06, three alternating runs, GFLOP/s, all 8
// images -> one: 1 thread 77 / 64 / 56 -> 89 / 110 / 90; 2 threads 181 / 235 / 171 -> 188 / 184 / 187.
int64_t weight_chunk_images(const Conv2dGeometry& g);
inline constexpr int64_t kWeightChunkColFloats = int64_t{1} << 21;
inline constexpr int64_t kWeightChunkOwnImagePixels = 2048;
inline constexpr int64_t kNarrowGemmColumns = 512;

// Lowers images [0, count) of `images` (count, C, H, W) into col (C*R*S, count*OH*OW): out of
// range taps become 0. Parallel over (image, channel) with OpenMP; call it outside parallel regions.
void im2col(float* col, const float* images, int64_t count, const Conv2dGeometry& g);
// Lowers output rows [oh0, oh1) of one image (C, H, W) into col (C*R*S, (oh1-oh0)*OW), as im2col
// does for whole images: a band of rows keeps the buffer small for large images (VGG-16's first
// layers: 576 x 50176 floats, 115 MB, for a whole 224 x 224 image). Parallel over col rows.
void im2col_rows(float* col, const float* image, const Conv2dGeometry& g, int64_t oh0, int64_t oh1);
// The adjoint of im2col: ADDS every col entry into the image pixel it was read from.
// `images` is (count, C, H, W), col is (C*R*S, count*OH*OW). Same parallelism (race-free: each
// task owns one channel plane of one image), deterministic summation order.
void col2im(float* images, const float* col, int64_t count, const Conv2dGeometry& g);

}  // namespace inq
