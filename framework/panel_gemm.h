#pragma once
// A GEMM for weights that do not change between calls, with this project's own AVX-512 kernel
// instead of OpenBLAS:
//   C (M x N, row stride ldc) = A (M x K) * B (K x N, row stride ldb)  (+ bias[i] on row i)
// A is stored beforehand as "panels" of kPanelRows rows, channel-major inside a panel:
//   Ap[p * K * kPanelRows + k * kPanelRows + r] = A[p * kPanelRows + r][k]   (rows past M are 0)
// and B is read in place (no packing). The kernel multiplies one panel into 16 or 32 columns at a
// time: per k one or two vector loads of B, kPanelRows broadcasts of the panel and 14 or 28 FMAs
// into accumulators that stay in registers; columns past a multiple of 16 go through masked loads
// and stores. Each output is one sum over k in order (then + bias), so results do not depend on
// the thread count.
// Why: at inference the weights are fixed, so they can be laid out once; sgemm packs A and B on
// every call, which at batch 1 (ResNet's 1x1 layers: N = 49..3136 pixels) costs as long as the
// multiply, and this machine's OpenBLAS runs AVX2 kernels (OPENBLAS_CORETYPE=Haswell), half the
// AVX-512 width the CPU has. Users: inference convolutions (layers/inference_prep.h, float weights
// laid out once; inq/packed_inference.h, panels decoded from b-bit codes per call) and Winograd's
// transform-point GEMMs (layers/conv2d_winograd.h: on kept filters, and in training on filters laid
// out as panels once per call).
#include <cstdint>
#include <functional>

namespace inq {

constexpr int64_t kPanelRows = 14;

inline int64_t panel_count(int64_t M) { return (M + kPanelRows - 1) / kPanelRows; }
// Floats of the panels of an M x K matrix.
inline int64_t panel_floats(int64_t M, int64_t K) { return panel_count(M) * kPanelRows * K; }

// True when this build has the AVX-512 kernel; without it panel_gemm throws (callers check first).
bool panel_gemm_supported();

// Lays A (M x K, row stride lda) out as panels (panel_floats(M, K) floats at Ap).
void pack_panels(float* Ap, const float* A, int64_t lda, int64_t M, int64_t K);
// The same for A[i][k] at A + i * row_stride + k * col_stride: with row_stride 1 and col_stride ld,
// the panels of the transpose of a row-major (K x M, row stride ld) matrix, without transposing it.
void pack_panels_strided(float* Ap, const float* A, int64_t row_stride, int64_t col_stride, int64_t M, int64_t K);

// C = A * B (+ bias) with A as panels, on the calling thread alone (for callers that already split
// work between threads, such as Winograd's per-transform-point GEMMs).
void panel_gemm_serial(const float* Ap, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N, float* C,
                       int64_t ldc, const float* bias);

// The same with row k of B at rows[k] + offset (columns contiguous from there) instead of at
// B + k * ldb: a convolution multiplies its padded input rows in place, the table naming the input
// row each (channel, kernel row, kernel column) reads (layers/conv2d_panels.cpp).
void panel_gemm_rows_serial(const float* Ap, int64_t M, int64_t K, const float* const* rows, int64_t offset,
                            int64_t N, float* C, int64_t ldc, const float* bias);

// The same over the team, with laid-out panels: work items are (block of columns, panel), the
// column blocks sized so that a block of B stays in a core's L2 while every panel passes over it.
void panel_gemm(const float* Ap, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N, float* C,
                int64_t ldc, const float* bias);
// With panels made on demand: `panel(p, scratch)` returns panel p's kPanelRows * K floats, written
// into `scratch` (kPanelRows * K floats, the calling thread's), for instance decoded from b-bit
// codes. Items as above: a panel is made once per block of columns it meets. The same bits as the
// laid-out form.
using PanelSource = std::function<const float*(int64_t p, float* scratch)>;
void panel_gemm(const PanelSource& panel, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N, float* C,
                int64_t ldc, const float* bias);

// The naive twin: A row-major (lda), every dot product in double, then + bias, rounded once.
void panel_gemm_reference(const float* A, int64_t lda, int64_t M, int64_t K, const float* B, int64_t ldb, int64_t N,
                          float* C, int64_t ldc, const float* bias);

}  // namespace inq
