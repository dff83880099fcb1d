#pragma once
// Winograd minimal filtering for 3x3, stride-1 convolutions: F(m x m, 3 x 3) computes an m x m
// output tile from an a x a input tile (a = m + 2) with a*a multiplies per (input channel, output
// channel) instead of 9*m*m (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural
// Networks", arXiv:1509.09308, section 4; the transform matrices B, G, A are theirs, with the
// interpolation points 0, +-1, +-2 for m = 4). Legend:
//   x  (N, C, H, W)      input           w (K, C, 3, 3) weights       b (K) bias or null
//   y  (N, K, OH, OW)    output, OH = H + 2*pad_h - 2, OW = W + 2*pad_w - 2
//   tile t = (n, ty, tx) the output pixels [m*ty, m*ty + m) x [m*tx, m*tx + m) of image n, read
//                        from the input rows/columns starting m*ty - pad_h / m*tx - pad_w; tiles
//                        of every image are numbered one after another (T = N * ceil(OH/m) *
//                        ceil(OW/m)) and processed in blocks of Tb, so the GEMMs span images
//   U  (a*a, K, C)       transformed weights, U[xi] = (G w G^T)[xi] for transform point xi
//   V  (a*a, C, Tb)      transformed input tiles of one block, V[xi] = (B^T d B)[xi]
//   M  (a*a, K, Tb)      M[xi] = U[xi] * V[xi]: one (K x C) * (C x Tb) GEMM per transform point
//   y tile               A^T M A (+ b), cut to the image where the last tile overhangs it
//                        (V's and M's points lie an odd number of cache lines apart, not C*Tb or
//                        K*Tb floats: see point_stride in the .cpp)
// Every output value is computed by the same operations in the same order whatever the thread
// count (the threads split channels, points and output channels, never a sum), so results are
// bit-identical across runs and thread counts.
// The input gradient of a 3x3 stride-1 convolution is itself one: dx = conv(dy, w') with
// w'[c][k][r][s] = w[k][c][2-r][2-s] and padding 2 - pad, so the same kernel computes it.
#include <functional>

#include "framework/im2col.h"

namespace inq {

// 3x3 kernel, stride 1, dilation 1, groups 1, padding at most 2 in each direction (the input
// gradient's padding 2 - pad must not be negative).
bool winograd_supported(const Conv2dGeometry& g);

struct WinogradConfig {
  int m = 4;                // output tile side: 2 (F(2x2,3x3)) or 4 (F(4x4,3x3))
  int64_t block_tiles = 0;  // Tb; 0 picks it from the cache budget (winograd_block_tiles)
  // Forward only: U computed beforehand by winograd_transform_filters for this m, or null (the
  // forward transforms w itself, every call). A layer whose weight no longer changes (inference,
  // layers/inference_prep.h) keeps U and skips that transform, which at batch 1 costs as much as
  // a fifth of the layer (U is 4x the weight's size, written once per call).
  const float* filters = nullptr;
  // Forward only, instead of filters: U repacked by winograd_pack_filter_panels. On builds with
  // AVX-512 (winograd_filter_panels_supported()) the transform-point GEMMs always run on
  // framework/panel_gemm.h's kernel, on U laid out as panels once per call when it is not given so
  // (training: +5-10% on a ResNet-20 step against OpenBLAS's AVX2 sgemm, which also re-packed U for
  // every block); kept panels skip that pass too. Without AVX-512, sgemm on U.
  const float* filter_panels = nullptr;
  // Weight gradient only: the number of tile partitions whose sums are made privately, one thread
  // per partition, and added in partition order (see winograd_weight_partitions); 0 chooses it,
  // 1 runs the shared blocks. The result depends on it, never on the thread count.
  int64_t weight_partitions = 0;
};

// The m x m output tiles of the whole batch: N * ceil(OH / m) * ceil(OW / m).
int64_t winograd_tiles(const Conv2dGeometry& g, int m);
// The tiles per block when config.block_tiles is 0 (measured; see its definition).
int64_t winograd_block_tiles(const Conv2dGeometry& g, int m);
// The weight gradient's tile partitions when config.weight_partitions is 0: a function of the
// geometry alone, so that dw has the same bits for any thread count.
int64_t winograd_weight_partitions(const Conv2dGeometry& g, int m);

// y = conv(x, w) + b (b may be null) for a winograd_supported geometry. accumulate: adds into y.
void winograd_conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dGeometry& g,
                             const WinogradConfig& config, bool accumulate = false);
