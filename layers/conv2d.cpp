#include "layers/conv2d.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <omp.h>

#include "framework/autograd.h"
#include "framework/dot_gemm.h"
#include "framework/error.h"
#include "framework/gemm.h"
#include "framework/panel_gemm.h"
#include "framework/workspace.h"
#include "layers/conv2d_direct.h"
#include "layers/conv2d_panels.h"
#include "layers/conv2d_rows.h"
#include "layers/conv2d_winograd.h"
#include "layers/init.h"

namespace inq {

void check_conv2d_options(const Conv2dOptions& o) {
  const auto desc = [&] {
    return fmt::format(
        "Conv2dOptions(in_channels={}, out_channels={}, kernel_size={}x{}, stride={}x{}, "
        "padding={}x{}, dilation={}x{}, groups={})",
        o.in_channels, o.out_channels, o.kernel_size.h, o.kernel_size.w, o.stride.h, o.stride.w, o.padding.h,
        o.padding.w, o.dilation.h, o.dilation.w, o.groups);
  };
  INQ_CHECK(o.in_channels > 0 && o.out_channels > 0, "Given {}, expected positive channel counts", desc());
  INQ_CHECK(o.kernel_size.h > 0 && o.kernel_size.w > 0, "Given {}, expected a positive kernel size", desc());
  INQ_CHECK(o.stride.h > 0 && o.stride.w > 0, "Given {}, expected stride >= 1", desc());
  INQ_CHECK(o.dilation.h > 0 && o.dilation.w > 0, "Given {}, expected dilation >= 1", desc());
  INQ_CHECK(o.padding.h >= 0 && o.padding.w >= 0, "Given {}, expected padding >= 0", desc());
  INQ_CHECK(o.groups > 0 && o.in_channels % o.groups == 0 && o.out_channels % o.groups == 0,
            "Given {}, expected groups >= 1 dividing both in_channels and out_channels", desc());
}

// ---------------------------------------------------------------------------------------------
// Algorithm choice.

namespace {

Conv2dAlgorithm algorithm_from_environment() {
  const char* v = std::getenv("INQ_CONV_ALGO");
  if (v == nullptr || std::string(v) == "auto" || std::string(v).empty()) return Conv2dAlgorithm::Auto;
  if (std::string(v) == "im2col") return Conv2dAlgorithm::Im2col;
  if (std::string(v) == "winograd") return Conv2dAlgorithm::Winograd;
  if (std::string(v) == "direct") return Conv2dAlgorithm::Direct;
  throw Error(fmt::format("Given INQ_CONV_ALGO={}, expected auto, im2col, winograd or direct", v));
}

std::atomic<Conv2dAlgorithm>& algorithm_mode() {
  static std::atomic<Conv2dAlgorithm> mode{algorithm_from_environment()};
  return mode;
}

}  // namespace

void set_conv2d_algorithm(Conv2dAlgorithm algorithm) { algorithm_mode().store(algorithm); }

Conv2dAlgorithm conv2d_algorithm() { return algorithm_mode().load(); }

// Direct convolution (layers/conv2d_direct.h) for narrow layers: at most 8 input channels, where
// im2col's R*S copies of the input and GEMMs with an inner size of C*R*S <= 8*R*S cost more than
// the arithmetic; the input gradient only from 4 input channels on (it is a convolution with C
// output channels, and the kernel's blocks of 8 channels are mostly empty below that). Only with
// the AVX-512 kernels. Measured with bench_conv (1 thread, process CPU time, loaded machine,
// 2026-12-01; GFLOP/s, im2col -> direct):
//                                  forward        input gradient  weight gradient
//   lenet5 1->6c 5x5 28x28 pad 2   25.5 -> 77.9   22.9 -> 16.5    15.5 -> 32.6
//   lenet5 6->16c 5x5 14x14        32.9 -> 78.1   37.8 -> 53.7    29.9 -> 27.9
//   r20 stem 1->16c 3x3 28x28      28.7 -> 60.9   25.7 -> 13.3    19.0 -> 23.0
// (the first layer's input gradient is not needed in training). LeNet-5's training step, 1 thread:
// 8,300-8,700 -> 11,900-12,100 img/s with max pooling's vector path.
namespace {
bool direct_pays(const Conv2dGeometry& g) { return direct_conv2d_vectorized() && g.C <= 8; }
}  // namespace

namespace {
std::atomic<Im2colGemm>& im2col_gemm_mode() {
  static std::atomic<Im2colGemm> mode{Im2colGemm::Auto};
  return mode;
}
}  // namespace

void set_im2col_gemm(Im2colGemm mode) { im2col_gemm_mode().store(mode); }
Im2colGemm im2col_gemm() { return im2col_gemm_mode().load(); }

// The panel and dot-product kernels were written when OpenBLAS ran AVX2 kernels on this project's
// machines (OPENBLAS_CORETYPE=Haswell): against those they won on every im2col shape. Where OpenBLAS
// runs AVX-512 kernels, its cache blocking wins once the weight is larger than about 128 KiB (the
// panel kernel reads a 14-row panel and the columns' full depth from L2 for each block of 16-32
// columns; sgemm blocks the depth) and once the weight gradient's product reaches ~16M
// multiply-adds; below that the project's kernels still win (ResNet-20's layers). Measured with
// bench_conv on the Intel Xeon VM (OpenBLAS 0.3.21 SkylakeX kernels), 2026-12-03, medians of 4
// alternating runs, GFLOP/s, own kernel -> sgemm, 1 thread / 2 threads:
//   forward        r50 1x1 1024->256c 14x14  93 -> 108 / 121 -> 152   (weight 262144 floats)
//                  r50 1x1 512->2048c 7x7    97 -> 111 / 115 -> 188
//                  r50 3x3 256c 14x14 (im2col forced) 78 -> 115 / 140 -> 186
//                  r50 3x3 512c 7x7 (im2col forced)   59 -> 110 / 97 -> 159
//                  r50 1x1 64->256c 56x56    112 -> 95 / 142 -> 150    (16384 floats: panels)
//                  r20 3x3 16c 28x28 (im2col forced)  60 -> 54 / 108 -> 84  (2304)
//                  r20 3x3 32c 14x14 (im2col forced)  55 -> 55 / 110 -> 90  (9216)
//   input grad.    r50 1x1 512->2048c 7x7    74 -> 102 / 106 -> 157
//                  r50 3x3 512c 7x7 (im2col forced)   60 -> 105 / 117 -> 175
//   weight grad.   r50 1x1 512->2048c 7x7    70 -> 138 / 217 -> 241   (77M multiply-adds)
//                  r50 1x1 64->256c 56x56    76 -> 103 / 137 -> 158   (51M)
//                  r18 7x7 s2 stem           36 -> 70 / 86 -> 110     (118M)
//                  r50 3x3 256c 14x14 (im2col forced)  83 -> 114 / 171 -> 236
//                  r20 3x3 32c 14x14 (im2col forced)   59 -> 49 / 120 -> 117 (under 16M)
// With AVX2 kernels (the AMD EPYC VM) every shape keeps the project's kernels, as measured there.
constexpr int64_t kBlasMinWeightFloats = int64_t{1} << 15;
constexpr int64_t kBlasMinWeightGradientMacs = int64_t{1} << 24;

namespace {
// Images per im2col GEMM (the geometry's choice, within the batch).
int64_t images_per_gemm_of(const Conv2dGeometry& g) { return std::clamp<int64_t>(g.images_per_gemm, 1, g.N); }
// The weight (or a group's) is large enough that sgemm with AVX-512 kernels beats the panel kernel.
bool weight_large_for_blas(const Conv2dGeometry& g) { return g.K * g.group_col_rows() >= kBlasMinWeightFloats; }
}  // namespace

Im2colGemmPlan choose_im2col_gemms(const Conv2dGeometry& g, bool blas_avx512) {
  Im2colGemmPlan plan;
  const Im2colGemm mode = im2col_gemm();
  if (mode == Im2colGemm::Blas || g.groups != 1) return plan;
  const int64_t weight_gradient_macs = g.K * g.group_col_rows() * images_per_gemm_of(g) * g.output_pixels();
  const bool blas_wins_large = mode == Im2colGemm::Auto && blas_avx512;
  plan.weight_panels = panel_gemm_supported() && !(blas_wins_large && weight_large_for_blas(g));
  plan.weight_gradient_dot =
      dot_gemm_supported() && !(blas_wins_large && weight_gradient_macs >= kBlasMinWeightGradientMacs);
  return plan;
}

// The one place that decides between the direct kernels (direct_pays above), Winograd and im2col.
// Winograd F(4x4, 3x3) for the forward and the input gradient of every other 3x3, stride-1,
// dilation-1, ungrouped layer with at least 16 input
// and 16 output channels whose Winograd GEMMs do at most half the direct method's multiplies
// (8 * tiles <= N * OH * OW, tiles rounded up to the kernels' 16-lane width); for the weight
// gradient the same, from 16 channels each where its GEMMs run on the AVX-512 dot-product kernel
// (framework/dot_gemm.h) and from 32 with sgemm; im2col + sgemm for everything else. The weight
// gradient with the dot-product kernel (bench_conv, 2 threads, Zen 5 VM, 2026-12-02, medians of 3,
// GFLOP/s of the direct method's FLOPs, im2col -> Winograd F(4x4)): r20 16c 28x28 87 -> 129,
// r20 32c 14x14 102 -> 188, r20 64c 7x7 124 -> 278, r50 64c 56x56 139 -> 395, r50 128c 28x28
// 148 -> 499, r50 256c 14x14 162 -> 381, r50 512c 7x7 163 -> 158.
// Measured with bench_conv (2 threads, busy machine, process CPU time, 2026-11-30; GFLOP/s of the
// direct method's FLOPs, im2col -> Winograd F(4x4); sgemm peak about 86):
//                          forward        input gradient  weight gradient
//   r20 stem 1->16c 28x28  16 -> 9        14 -> 6         12 -> 5     (C = 1: transforms dominate)
//   r20 16c 28x28          44 -> 64       38 -> 51        42 -> 35    (dw: im2col)
//   r20 32c 14x14          45 -> 63       51 -> 64        51 -> 52
//   r20 64c 7x7            47 -> 100      49 -> 93        60 -> 85
//   r50 64c 56x56          49 -> 144      57 -> 121       53 -> 113
//   r50 128c 28x28         56 -> 167      57 -> 168       64 -> 176
//   r50 256c 14x14         64 -> 150      59 -> 131       73 -> 147
//   r50 512c 7x7           63 -> 91       59 -> 79        83 -> 111
// F(2x2, 3x3) was slower than F(4x4) on every ResNet-50 shape once the filter transform was
// vectorized (e.g. 512c 7x7 forward 90 against 91, 256c 14x14 109 against 133), so it runs only
// where F(4x4) does not (below); its error is ~8x smaller (see tests/test_conv2d_winograd.cpp).
// The multiply-count condition keeps batch-1 inference on 7x7 layers (4 tiles padded to 16 lanes:
// 36 * 16 products per filter against 9 * 49) on im2col; it follows from the counts, not timed.
// With filters transformed once and kept (filters_kept: a frozen inference layer), such a layer
// runs F(2x2, 3x3) instead when that does at most 0.6 of the direct multiplies (16 tiles of 2x2 on
// a 7x7 image: 16 * 16 products against 9 * 49). Measured on ResNet-18's 512c 7x7 layer at batch 1
// (quiet machine, 2026-12-01, ms per call, kept filters): 2 threads F(2x2) 1.30 against im2col
// 3.05; 1 thread 3.56 against 3.46. Transforming the filters on every call instead (16.8 MB of
// them) took 4.4 and 8.0 ms, hence only with kept filters.
// Where OpenBLAS runs AVX-512 kernels, im2col's GEMMs run on sgemm for large layers
// (choose_im2col_gemms) and beat F(4x4) with transformed filters on few tiles: ResNet-18/50's 512c
// 7x7 layers at batch 8 (32 tiles; 37.7 MB of transformed filters per call against 9.4 MB of
// weights), bench_conv, Intel Xeon VM, SkylakeX kernels, 2026-12-03, medians of 3, GFLOP/s,
// Winograd -> im2col, 1 thread / 2 threads: forward 71 -> 118 / 151 -> 185, input gradient 41 ->
// 110 / 78 -> 195, weight gradient 93 -> 120 / 164 -> 247. At 128 tiles (256c 14x14) Winograd still
// wins (forward 177-193 against im2col's 115 on one thread), so F(4x4) needs 64 tiles there, on
// layers whose im2col GEMMs run on sgemm (smaller ones run the panel kernel: no change). Not with
// kept filters (inference: they stay in the caches between calls).
// The same holds where this build's own AVX-512 kernels run im2col's GEMMs (the AMD EPYC VM, whose
// OpenBLAS runs AVX2 kernels): ResNet-50's 3x3 512c 7x7 layer at batch 8, bench_conv, 2026-12-05,
// two runs each, GFLOP/s, Winograd F(4x4) -> im2col, 1 thread: forward 85 / 81 -> 118 / 104, input
// gradient 76 / 77 -> 115 / 107, weight gradient 87 / 80 -> 99 / 101; 2 threads, where the forward
// and input gradient take equal shares of images per thread (data_chunk_images) and the weight
// gradient multiplies the whole batch in one GEMM (weight_chunk_images): 156 / 161 -> 240 / 232,
// 151 / 154 -> 216 / 197, 191 / 163 -> 191 / 194.
// Those layers run F(2x2, 3x3) instead where it does at most 0.6 of the direct multiplies and has
// at least 128 tiles (7x7 images from batch 8 on) to spread its filter transform over (16/36 of
// F(4x4)'s transformed filters, 16.8 MB for 512 channels, written straight into the GEMM panels).
// ResNet-50's 512c 7x7 layer at batch 8, bench_conv on the Zen 5 VM, 2026-12-06, medians of 5-7
// interleaved repetitions, GFLOP/s, im2col -> F(2x2), 1 thread / 2 threads:
//   own kernels (OpenBLAS pinned to Haswell): forward 162 -> 211 / 282 -> 378, input gradient
//     149 -> 198 / 279 -> 342, weight gradient 155 -> 199 / 249 -> 289
//   OpenBLAS's SkylakeX kernels: forward 188 -> 199 / 314 -> 381, input gradient 187 -> 200 /
//     340 -> 341, weight gradient 195 -> 199 / 381 -> 291
// hence the weight gradient stays on im2col where OpenBLAS runs AVX-512 (its sgemm over the whole
// batch scales to 2 threads better than F(2x2)'s 16 transform points). GoogLeNet's 7x7 layers at
// batch 8 (128 tiles; 160 -> 320, 192 -> 384 channels) ran F(2x2) 1.1-1.8x faster forward and
// backward, except the weight gradient on SkylakeX kernels at 2 threads (0.97-1.08). With fewer
// tiles the per-call filter transform costs more than it saves: the 512c 7x7 layer at batch 4 (64
// tiles), 1 thread, SkylakeX kernels, ms, im2col -> F(2x2): forward 6.2 -> 7.3, input gradient
// 6.0 -> 8.0 (at batch 1: 1.9 -> 4.8). (Timed per call with a small driver over
// conv2d_forward / conv2d_backward and the winograd_conv2d_* functions, medians of 15 calls.)
constexpr int64_t kMinWinogradTilesWithAvx512Blas = 64;
constexpr int64_t kMinF2TilesWithoutKeptFilters = 128;

Im2colKernels im2col_kernels() {
  if (sgemm_runs_avx512()) return Im2colKernels::BlasAvx512;
  return panel_gemm_supported() ? Im2colKernels::OwnAvx512 : Im2colKernels::Plain;
}

Conv2dPlan choose_conv2d_algorithm(const Conv2dGeometry& g, bool filters_kept, bool f4_allowed,
                                   Im2colKernels kernels) {
  Conv2dPlan plan;
  const Conv2dAlgorithm mode = conv2d_algorithm();
  if (mode == Conv2dAlgorithm::Im2col) return plan;
  if (direct_conv2d_supported(g) &&
      (mode == Conv2dAlgorithm::Direct || (mode == Conv2dAlgorithm::Auto && direct_pays(g)))) {
    plan.direct_forward = plan.direct_weight = true;
    plan.direct_data = mode == Conv2dAlgorithm::Direct || g.C >= 4;  // else im2col (Winograd needs C >= 16)
    return plan;
  }
  if (mode == Conv2dAlgorithm::Direct || !winograd_supported(g)) return plan;
  // Products per (output channel, input channel): 9 per output pixel directly, (m + 2)^2 per tile of
  // m x m output pixels with F(m x m, 3 x 3), tiles rounded up to the kernels' 16 lanes.
  const auto winograd_products = [&](int m) { return (m + 2) * (m + 2) * ((winograd_tiles(g, m) + 15) / 16 * 16); };
  const int64_t direct_products = 9 * g.N * g.OH * g.OW;
  const bool im2col_on_fast_gemms = kernels != Im2colKernels::Plain && !filters_kept &&
                                    winograd_tiles(g, 4) < kMinWinogradTilesWithAvx512Blas && weight_large_for_blas(g);
  const bool f4_pays = f4_allowed && 2 * winograd_products(4) <= direct_products && !im2col_on_fast_gemms;
  const bool f2_saves = 5 * winograd_products(2) <= 3 * direct_products;  // at most 0.6
  // F(2x2) with kept filters (inference), or where im2col beat F(4x4) above if there are tiles enough.
  const bool f2_trains = f2_saves && im2col_on_fast_gemms && winograd_tiles(g, 2) >= kMinF2TilesWithoutKeptFilters;
  const bool f2_pays = (f2_saves && filters_kept) || f2_trains;
  const bool forced = mode == Conv2dAlgorithm::Winograd;
  plan.winograd_forward = forced || (g.C >= 16 && g.K >= 16 && (f4_pays || f2_pays));
  plan.winograd_data = forced || (g.C >= 16 && g.K >= 16 && (f4_pays || f2_trains));
  const int64_t weight_min_channels = dot_gemm_supported() ? 16 : 32;
  const bool f2_weight = f2_trains && kernels != Im2colKernels::BlasAvx512;
  plan.winograd_weight =
      forced || (g.C >= weight_min_channels && g.K >= weight_min_channels && (f4_pays || f2_weight));
  plan.tile = (forced || f4_pays) ? 4 : 2;
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Kernels. With a chunk of n images the GEMMs work on (rows, n*P) matrices whose column block b
// belongs to image b; activations are stored (n, rows, P), so the chunked paths scatter the GEMM
// result out (forward) or gather dy in (backward). With n = 1 both layouts coincide.

namespace {

// Below this many floats of copying, one thread beats waking the team (see im2col.cpp).
constexpr int64_t kMinParallelFloats = int64_t(1) << 19;

struct Plan {
  int64_t chunk;  // images per GEMM
  bool direct;    // pointwise with one image per GEMM: the image is its own col matrix
  float* col;     // (C*R*S, chunk*P) lowered images, reused for the col gradient
  float* staged;  // (K, chunk*P) GEMM output (forward) or gathered dy (backward); chunk > 1
  float* extra;   // `extra` floats more (a thread's partial weight gradient), or null
};

// Carves the calling thread's workspace.
Plan make_plan(const Conv2dGeometry& g, bool need_col, int64_t extra = 0) {
  Plan p;
  p.chunk = images_per_gemm_of(g);
  p.direct = g.is_pointwise() && p.chunk == 1;
  const int64_t cols = p.chunk * g.output_pixels();
  const int64_t col_floats = (need_col && !p.direct) ? round_up_to_line(g.col_rows() * cols) : 0;
  const int64_t staged_floats = p.chunk > 1 ? round_up_to_line(g.K * cols) : 0;
  float* base = thread_workspace().floats(col_floats + staged_floats + extra);
  p.col = col_floats ? base : nullptr;
  p.staged = staged_floats ? base + col_floats : nullptr;
  p.extra = extra ? base + col_floats + staged_floats : nullptr;
  return p;
}

int64_t chunk_count(const Conv2dGeometry& g, const Plan& plan) { return (g.N + plan.chunk - 1) / plan.chunk; }

// g with the chunks that whole-chunk-per-thread runs use: under parallel_data_chunks, equal chunks
// that divide among the threads (data_chunk_images; the weight gradient, on the team, takes
// weight_chunk_images).
Conv2dGeometry chunked_per_thread(const Conv2dGeometry& g) {
  Conv2dGeometry gc = g;
  if (g.parallel_data_chunks) gc.images_per_gemm = data_chunk_images(g);
  return gc;
}

// y (n, K, P) = staged (K, n*P) + b.
void scatter_output(float* y, const float* staged, const float* b, int64_t n, int64_t K, int64_t P) {
#pragma omp parallel for schedule(static) if (n * K * P >= kMinParallelFloats)
  for (int64_t t = 0; t < n * K; ++t) {
    const int64_t i = t / K, k = t % K;
    const float* src = staged + k * n * P + i * P;
    float* dst = y + (i * K + k) * P;
    const float bias = b ? b[k] : 0.0f;
    for (int64_t p = 0; p < P; ++p) dst[p] = src[p] + bias;
  }
}

// staged (K, n*P) = dy (n, K, P).
void gather_rows(float* staged, const float* dy, int64_t n, int64_t K, int64_t P) {
#pragma omp parallel for schedule(static) if (n * K * P >= kMinParallelFloats)
  for (int64_t t = 0; t < n * K; ++t) {
    const int64_t i = t / K, k = t % K;
    std::memcpy(staged + k * n * P + i * P, dy + (i * K + k) * P, static_cast<size_t>(P) * sizeof(float));
  }
}

// The im2col path's weight-times-activations GEMMs (the forward, W * col, and the input gradient,
// W^T * dy) on this project's AVX-512 panel kernel (framework/panel_gemm.h) where
// choose_im2col_gemms picked it (`gemms`): the weight, laid out as panels once per call, instead of
// sgemm, which packs it again for every chunk. `rows_of_w_transposed`: lay out W^T (C*R*S x K)
// instead of W (K x C*R*S). Returns null where sgemm is kept. The panels live in the calling thread's operand
// workspace (framework/workspace.h) until the next such call.
const float* weight_panels(const float* w, const Conv2dGeometry& g, const Im2colGemmPlan& gemms,
                           bool rows_of_w_transposed) {
  if (!gemms.weight_panels) return nullptr;
  const int64_t K = g.K, inner = g.group_col_rows();
  // W is K x inner, row-major; W^T is the same memory read with the strides swapped.
  const int64_t rows = rows_of_w_transposed ? inner : K, cols = rows_of_w_transposed ? K : inner;
  float* panels = thread_operand_workspace().floats(panel_floats(rows, cols));
  pack_panels_strided(panels, w, rows_of_w_transposed ? 1 : inner, rows_of_w_transposed ? inner : 1, rows, cols);
  return panels;
}

// C (M x N, ldc) = panels (M x K) * B (K x N, ldb) (+ bias): on the calling thread inside a
// parallel region (parallel images: each thread runs whole chunks), else over the team.
void panels_times(const float* panels, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N, float* C,
                  int64_t ldc, const float* bias) {
  if (omp_in_parallel()) {
    panel_gemm_serial(panels, M, K, B, ldb, N, C, ldc, bias);
  } else {
    panel_gemm(panels, M, K, B, ldb, N, C, ldc, bias);
  }
}

}  // namespace

namespace {

// Images [n0, n0 + chunk) of the forward (fewer in the last chunk), with the plan's buffers; with
// w_panels (weight_panels) the GEMM runs on the panel kernel.
void forward_chunk(float* y, const float* x, const float* w, const float* w_panels, const float* b,
                   const Conv2dGeometry& g, const Plan& plan, int64_t n0) {
  const int64_t P = g.output_pixels(), image = g.C * g.H * g.W, G = g.groups;
  const int64_t Kg = g.outputs_per_group(), inner = g.group_col_rows();
  const int64_t n = std::min(plan.chunk, g.N - n0), ld = n * P;
  const float* col = plan.col;
  if (plan.direct) {
    col = x + n0 * image;
  } else {
    im2col(plan.col, x + n0 * image, n, g);
  }
  float* out = plan.staged ? plan.staged : y + n0 * g.K * P;
  if (w_panels) {
    // The bias rides on the GEMM unless scatter_output adds it.
    panels_times(w_panels, g.K, inner, col, ld, ld, out, ld, plan.staged ? nullptr : b);
    if (plan.staged) scatter_output(y + n0 * g.K * P, plan.staged, b, n, g.K, P);
    return;
  }
  // Unchunked: start from the bias and let the GEMM add onto it (beta = 1), saving a pass.
  float beta = 0.0f;
  if (!plan.staged && b) {
    for (int64_t k = 0; k < g.K; ++k) std::fill(out + k * P, out + (k + 1) * P, b[k]);
    beta = 1.0f;
  }
  for (int64_t grp = 0; grp < G; ++grp)
    sgemm(false, false, Kg, ld, inner, 1.0f, w + grp * Kg * inner, inner, col + grp * inner * ld, ld, beta,
          out + grp * Kg * ld, ld);
  if (plan.staged) scatter_output(y + n0 * g.K * P, plan.staged, b, n, g.K, P);
}

}  // namespace

namespace {
// The stems read x in place (layers/conv2d_rows.h) instead of lowering it, unless a test or
// benchmark forces an algorithm or a GEMM engine (then they run what was asked for).
bool rows_in_place(const Conv2dGeometry& g) {
  return g.groups == 1 && conv2d_algorithm() == Conv2dAlgorithm::Auto && im2col_gemm() == Im2colGemm::Auto;
}
}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dGeometry& g) {
  if (const Conv2dPlan algo = choose_conv2d_algorithm(g); algo.direct_forward) {
    direct_conv2d_forward(y, x, w, b, g);
    return;
  } else if (algo.winograd_forward) {
    winograd_conv2d_forward(y, x, w, b, g, WinogradConfig{.m = algo.tile});
    return;
  }
  const float* w_panels =
      weight_panels(w, g, choose_im2col_gemms(g, sgemm_runs_avx512()), /*rows_of_w_transposed=*/false);
  if (w_panels && rows_in_place(g) && conv2d_panels_in_place(g)) {
    // The stems: the input multiplied in place, not lowered (layers/conv2d_panels.h); the same bits
    // as the lowered panel GEMM.
    conv2d_forward_panels(y, x, w_panels, b, g, PanelsLowering::InPlace);
    return;
  }
  if (g.parallel_images || g.parallel_data_chunks) {
    // Whole chunks per thread; sgemm inside a parallel region runs on the calling thread alone
    // (OpenBLAS's OpenMP build checks omp_in_parallel), and so do the nested loops of im2col and
    // scatter_output. Each image's output is computed exactly as in the serial loop below.
    const Conv2dGeometry gc = chunked_per_thread(g);
#pragma omp parallel
    {
      const Plan plan = make_plan(gc, true);  // this thread's workspace
      const int64_t chunks = chunk_count(gc, plan);
#pragma omp for schedule(static)
      for (int64_t c = 0; c < chunks; ++c) forward_chunk(y, x, w, w_panels, b, gc, plan, c * plan.chunk);
    }
    return;
  }
  const Plan plan = make_plan(g, true);
  for (int64_t n0 = 0; n0 < g.N; n0 += plan.chunk) forward_chunk(y, x, w, w_panels, b, g, plan, n0);
}

namespace {

// The shortest run of pixels (the weight gradient's inner dimension, chunk * P) for which the
// weight gradient runs on the dot-product kernel across the team rather than on sgemm: with shorter
// runs each output's closing reduction costs more than OpenBLAS's packing saves. bench_conv, 2
// threads, 2026-12-03, ms (sgemm -> dot_gemm_parallel): r50 1x1 64->256c 56x56 (3136 pixels per
// image) 7.0-7.2 -> 4.7-5.1, 1024->256c 14x14 (2 images, 392) 5.6-6.0 -> 4.1-4.2, 512->2048c 7x7
// (6 images, 294) 4.7-4.8 -> 5.6-6.0 (hence the limit: it stays on sgemm); ResNet's 7x7 stride-2
// stem 20.6-21.3 -> 16.9-18.0, a 3x3 stride-2 64->128c 56x56 layer 9.1-9.3 -> 6.8-6.9. Whole
// training steps, batch 8, 2 threads, alternating builds, img/s: ResNet-50 8.28 / 8.11 -> 8.78 /
// 8.75, AlexNet 38.6 / 36.2 -> 40.4 / 37.1, GoogLeNet 22.1 / 21.6 -> 22.8 / 21.7, ResNet-18 24.8 /
// 25.6 -> 25.4 / 25.2; 1 thread: ResNet-50 5.23 / 4.37 -> 5.84 / 5.92.
constexpr int64_t kDotWeightMinPixels = 384;

// Images [n0, n0 + chunk) of the backward; dx or dw may be null. The chunk's weight gradient is
// added into dw (dw_beta = 1) or written over it (dw_beta = 0); its input gradient is added into
// the chunk's images of dx, or written over them when write_dx (those images are zeroed right
// before col2im adds into them, while they are about to be in cache anyway).
void backward_chunk(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* wt_panels,
                    const Conv2dGeometry& g, const Plan& plan, bool dw_dot, int64_t n0, float dw_beta,
                    bool write_dx) {
  const int64_t P = g.output_pixels(), image = g.C * g.H * g.W, G = g.groups;
  const int64_t Kg = g.outputs_per_group(), Cg = g.channels_per_group(), inner = g.group_col_rows();
  const int64_t n = std::min(plan.chunk, g.N - n0), ld = n * P;
  const float* dyc = dy + n0 * g.K * P;
  if (plan.staged) {
    gather_rows(plan.staged, dyc, n, g.K, P);
    dyc = plan.staged;
  }
  if (dw) {
    // dw_g (Kg, inner) += dy_g (Kg, n*P) * col_g^T (n*P, inner)
    const float* col = plan.col;
    if (plan.direct) {
      col = x + n0 * image;
    } else {
      im2col(plan.col, x + n0 * image, n, g);
    }
    // dw_dot (choose_im2col_gemms): dy and col both run along the chunk's pixels, the dot-product
    // kernel's layout.
    if (dw_dot && omp_in_parallel() && ld < kDotWeightMinPixels) {
      // A thread's own short chunk (parallel images): its rows stay in cache untiled.
      dot_gemm(dyc, ld, col, ld, g.K, inner, ld, dw, inner, /*accumulate=*/dw_beta != 0.0f);
    } else if (dw_dot && (omp_in_parallel() || ld >= kDotWeightMinPixels || omp_get_max_threads() == 1)) {
      // Tiled so that a tile's rows of col stay in L2 (the same bits as dot_gemm): over the team; on
      // a thread's own long chunk inside the parallel region (ResNet-18's 3x3/2 64->128c layer, 784
      // pixels, batch 8, 2 threads: 5.4 -> 4.0 ms against untiled); or on the only thread, where
      // ResNet-20's 32->64c stride-2 layers, 294 pixels per chunk, went to sgemm before (3% of the
      // step with OpenBLAS's SSE3 kernels).
      dot_gemm_parallel(dyc, ld, col, ld, g.K, inner, ld, dw, inner, /*accumulate=*/dw_beta != 0.0f);
    } else {
      for (int64_t grp = 0; grp < G; ++grp)
        sgemm(false, true, Kg, inner, ld, 1.0f, dyc + grp * Kg * ld, ld, col + grp * inner * ld, ld, dw_beta,
              dw + grp * Kg * inner, inner);
    }
  }
  if (dx) {
    if (plan.direct && wt_panels && write_dx) {
      panels_times(wt_panels, g.C, g.K, dyc, P, P, dx + n0 * image, P, nullptr);
    } else if (plan.direct) {
      // dx_g (Cg, P) += w_g^T (Cg, Kg) * dy_g (Kg, P): the 1x1 col gradient is the image gradient.
      for (int64_t grp = 0; grp < G; ++grp)
        sgemm(true, false, Cg, P, Kg, 1.0f, w + grp * Kg * Cg, Cg, dyc + grp * Kg * P, P, write_dx ? 0.0f : 1.0f,
              dx + n0 * image + grp * Cg * P, P);
    } else {
      // dcol_g (inner, n*P) = w_g^T * dy_g, into the col buffer (free again once dw is done),
      // then folded back onto the images.
      if (wt_panels) {
        panels_times(wt_panels, inner, g.K, dyc, ld, ld, plan.col, ld, nullptr);
      } else {
        for (int64_t grp = 0; grp < G; ++grp)
          sgemm(true, false, inner, ld, Kg, 1.0f, w + grp * Kg * inner, inner, dyc + grp * Kg * ld, ld, 0.0f,
                plan.col + grp * inner * ld, ld);
      }
      if (write_dx) std::fill(dx + n0 * image, dx + (n0 + n) * image, 0.0f);
      col2im(dx + n0 * image, plan.col, n, g);
    }
  }
}

// The parallel-images backward: each thread runs a contiguous block of chunks (static schedule)
// and sums its weight gradient into its own partial buffer; the partials are then added into dw
// in thread order. The sum's order depends on the thread count but not on timing, so results
// are deterministic for a given thread count. dx needs no reduction: chunks own their images.
void backward_parallel_images(float* dx, float* dw, const float* dy, const float* x, const float* w,
                              const float* wt_panels, const Conv2dGeometry& g, bool dw_dot, bool accumulate) {
  const int64_t wsize = g.K * g.group_col_rows();
  std::vector<float*> partials(static_cast<size_t>(omp_get_max_threads()), nullptr);
#pragma omp parallel
  {
    const Plan plan = make_plan(g, true, dw ? round_up_to_line(wsize) : 0);
    if (dw) {
      std::fill(plan.extra, plan.extra + wsize, 0.0f);
      partials[static_cast<size_t>(omp_get_thread_num())] = plan.extra;
    }
    const int64_t chunks = chunk_count(g, plan);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c)
      backward_chunk(dx, plan.extra, dy, x, w, wt_panels, g, plan, dw_dot, c * plan.chunk, 1.0f, !accumulate);
    if (dw) {
      // dw = (dw +) the partials in thread order, each thread summing a slice of the weight (after
      // the loop's barrier): the same order of additions for every element, whoever sums it.
      const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t lo = wsize * t / threads, hi = wsize * (t + 1) / threads;
      bool first = !accumulate;
      for (const float* part : partials) {
        if (!part) continue;
        if (first) {
          std::copy(part + lo, part + hi, dw + lo);
        } else {
          for (int64_t i = lo; i < hi; ++i) dw[i] += part[i];
        }
        first = false;
      }
    }
  }
}

}  // namespace

