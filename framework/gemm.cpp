#include "framework/gemm.h"

#include <cblas.h>
#include <strings.h>

#include <initializer_list>

#include "framework/threading.h"

namespace inq {

namespace {

blasint b(int64_t v) { return static_cast<blasint>(v); }

// y (len, stride incy) = beta * y first when beta is 0: OpenBLAS scales y by beta before adding,
// and 0 * garbage (NaN or Inf in a fresh buffer) would otherwise survive.
void clear_if_overwritten(float beta, float* y, int64_t len, int64_t incy) {
  if (beta != 0.0f) return;
  for (int64_t i = 0; i < len; ++i) y[i * incy] = 0.0f;
}

}  // namespace

bool is_avx512_blas_core(const char* core) {
  if (core == nullptr) return false;
  for (const char* name : {"SkylakeX", "Cooperlake", "SapphireRapids"})
    if (strcasecmp(core, name) == 0) return true;
  return false;
}

bool sgemm_runs_avx512() {
  static const bool avx512 = is_avx512_blas_core(blas_core());
  return avx512;
}

// A GEMM with one row or one column of output is a matrix-vector product. OpenBLAS 0.3.21's sgemm
// packs op(B) into panels whatever M is, so a batch-1 fully-connected layer (M = 1) copied its
// whole weight matrix every call (AlexNet's fc6: 151 MB) before reading it once more; sgemv
// streams the weights once, which is all a batch-1 layer can do.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (M == 1 && K > 0) {
    // C (1, N) = alpha * a (1, K) * op(B) + beta * C: y = op(B)^T a. Row k of A^T is A[k * lda].
    const int64_t inc_a = trans_a ? lda : 1;
    clear_if_overwritten(beta, C, N, 1);
    if (trans_b) {  // B stored (N, K): y = B a
      cblas_sgemv(CblasRowMajor, CblasNoTrans, b(N), b(K), alpha, B, b(ldb), A, b(inc_a), beta, C, 1);
    } else {  // B stored (K, N): y = B^T a
      cblas_sgemv(CblasRowMajor, CblasTrans, b(K), b(N), alpha, B, b(ldb), A, b(inc_a), beta, C, 1);
    }
    return;
  }
  if (N == 1 && K > 0) {
    // C (M, 1), stride ldc, = alpha * op(A) * b (K, 1) + beta * C. Row k of B is B[k * ldb].
    const int64_t inc_b = trans_b ? 1 : ldb;
    clear_if_overwritten(beta, C, M, ldc);
    if (trans_a) {  // A stored (K, M): y = A^T b
      cblas_sgemv(CblasRowMajor, CblasTrans, b(K), b(M), alpha, A, b(lda), B, b(inc_b), beta, C, b(ldc));
    } else {  // A stored (M, K)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, b(M), b(K), alpha, A, b(lda), B, b(inc_b), beta, C, b(ldc));
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, b(M), b(N),
              b(K), alpha, A, b(lda), B, b(ldb), beta, C, b(ldc));
}

void sgemm_naive(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += static_cast<double>(a) * b;
      }
      float& c = C[i * ldc + j];
      c = static_cast<float>(alpha * acc + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * c));
    }
  }
}

}  // namespace inq