// U (a*a, K, C), a = m + 2: the transformed filters of w (K, C, 3, 3) exactly as the forward
// computes them; winograd_filter_floats(g, m) floats. Only g's K, C and kernel matter.
int64_t winograd_filter_floats(const Conv2dGeometry& g, int m);
void winograd_transform_filters(float* U, const float* w, const Conv2dGeometry& g, int m);
// U repacked for WinogradConfig::filter_panels: per transform point, panels of 14 output channels,
// channel-major inside a panel, rows past K zero; winograd_filter_panel_floats(g, m) floats.
bool winograd_filter_panels_supported();  // this build has the AVX-512 kernel
int64_t winograd_filter_panel_floats(const Conv2dGeometry& g, int m);
void winograd_pack_filter_panels(float* Up, const float* U, const Conv2dGeometry& g, int m);

// U for the filters f = k * C + c in [f_begin, f_end) only, read from w_part, which holds exactly
// those filters (9 floats each, in order): a weight decoded a panel of output channels at a time
// (inq/packed_inference.cpp, builds without AVX-512) is transformed panel by panel, never whole as
// floats.
void winograd_transform_filter_range(float* U, const float* w_part, const Conv2dGeometry& g, int m, int64_t f_begin,
                                     int64_t f_end);

// The forward with the filters supplied a panel of output channels at a time and never held whole,
// transformed or not: `filter_panel(p, out)` writes the raw filters of output channels [14p, 14p +
// 14) in framework/panel_gemm.h's panel layout, out[(c * 9 + i) * 14 + r] = w[14p + r][c][i] (rows
// past K zero; 14 * C * 9 floats), and may run on several threads at once. Each thread transforms
// the panels it works on into its own buffer and uses them at once, so a layer whose weight exists
// only as b-bit codes (inq/packed_inference.cpp) runs Winograd without writing a whole U per call.
// Needs the AVX-512 panel kernel (winograd_filter_panels_supported()); the same bits as
// winograd_conv2d_forward with the same filters given as panels (each output is the same transform
// of the same sums).
using WinogradFilterPanel = std::function<void(int64_t p, float* out)>;
void winograd_conv2d_forward_streamed(float* y, const float* x, const WinogradFilterPanel& filter_panel, const float* b,
                                      const Conv2dGeometry& g, int m);

// The input gradient dx (N, C, H, W) of the forward above from dy (N, K, OH, OW); added into dx
// when accumulate, else written over it.
void winograd_conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dGeometry& g,
                                   const WinogradConfig& config, bool accumulate);

// The weight gradient dw (K, C, 3, 3) from x and dy, added into dw when accumulate: per tile
// dw_t = G^T [(A e A^T) .* (B^T d B)] G (the gradient of the forward's tile formula), one
// (K x Tb) * (Tb x C) sgemm per transform point and block, summed over blocks in order.
void winograd_conv2d_backward_weight(float* dw, const float* x, const float* dy, const Conv2dGeometry& g,
                                     const WinogradConfig& config, bool accumulate);
// Tiles per block of the weight gradient when config.block_tiles is 0 (the GEMMs' inner size).
int64_t winograd_weight_block_tiles(const Conv2dGeometry& g, int m);

// Naive references for the kernels above (direct convolution accumulated in double, then
// rounded to float once), for tests and as the direct kernels' fallback in builds without AVX-512
// (layers/conv2d_direct.h): any geometry with groups 1.
void conv2d_forward_naive(float* y, const float* x, const float* w, const float* b, const Conv2dGeometry& g);
void conv2d_backward_data_naive(float* dx, const float* dy, const float* w, const Conv2dGeometry& g);
void conv2d_backward_weight_naive(float* dw, const float* x, const float* dy, const Conv2dGeometry& g);

}  // namespace inq