void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                     const Conv2dGeometry& g, bool accumulate) {
  const int64_t P = g.output_pixels();
  if (db) {
    // Each channel's sum runs over images then pixels in a fixed order, in double.
#pragma omp parallel for schedule(static) if (g.N * g.K * P >= kMinParallelFloats)
    for (int64_t k = 0; k < g.K; ++k) {
      double s = 0.0;
      for (int64_t i = 0; i < g.N; ++i) {
        const float* row = dy + (i * g.K + k) * P;
        for (int64_t p = 0; p < P; ++p) s += row[p];
      }
      db[k] = accumulate ? db[k] + static_cast<float>(s) : static_cast<float>(s);
    }
  }
  if (dx) {
    if (const Conv2dPlan algo = choose_conv2d_algorithm(g); algo.direct_data) {
      direct_conv2d_backward_data(dx, dy, w, g, accumulate);
      dx = nullptr;
    } else if (algo.winograd_data) {
      winograd_conv2d_backward_data(dx, dy, w, g, WinogradConfig{.m = algo.tile}, accumulate);
      dx = nullptr;  // done; the im2col path below computes dw alone
    }
  }
  if (dw) {
    if (const Conv2dPlan algo = choose_conv2d_algorithm(g); algo.direct_weight) {
      direct_conv2d_backward_weight(dw, x, dy, g, accumulate);
      dw = nullptr;
    } else if (algo.winograd_weight) {
      winograd_conv2d_backward_weight(dw, x, dy, g, WinogradConfig{.m = algo.tile}, accumulate);
      dw = nullptr;
    } else if (rows_in_place(g) && conv2d_weight_grad_rows_pays(g)) {
      // The stems: x read in place, not lowered (layers/conv2d_rows.h).
      conv2d_backward_weight_rows(dw, x, dy, g, accumulate);
      dw = nullptr;
    }
  }
  if (!dx && !dw) return;
  const Im2colGemmPlan gemms = choose_im2col_gemms(g, sgemm_runs_avx512());
  const float* wt_panels = dx ? weight_panels(w, g, gemms, /*rows_of_w_transposed=*/true) : nullptr;
  const bool dw_dot = gemms.weight_gradient_dot;
  if (g.parallel_images) {
    backward_parallel_images(dx, dw, dy, x, w, wt_panels, g, dw_dot, accumulate);
    return;
  }
  if (dx) {
    // The input gradient: on whole chunks per thread under parallel_data_chunks (chunks own their
    // images: no reduction), else chunk after chunk, each GEMM on the team (with the `if` false the
    // region is inactive: the calling thread runs every chunk, and the parallel loops inside it
    // use the team).
    const Conv2dGeometry gc = chunked_per_thread(g);
#pragma omp parallel if (g.parallel_data_chunks)
    {
      const Plan plan = make_plan(gc, true);
      const int64_t chunks = chunk_count(gc, plan);
#pragma omp for schedule(static)
      for (int64_t c = 0; c < chunks; ++c)
        backward_chunk(dx, nullptr, dy, x, w, wt_panels, gc, plan, dw_dot, c * plan.chunk, 1.0f, !accumulate);
    }
  }
  if (!dw) return;
  // The weight gradient on the team, in chunks of weight_chunk_images (one GEMM with long rows
  // rather than several narrow ones), the same whether or not the input gradient was wanted. Chunks
  // run in order and each adds into dw with beta = 1 (the first writes it when not accumulating): a
  // fixed summation order over images.
  Conv2dGeometry gc = g;
  gc.images_per_gemm = weight_chunk_images(g);
  const Plan plan = make_plan(gc, true);
  for (int64_t n0 = 0; n0 < g.N; n0 += plan.chunk)
    backward_chunk(nullptr, dw, dy, x, w, nullptr, gc, plan, dw_dot, n0, n0 == 0 && !accumulate ? 0.0f : 1.0f,
                   !accumulate);
}

