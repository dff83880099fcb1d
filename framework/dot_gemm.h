#pragma once
// A GEMM for two operands that both run along the inner dimension, with this project's own
// AVX-512 kernel instead of OpenBLAS:
//   C (M x N, row stride ldc) = A (M x K, row stride lda) * B^T     (B stored N x K, row stride ldb)
//   or C += that (accumulate)
// Every output is a dot product of a row of A with a row of B. The kernel computes a 4 x 4 block
// of them at a time: per 16 values of k, 4 vector loads of A, 4 of B and 16 FMAs into 16
// accumulators, each holding 16 partial sums (one per lane); at the end of the rows the 16
// accumulators are reduced across their lanes by one fixed tree of shuffles and adds. Blocks at
// the edges (M or N not a multiple of 4) reduce each accumulator on its own; K needs no padding
// (the last vector is a masked load). Each output's order of additions depends only on (M, N, K),
// never on threads.
// Why: Winograd's weight gradient is, per transform point, Mw (K x C) += E (K x T) * V^T with
// T = 128 tiles, K and C 16..64 channels, and E and V both stored with the tiles contiguous.
// OpenBLAS (AVX2 kernels on this machine, OPENBLAS_CORETYPE=Haswell) packs both operands on each of
// those thousands of small calls, which took as long as the multiplies. Users:
// layers/conv2d_winograd.cpp (the weight-gradient GEMMs), layers/conv2d.cpp (a thread's own chunk's
// weight gradient), layers/linear.cpp (the forward at batches of 2..16: the weight streamed once).
#include <cstdint>

namespace inq {

// True when this build has the AVX-512 kernel; without it dot_gemm throws (callers check first).
bool dot_gemm_supported();

// On the calling thread alone (callers split the work, for instance one transform point per item).
void dot_gemm(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K, float* C,
              int64_t ldc, bool accumulate);

// The same product on the OpenMP team, for operands larger than the caches: C is cut into tiles of
// whole 4 x 4 blocks, each as many rows of B as fit in 256 KiB (so a tile's B stays in L2 while
// every row of A streams past it) by up to 64 rows of A, and the tiles are shared out statically.
// Rows longer than 2048 values would leave 4 rows of B per tile; there a tile is 64 x 32 rows run
// in slices of 1024 values of k, each block's accumulators kept between slices (ResNet-50's 1x1
// 64->256c 56x56 weight gradient over a batch of 8, bench_conv, Zen 5 VM, 2026-12-06, GFLOP/s:
// 33 -> 75 at 1 thread, 216 -> 233 at 2). Called inside a parallel region, it runs every tile on the
// calling thread. Every output's bits are dot_gemm's, for any thread count.
void dot_gemm_parallel(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K,
                       float* C, int64_t ldc, bool accumulate);

// The naive twin: every dot product in double, rounded once (then added to C when accumulating).
void dot_gemm_reference(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M, int64_t N, int64_t K,
                        float* C, int64_t ldc, bool accumulate);

}  // namespace inq
