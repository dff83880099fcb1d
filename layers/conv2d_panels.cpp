#include "layers/conv2d_panels.h"

#include <algorithm>

#include <omp.h>

#include "framework/error.h"
#include "framework/workspace.h"
#include "layers/conv2d_rows.h"

namespace inq {

// Measured with a standalone timing of panel_gemm against sgemm on the GEMMs of ResNet-50's batch-1
// convolutions (M x K weight times K x N columns; quiet machine, 2026-12-01, OpenBLAS 0.3.21 with
// the machine's Haswell kernels; GFLOP/s sgemm -> panel_gemm):
//                                   1 thread       2 threads
//   1x1 64 -> 256,    N 3136        103 -> 200     168 -> 312
//   1x1 512 -> 128,   N 784         106 -> 208     160 -> 428
//   1x1 1024 -> 256,  N 196         105 -> 193     159 -> 410
//   1x1 512 -> 2048,  N 49           92 -> 146     109 -> 303
//   3x3 im2col 512,   N 49 (K 4608)  82 -> 140     107 -> 255
//   7x7 stem, N 12544 (K 147)        94 -> 187     180 -> 365

namespace {

// Columns of lowered images per GEMM (8 MiB): several small images side by side (7x7 layers at
// batch 8: whole 16-column vectors instead of a masked tail per image), or a band of rows of one
// large image.
constexpr int64_t kPanelColFloats = int64_t{1} << 21;

// Whether to multiply each image on its own, straight into its rows of y, rather than several
// images' columns in one GEMM whose product is staged and copied into y. On its own an image pays
// for its masked tail (196 pixels: 208 computed, 6% more), which grows with the inner dimension;
// the staged copy costs about the same per output whatever the inner dimension, so it weighs less
// as that grows. Measured with ResNet-50 at batch 8, 2 threads, AMD EPYC VM (bench_layer_times and a
// standalone timing of this file, 2026-12-04): on their own, the 14x14 1x1 layers went from 2.9-3.5
// to 2.4-2.9 ms each and the 1x1 stride-2 layers at 56 and 28 from 8.5 to 7.0 and 7.8 to 6.8 ms; the
// 3x3 stride-2 256-channel layer (inner 2304) went from 8.5 to 9.3 ms, and the 7x7 1x1 512->2048
// (49 pixels, 64 computed) from 2.7 to 3.0 ms. The rule below keeps the latter two staged: at least
// 128 pixels, and tail waste times inner dimension at most 128 (6% at 2304 is 138).
bool multiply_per_image(const Conv2dGeometry& g) {
  const int64_t P = g.output_pixels(), computed = (P + 15) / 16 * 16;
  return g.N == 1 || (P >= 128 && (computed - P) * g.col_rows() <= 128 * P);
}

// Whether each thread lowers and multiplies its own share of the images (on the calling thread
// alone) rather than every image's GEMM being shared by the team: no barrier per image, and the
// lowering runs on every thread even where one image is too little copying to share. Measured on
// ResNet-50's batch-8 lowered layers (standalone timing of conv2d_forward_panels, laid-out panels,
// AMD EPYC VM, 2 threads, 2026-12-05, medians of 15 calls, two alternating runs, ms team -> per
// thread): 3x3/2 128c at 56x56 10.9 / 11.8 -> 9.3 / 9.0, 3x3/2 256c at 28x28 9.4 / 8.8 -> 7.6 / 7.8,
// 3x3/2 512c at 14x14 10.4 / 12.5 -> 8.0 / 7.1, 1x1/2 1024->2048 8.5 / 8.5 -> 6.7 / 6.5, 1x1
// 512->2048 at 7x7 3.2 / 3.3 -> 2.7 / 2.9, the 1x1 layers at 56x56 within 10% either way; all 18
// layer shapes weighted by their count 152 / 158 -> 138 / 141 ms; bench_layer_times (every
// convolution of the network through the frozen kernel, 4 alternating runs) 170 / 179 / 185 / 170
// -> 158 / 168 / 166 / 149 ms; the whole eval step (bench_model, 6 alternating rounds) moved within
// this VM's noise, medians 33.5 -> 34.0 img/s. Needs two images per thread and an image that lowers
// in one piece (the band path stays on the team).
}  // namespace

bool conv2d_panels_images_per_thread(const Conv2dGeometry& g) {
  const int64_t threads = omp_get_max_threads();
  return !omp_in_parallel() && threads > 1 && g.N >= 2 * threads &&
         g.col_rows() * g.output_pixels() <= kPanelColFloats;
}

namespace {

// The lowering; multiply(B, ldb, N, C, ldc, bias) is C (K x N) = weight * B (+ bias).
template <class Multiply>
void forward_lowered(float* y, const float* x, const Multiply& multiply, const float* b, const Conv2dGeometry& g) {
  const int64_t P = g.output_pixels(), image = g.C * g.H * g.W, inner = g.col_rows();
  const bool per_image = multiply_per_image(g);
  // The image is its own col matrix: one GEMM per image, nothing copied.
  if (g.is_pointwise() && per_image) {
    for (int64_t n = 0; n < g.N; ++n) multiply(x + n * image, P, P, y + n * g.K * P, P, b);
    return;
  }
  const int64_t image_cols = inner * P;
  if (image_cols <= kPanelColFloats) {
    // Chunks of whole images lowered together, col (inner, n*P) (one parallel im2col even when a
    // single image is too little copying to share); then each image's columns multiplied straight
    // into y, or small images in one GEMM, staged (K, n*P), and scattered.
    const int64_t per_gemm = std::clamp<int64_t>(kPanelColFloats / std::max<int64_t>(image_cols, 1), 1, g.N);
    const int64_t col_floats = round_up_to_line(inner * per_gemm * P);
    const int64_t staged_floats = per_gemm > 1 && !per_image ? round_up_to_line(g.K * per_gemm * P) : 0;
    float* col = thread_workspace().floats(col_floats + staged_floats);
    float* staged = col + col_floats;
    for (int64_t n0 = 0; n0 < g.N; n0 += per_gemm) {
      const int64_t n = std::min(per_gemm, g.N - n0), ld = n * P;
      im2col(col, x + n0 * image, n, g);
      if (n == 1 || per_image) {
        for (int64_t i = 0; i < n; ++i) multiply(col + i * P, ld, P, y + (n0 + i) * g.K * P, P, b);
        continue;
      }
      multiply(col, ld, ld, staged, ld, b);
      // y (n, K, P) = staged (K, n*P).
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < g.K; ++k)
          std::copy(staged + k * ld + i * P, staged + k * ld + (i + 1) * P, y + ((n0 + i) * g.K + k) * P);
    }
    return;
  }
  // Bands of output rows of one large image, each multiplied straight into its rows of y (row
  // stride P).
  const int64_t band_rows = std::clamp<int64_t>(kPanelColFloats / std::max<int64_t>(inner * g.OW, 1), 1, g.OH);
  float* col = thread_workspace().floats(round_up_to_line(inner * band_rows * g.OW));
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh0 = 0; oh0 < g.OH; oh0 += band_rows) {
      const int64_t oh1 = std::min(g.OH, oh0 + band_rows), cols = (oh1 - oh0) * g.OW;
      im2col_rows(col, x + n * image, g, oh0, oh1);
      multiply(col, cols, cols, y + n * g.K * P + oh0 * g.OW, P, b);
    }
}