// ---------------------------------------------------------------------------------------------
// Autograd.

namespace {

struct Conv2dBackward : Node {
  Conv2dGeometry g;
  Tensor x;  // (N, C, H, W), saved when the weight needs a gradient
  Tensor w;  // (K, C/groups, R, S), saved when the input needs a gradient
  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const bool want_x = needs_input_grad(0);
    const bool want_w = needs_input_grad(1);
    const bool want_b = needs_input_grad(2);
    // Written, not accumulated: no zeroing pass over fresh buffers.
    Tensor gx = want_x ? Tensor::empty(g.input_shape()) : Tensor();
    Tensor gw = want_w ? Tensor::empty(g.weight_shape()) : Tensor();
    Tensor gb = want_b ? Tensor::empty({g.K}) : Tensor();
    conv2d_backward(want_x ? gx.data() : nullptr, want_w ? gw.data() : nullptr, want_b ? gb.data() : nullptr,
                    grad_output.data(), want_w ? x.data() : nullptr, want_x ? w.data() : nullptr, g,
                    /*accumulate=*/false);
    return {gx, gw, gb};
  }
  void release() override { x = w = Tensor(); }
  std::string name() const override { return "Conv2dBackward"; }
};

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opts) {
  INQ_CHECK(x.defined() && weight.defined(), "Given conv2d with an undefined {}, expected defined tensors",
            x.defined() ? "weight" : "input");
  const auto shapes = [&] {
    return fmt::format("input of shape {}, weight of shape {} and bias of shape {}", shape_str(x.shape()),
                       shape_str(weight.shape()), bias.defined() ? shape_str(bias.shape()) : "(none)");
  };
  const Conv2dGeometry g =
      Conv2dGeometry::make(x.shape(), weight.shape(), opts.stride, opts.padding, opts.dilation, opts.groups);
  INQ_CHECK(!bias.defined() || bias.shape() == Shape{g.K},
            "Given {}, expected a bias of shape [{}] (one per output channel)", shapes(), g.K);
  if (opts.in_channels > 0) {
    INQ_CHECK(
        opts.in_channels == g.C && opts.out_channels == g.K && opts.kernel_size == Size2(g.R, g.S) &&
            opts.bias == bias.defined(),
        "Given {}, expected tensors matching the layer's options (in_channels {}, out_channels {}, kernel "
        "{}x{}, bias {})",
        shapes(), opts.in_channels, opts.out_channels, opts.kernel_size.h, opts.kernel_size.w, opts.bias);
  }

  Tensor y = Tensor::empty(g.output_shape());
  conv2d_forward(y.data(), x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, g);
  if (needs_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<Conv2dBackward>();
    node->g = g;
    if (weight.requires_grad()) node->x = x.detach();
    if (x.requires_grad()) node->w = weight.detach();
    record(y, node, {&x, &weight, bias.defined() ? &bias : nullptr});
  }
  return y;
}

