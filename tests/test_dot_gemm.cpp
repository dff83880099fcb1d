// framework/dot_gemm.h against its naive twin (double sums) on odd shapes: rows and columns not a
// multiple of the kernel's 4 x 4 block (every edge block shape), K not a multiple of 16 (masked
// tail), K = 1 and 0, padded strides, written and accumulated; nothing outside the M x N block of C
// is touched; the same call gives the same bits twice; the team version (dot_gemm_parallel) gives
// the same bits as one call.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "framework/dot_gemm.h"
#include "framework/error.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "tensor_testing.h"

namespace inq {
namespace {

using test::random_values;

struct Shape3 {
  int64_t M, N, K;
};

TEST(DotGemm, MatchesNaiveOnOddShapesWithStrides) {
  if (!dot_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  Generator gen(43);
  const std::vector<Shape3> shapes = {{1, 1, 1},    {4, 4, 16},   {16, 16, 128}, {5, 7, 17},   {3, 2, 15},
                                      {64, 32, 128}, {13, 9, 33}, {2, 6, 0},     {6, 3, 1},    {8, 5, 250},
                                      {7, 4, 48},   {4, 11, 31},  {1, 17, 64},   {33, 1, 200}};
  for (const Shape3& s : shapes) {
    for (bool accumulate : {false, true}) {
      const int64_t lda = s.K + 3, ldb = s.K + 5, ldc = s.N + 2;
      const std::vector<float> A = random_values(s.M * lda, gen), B = random_values(s.N * ldb, gen);
      const std::vector<float> start = random_values(s.M * ldc, gen);
      std::vector<float> want = start, scale(start.size(), 0.0f);
      dot_gemm_reference(A.data(), lda, B.data(), ldb, s.M, s.N, s.K, want.data(), ldc, accumulate);
      // |A| |B|^T (+ |C| when accumulating): the error bound's scale, entry by entry.
      std::vector<float> absA(A.size()), absB(B.size());
      for (size_t i = 0; i < A.size(); ++i) absA[i] = std::fabs(A[i]);
      for (size_t i = 0; i < B.size(); ++i) absB[i] = std::fabs(B[i]);
      dot_gemm_reference(absA.data(), lda, absB.data(), ldb, s.M, s.N, s.K, scale.data(), ldc, false);

      std::vector<float> C = start;
      dot_gemm(A.data(), lda, B.data(), ldb, s.M, s.N, s.K, C.data(), ldc, accumulate);
      for (int64_t i = 0; i < s.M; ++i)
        for (int64_t j = 0; j < ldc; ++j) {
          const size_t at = static_cast<size_t>(i * ldc + j);
          if (j >= s.N) {
            ASSERT_EQ(C[at], start[at]) << "wrote past column " << s.N << " (M " << s.M << " K " << s.K << ")";
            continue;
          }
          // Float sums of K terms (16 running sums, then a tree) against double: K + 8 ulps of the
          // scale is generous and still fails any wrong or missing term.
          const double tol = 1e-6 + static_cast<double>(s.K + 8) * 6e-8 * (scale[at] + std::fabs(start[at]));
          ASSERT_NEAR(C[at], want[at], tol) << "M " << s.M << " N " << s.N << " K " << s.K << " at (" << i << ", "
                                            << j << ") accumulate " << accumulate;
        }
      std::vector<float> again = start;
      dot_gemm(A.data(), lda, B.data(), ldb, s.M, s.N, s.K, again.data(), ldc, accumulate);
      EXPECT_EQ(0, std::memcmp(again.data(), C.data(), C.size() * sizeof(float)));
    }
  }
}

// dot_gemm_parallel cuts C into tiles of whole blocks and shares them out: every output must have
// dot_gemm's bits, for 1, 2 and 3 threads, on shapes with several tiles both ways (K large enough
// that a tile holds fewer than 64 rows of B, and K long enough to be cut into slices), edge blocks
// inside and at the ends, accumulate on/off.
TEST(DotGemm, ParallelTilesGiveTheSameBitsForAnyThreadCount) {
  if (!dot_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  Generator gen(44);
  const int saved = get_num_threads();
  // K above 2048 runs in slices of 1024 (64 x 32 tiles): 2049 and 3077 end in a partial vector and
  // a short slice, 4096 in whole ones; K = 0 still writes C (zeros, or C unchanged).
  for (const Shape3& s : std::vector<Shape3>{{70, 67, 1000}, {130, 9, 300}, {5, 150, 5000}, {3, 2, 7},
                                             {67, 37, 2049}, {9, 70, 3077}, {64, 32, 4096}, {6, 5, 0}}) {
    for (bool accumulate : {false, true}) {
      const int64_t lda = s.K + 1, ldb = s.K + 3, ldc = s.N + 2;
      const std::vector<float> A = random_values(s.M * lda, gen), B = random_values(s.N * ldb, gen);
      const std::vector<float> start = random_values(s.M * ldc, gen);
      std::vector<float> want = start;
      dot_gemm(A.data(), lda, B.data(), ldb, s.M, s.N, s.K, want.data(), ldc, accumulate);
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<float> C = start;
        dot_gemm_parallel(A.data(), lda, B.data(), ldb, s.M, s.N, s.K, C.data(), ldc, accumulate);
        EXPECT_EQ(0, std::memcmp(want.data(), C.data(), C.size() * sizeof(float)))
            << "M " << s.M << " N " << s.N << " K " << s.K << " threads " << threads << " accumulate " << accumulate;
      }
    }
  }
  set_num_threads(saved);
}

TEST(DotGemm, RefusesStridesShorterThanRows) {
  if (!dot_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  std::vector<float> A(32), B(32), C(4);
  EXPECT_THROW(dot_gemm(A.data(), 7, B.data(), 8, 2, 2, 8, C.data(), 2, false), Error);
  EXPECT_THROW(dot_gemm(A.data(), 8, B.data(), 8, 2, 2, 8, C.data(), 1, false), Error);
  EXPECT_THROW(dot_gemm_parallel(A.data(), 8, B.data(), 7, 2, 2, 8, C.data(), 2, false), Error);
  EXPECT_THROW(dot_gemm_parallel(A.data(), 8, B.data(), 8, -1, 2, 8, C.data(), 2, false), Error);
}

}  // namespace
}  // namespace inq
