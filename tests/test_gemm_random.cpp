// sgemm wrapper against the naive reference; the random engine's determinism and state round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "framework/gemm.h"
#include "framework/error.h"
#include "framework/random.h"
#include "gradcheck.h"

using namespace inq;

TEST(Gemm, MatchesNaiveForAllTransposesAndBeta) {
  Generator gen(7);
  const int64_t M = 13, N = 17, K = 11;
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      Tensor A = test::random_tensor(ta ? Shape{K, M} : Shape{M, K}, gen);
      Tensor B = test::random_tensor(tb ? Shape{N, K} : Shape{K, N}, gen);
      Tensor C1 = test::random_tensor({M, N}, gen);
      Tensor C2 = C1.clone();
      sgemm(ta, tb, M, N, K, 0.5f, A.data(), ta ? M : K, B.data(), tb ? K : N, 2.0f, C1.data(), N);
      sgemm_naive(ta, tb, M, N, K, 0.5f, A.data(), ta ? M : K, B.data(), tb ? K : N, 2.0f, C2.data(), N);
      for (int64_t i = 0; i < M * N; ++i) EXPECT_NEAR(C1.data()[i], C2.data()[i], 1e-4) << ta << tb << i;
    }
  }
}

// One row or one column of output goes through sgemv (framework/gemm.cpp): every transpose, row
// strides wider than the matrices, and beta = 0 over a C full of NaN (must be overwritten).
TEST(Gemm, MatrixVectorShapesMatchNaiveWithStridesAndBeta) {
  Generator gen(11);
  const int64_t pad = 3;
  for (const auto& [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 37, 29}, {23, 1, 31}, {1, 1, 19}}) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        for (const float beta : {0.0f, 1.5f}) {
          const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
          Tensor A = test::random_tensor({ta ? K : M, lda}, gen);
          Tensor B = test::random_tensor({tb ? N : K, ldb}, gen);
          Tensor C1 = test::random_tensor({M, ldc}, gen);
          if (beta == 0.0f) C1.fill_(std::nanf(""));
          Tensor C2 = test::random_tensor({M, ldc}, gen);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) C2.data()[i * ldc + j] = beta == 0.0f ? 0.0f : C1.data()[i * ldc + j];
          sgemm(ta, tb, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, beta, C1.data(), ldc);
          sgemm_naive(ta, tb, M, N, K, 0.75f, A.data(), lda, B.data(), ldb, beta, C2.data(), ldc);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j)
              EXPECT_NEAR(C1.data()[i * ldc + j], C2.data()[i * ldc + j], 1e-4)
                  << "M=" << M << " N=" << N << " ta=" << ta << " tb=" << tb << " beta=" << beta << " at " << i
                  << "," << j;
        }
      }
    }
  }
}

TEST(Random, SequenceIsFixedBySeedAndStateRoundTrips) {
  Generator a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  // mt19937_64's 10000th output for the default seed is fixed by the C++ standard.
  Generator c(5489);
  for (int i = 0; i < 9999; ++i) c.next_u64();
  EXPECT_EQ(c.next_u64(), 9981545732273789042ull);
  a.normal();  // leaves a spare normal in the state
  Generator d(0);
  d.set_state(a.state());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.normal(), d.normal());
  EXPECT_THROW(d.set_state("garbage"), Error);
}

TEST(Random, DistributionsHaveTheRightMoments) {
  Generator g(1);
  double s = 0, s2 = 0, u = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    double x = g.normal(1.0, 2.0);
    s += x;
    s2 += x * x;
    u += g.uniform();
  }
  EXPECT_NEAR(s / n, 1.0, 0.02);
  EXPECT_NEAR(std::sqrt(s2 / n - (s / n) * (s / n)), 2.0, 0.02);
  EXPECT_NEAR(u / n, 0.5, 0.005);
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < 30000; ++i) ++counts[g.uniform_int(3)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);
}