// Multiplies the input in place instead of lowering it (layers/conv2d_rows.h): one image's phase
// planes, then the kernel reads each output row's B through the table of row starts
// (panel_gemm_rows_serial), one output row (OW columns) at a time. Each output is the same
// k-ordered sum as the lowered form's. `panels`: the whole weight laid out as panels.
void forward_in_place(float* y, const float* x, const float* panels, const float* b, const Conv2dGeometry& g) {
  const PhasePlanes layout = PhasePlanes::of(g);
  const int64_t inner = g.col_rows(), P = g.output_pixels(), image = g.C * g.H * g.W;
  float* planes = thread_workspace().floats(round_up_to_line(layout.image_floats()));
  const float* const* table = thread_phase_row_table(planes, g, layout);
  const int64_t phase_rows = layout.count * layout.rows, row_step = g.stride.h * layout.width;
#pragma omp parallel if (g.forward_flops() >= 1e6)
  for (int64_t n = 0; n < g.N; ++n) {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < phase_rows; ++i) build_phase_rows(planes, x + n * image, g, layout, i, i + 1);
#pragma omp for schedule(static)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      panel_gemm_rows_serial(panels, g.K, inner, table, oh * row_step, g.OW, y + n * g.K * P + oh * g.OW, P, b);
  }
}

