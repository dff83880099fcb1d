#pragma once
// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, where op(A) is M x K and
// op(B) is K x N. lda/ldb/ldc are row strides of A, B, C as stored. A thin wrapper over
// cblas_sgemm so call sites read like the math; sgemm_naive is the reference it is tested against.
#include <cstdint>

namespace inq {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// True when OpenBLAS runs AVX-512 kernels (its "SkylakeX", "Cooperlake" or "SapphireRapids" sets; on
// a processor Debian's 0.3.21 does not recognize, framework/threading.h's apply_runtime_policy picks
// SkylakeX). Then sgemm beats this project's panel and dot-product kernels on large GEMMs, where
// with AVX2 kernels it did not (layers/conv2d.cpp, choose_im2col_gemms). Read once per process.
bool sgemm_runs_avx512();
// The test behind it, on a kernel-set name as openblas_get_corename spells it (any case).
bool is_avx512_blas_core(const char* core);

// Triple loop in double precision; for tests only.
void sgemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace inq