// ---------------------------------------------------------------------------------------------
// Layer.

Conv2d::Conv2d(const Conv2dOptions& options) : options_(options) {
  check_conv2d_options(options_);
  weight = register_parameter("weight",
                              Tensor::empty({options_.out_channels, options_.in_channels / options_.groups,
                                             options_.kernel_size.h, options_.kernel_size.w}),
                              ParamRole::Weight);
  if (options_.bias)
    bias = register_parameter("bias", Tensor::empty({options_.out_channels}), ParamRole::Bias);
  reset_parameters();
}

void Conv2d::replace_weight(std::shared_ptr<const Conv2dWeightKernel> kernel) {
  INQ_CHECK(kernel != nullptr, "Given Conv2d(in_channels={}, out_channels={}).replace_weight, expected a kernel",
            options_.in_channels, options_.out_channels);
  if (!kernel_) drop_parameter("weight");
  weight = Tensor();
  kernel_ = std::move(kernel);
}

void Conv2d::reset_parameters() {
  if (kernel_) return;  // no float weight to draw
  // PyTorch: kaiming_uniform_(a = sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); bias the same bound.
  kaiming_uniform_(weight, FanMode::FanIn, leaky_relu_gain(std::sqrt(5.0)));
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(compute_fans(weight.shape()).fan_in));
    uniform_(bias, -bound, bound);
  }
}

Tensor Conv2d::forward(const Tensor& input) {
  if (kernel_) return kernel_->forward(input, bias, options_);
  return conv2d(input, weight, bias, options_);
}

}  // namespace inq