// Checks that the panel kernel runs g (both entry points call this first), then says which lowering.
bool in_place(const Conv2dGeometry& g, PanelsLowering lowering) {
  INQ_CHECK(conv2d_panels_supported(g), "Given the convolution {}, expected groups 1 and an AVX-512 build for "
            "the panel kernel", g.str());
  return lowering == PanelsLowering::InPlace || (lowering == PanelsLowering::Automatic && conv2d_panels_in_place(g));
}

}  // namespace

bool conv2d_panels_supported(const Conv2dGeometry& g) { return panel_gemm_supported() && g.groups == 1; }


bool conv2d_panels_in_place(const Conv2dGeometry& g) {
  return !g.is_pointwise() && g.col_rows() <= kInPlaceMaxInner && panel_floats(g.K, g.col_rows()) <= kInPlacePanelFloats &&
         g.OW >= kInPlaceMinColumns;
}

void conv2d_forward_panels(float* y, const float* x, const PanelSource& panel, const float* b,
                           const Conv2dGeometry& g, PanelsLowering lowering) {
  const int64_t inner = g.col_rows();
  if (in_place(g, lowering)) {
    // Every panel once for the whole call (the rows of each output row meet all of them).
    float* panels = thread_operand_workspace().floats(panel_floats(g.K, inner));
    for (int64_t p = 0; p < panel_count(g.K); ++p) {
      float* at = panels + p * inner * kPanelRows;
      const float* made = panel(p, at);
      if (made != at) std::copy(made, made + inner * kPanelRows, at);
    }
    forward_in_place(y, x, panels, b, g);
    return;
  }
  forward_lowered(
      y, x,
      [&](const float* B, int64_t ldb, int64_t N, float* C, int64_t ldc, const float* bias) {
        panel_gemm(panel, g.K, inner, B, ldb, N, C, ldc, bias);
      },
      b, g);
}

void conv2d_forward_panels(float* y, const float* x, const float* panels, const float* b, const Conv2dGeometry& g,
                           PanelsLowering lowering) {
  if (in_place(g, lowering)) {
    forward_in_place(y, x, panels, b, g);
    return;
  }
  const int64_t inner = g.col_rows();
  if (conv2d_panels_images_per_thread(g)) {
    // Each thread lowers and multiplies its own share of the images, on the calling thread alone.
    const int64_t image = g.C * g.H * g.W, out_image = g.K * g.output_pixels();
#pragma omp parallel
    {
      const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t n0 = g.N * t / threads, n1 = g.N * (t + 1) / threads;
      Conv2dGeometry share = g;
      share.N = n1 - n0;
      if (share.N > 0)
        forward_lowered(
            y + n0 * out_image, x + n0 * image,
            [&](const float* B, int64_t ldb, int64_t N, float* C, int64_t ldc, const float* bias) {
              panel_gemm_serial(panels, g.K, inner, B, ldb, N, C, ldc, bias);
            },
            b, share);
    }
    return;
  }
  forward_lowered(
      y, x,
      [&](const float* B, int64_t ldb, int64_t N, float* C, int64_t ldc, const float* bias) {
        panel_gemm(panels, g.K, inner, B, ldb, N, C, ldc, bias);
      },
      b, g);
}

}  // namespace inq
