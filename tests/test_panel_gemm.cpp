// framework/panel_gemm.h against its naive twin (double sums) on odd shapes: rows not a multiple
// of the 14-row panel, columns not a multiple of 16 (masked tails), 1 column, K = 1, padded
// strides, with and without bias; the decoded-panel form (PanelSource) gives the same bits as laid-out
// panels; results do not depend on the thread count (1-3, several column blocks with a short last
// one, cut between threads by cost); a table of row starts reads B as the matrix it names;
// strided packing of a transpose gives the panels of its transposed copy.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "framework/panel_gemm.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "tensor_testing.h"

namespace inq {
namespace {

using test::random_values;

struct Shape3 {
  int64_t M, K, N;
};

TEST(PanelGemm, MatchesNaiveOnOddShapesWithStridesAndBias) {
  if (!panel_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  const int saved_threads = get_num_threads();
  Generator gen(41);
  const std::vector<Shape3> shapes = {{1, 1, 1},    {14, 3, 16},  {15, 7, 17},  {13, 64, 49}, {29, 33, 31},
                                      {28, 5, 32},  {64, 256, 3}, {3, 1000, 48}, {100, 17, 196},
                                      {43, 130, 785},
                                      // Several column blocks with a short last one, split between
                                      // threads by cost: 192 + 192 + 29 and 128 + 128 + 44 columns.
                                      {31, 600, 413}, {50, 1024, 300}};
  for (const Shape3& s : shapes) {
    for (bool with_bias : {false, true}) {
      const int64_t lda = s.K + 3, ldb = s.N + 5, ldc = s.N + 2;
      const std::vector<float> A = random_values(s.M * lda, gen), B = random_values(s.K * ldb, gen);
      const std::vector<float> bias = random_values(s.M, gen);
      const float* b = with_bias ? bias.data() : nullptr;
      std::vector<float> want(static_cast<size_t>(s.M * ldc), -7.0f), scale(want.size());
      panel_gemm_reference(A.data(), lda, s.M, s.K, B.data(), ldb, s.N, want.data(), ldc, b);
      // |A| |B| (+ |bias|): the error bound's scale, entry by entry.
      std::vector<float> absA(A.size()), absB(B.size()), absb(bias.size());
      for (size_t i = 0; i < A.size(); ++i) absA[i] = std::fabs(A[i]);
      for (size_t i = 0; i < B.size(); ++i) absB[i] = std::fabs(B[i]);
      for (size_t i = 0; i < bias.size(); ++i) absb[i] = std::fabs(bias[i]);
      panel_gemm_reference(absA.data(), lda, s.M, s.K, absB.data(), ldb, s.N, scale.data(), ldc,
                           with_bias ? absb.data() : nullptr);

      std::vector<float> panels(static_cast<size_t>(panel_floats(s.M, s.K)), std::nanf(""));
      pack_panels(panels.data(), A.data(), lda, s.M, s.K);
      std::vector<float> first;
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        // Columns past N and the padding of each row must stay untouched: start from a sentinel.
        std::vector<float> C(want.size(), -7.0f);
        panel_gemm(panels.data(), s.M, s.K, B.data(), ldb, s.N, C.data(), ldc, b);
        for (int64_t i = 0; i < s.M; ++i)
          for (int64_t j = 0; j < ldc; ++j) {
            const size_t at = static_cast<size_t>(i * ldc + j);
            if (j >= s.N) {
              ASSERT_EQ(C[at], -7.0f) << "wrote past column " << s.N << " (M " << s.M << " K " << s.K << ")";
              continue;
            }
            // float sums of K terms against double: K ulps of the scale is generous and still fails
            // any wrong term.
            const double tol = 1e-6 + static_cast<double>(s.K + 1) * 6e-8 * scale[at];
            ASSERT_NEAR(C[at], want[at], tol) << "M " << s.M << " K " << s.K << " N " << s.N << " at (" << i
                                              << ", " << j << ") bias " << with_bias;
          }
        if (first.empty()) {
          first = C;
        } else {
          EXPECT_EQ(0, std::memcmp(first.data(), C.data(), C.size() * sizeof(float)))
              << "depends on threads: M " << s.M << " K " << s.K << " N " << s.N;
        }
        // The serial form computes the same bits.
        std::vector<float> serial(want.size(), -7.0f);
        panel_gemm_serial(panels.data(), s.M, s.K, B.data(), ldb, s.N, serial.data(), ldc, b);
        EXPECT_EQ(0, std::memcmp(serial.data(), C.data(), C.size() * sizeof(float)));
        // And so do panels handed over one at a time in the caller's scratch (a decoded panel).
        std::vector<float> decoded(want.size(), -7.0f);
        panel_gemm(
            [&](int64_t p, float* scratch) {
              std::memcpy(scratch, panels.data() + p * s.K * kPanelRows, sizeof(float) * s.K * kPanelRows);
              return static_cast<const float*>(scratch);
            },
            s.M, s.K, B.data(), ldb, s.N, decoded.data(), ldc, b);
        EXPECT_EQ(0, std::memcmp(decoded.data(), C.data(), C.size() * sizeof(float)));
      }
    }
  }
  set_num_threads(saved_threads);
}

TEST(PanelGemm, RowTableGivesTheBitsOfTheMatrixItNames) {
  // panel_gemm_rows_serial reads row k of B at rows[k] + offset: rows out of order and shared, an
  // offset, and N with 2, 1 and masked column vectors; compared bit for bit with panel_gemm_serial
  // on the matrix the table names, and with the naive twin.
  if (!panel_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  Generator gen(47);
  const int64_t M = 17, K = 23, N = 53, offset = 5, width = N + offset + 4;
  const std::vector<float> A = random_values(M * K, gen), store = random_values(9 * width, gen);
  const std::vector<float> bias = random_values(M, gen);
  std::vector<const float*> rows(static_cast<size_t>(K));
  std::vector<float> B(static_cast<size_t>(K * N));
  for (int64_t k = 0; k < K; ++k) {
    rows[static_cast<size_t>(k)] = store.data() + (k * 4 % 9) * width;  // 9 stored rows, reused
    std::copy_n(rows[static_cast<size_t>(k)] + offset, N, B.begin() + k * N);
  }
  std::vector<float> panels(static_cast<size_t>(panel_floats(M, K)));
  pack_panels(panels.data(), A.data(), K, M, K);
  std::vector<float> want(static_cast<size_t>(M * N)), got(want.size(), -7.0f), naive(want.size());
  panel_gemm_serial(panels.data(), M, K, B.data(), N, N, want.data(), N, bias.data());
  panel_gemm_rows_serial(panels.data(), M, K, rows.data(), offset, N, got.data(), N, bias.data());
  EXPECT_EQ(0, std::memcmp(want.data(), got.data(), got.size() * sizeof(float)));
  panel_gemm_reference(A.data(), K, M, K, B.data(), N, N, naive.data(), N, bias.data());
  for (size_t i = 0; i < naive.size(); ++i) ASSERT_NEAR(got[i], naive[i], 1e-4) << i;
}

TEST(PanelGemm, EveryRowCountOfTheLastPanelMatchesNaiveAndLeavesRowsPastMAlone) {
  // The last panel runs a kernel for exactly its stored rows (1..14): every count, with the column
  // tails of 2, 1 and masked vectors, and C's rows past M (a sentinel) never written.
  if (!panel_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  Generator gen(45);
  const int64_t K = 9, N = 53, ld = N + 3;
  for (int64_t M = 1; M <= 2 * kPanelRows; ++M) {
    const std::vector<float> A = random_values(M * K, gen), B = random_values(K * ld, gen);
    const std::vector<float> bias = random_values(M, gen);
    std::vector<float> panels(static_cast<size_t>(panel_floats(M, K)));
    pack_panels(panels.data(), A.data(), K, M, K);
    const int64_t rows_out = M + 2;  // two sentinel rows below C
    std::vector<float> want(static_cast<size_t>(rows_out * ld), -7.0f), got(want.size(), -7.0f);
    panel_gemm_reference(A.data(), K, M, K, B.data(), ld, N, want.data(), ld, bias.data());
    panel_gemm_serial(panels.data(), M, K, B.data(), ld, N, got.data(), ld, bias.data());
    for (int64_t i = 0; i < rows_out; ++i)
      for (int64_t j = 0; j < ld; ++j) {
        const size_t at = static_cast<size_t>(i * ld + j);
        if (i >= M || j >= N) {
          ASSERT_EQ(got[at], -7.0f) << "wrote outside C: M " << M << " at (" << i << ", " << j << ")";
        } else {
          ASSERT_NEAR(got[at], want[at], 1e-5) << "M " << M << " at (" << i << ", " << j << ")";
        }
      }
  }
}

TEST(PanelGemm, StridedPackingOfATransposeEqualsPackingTheTransposedCopy) {
  // A (K x M row-major, row stride ld) read as A^T: the same panels as A^T copied out and packed.
  Generator gen(44);
  for (const auto& [M, K] : {std::pair<int64_t, int64_t>{1, 1}, {14, 3}, {15, 7}, {29, 33}, {3, 100}}) {
    const int64_t ld = M + 2;
    const std::vector<float> A = random_values(K * ld, gen);
    std::vector<float> at(static_cast<size_t>(M * K));
    for (int64_t k = 0; k < K; ++k)
      for (int64_t i = 0; i < M; ++i) at[static_cast<size_t>(i * K + k)] = A[static_cast<size_t>(k * ld + i)];
    std::vector<float> want(static_cast<size_t>(panel_floats(M, K)), std::nanf(""));
    std::vector<float> got(want.size(), std::nanf(""));
    pack_panels(want.data(), at.data(), K, M, K);
    pack_panels_strided(got.data(), A.data(), 1, ld, M, K);
    EXPECT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << "M " << M << " K " << K;
  }
}

TEST(PanelGemm, PanelsPadRowsPastMWithZeros) {
  const int64_t M = 3, K = 2;
  const std::vector<float> A = {1, 2, 3, 4, 5, 6};
  std::vector<float> panels(static_cast<size_t>(panel_floats(M, K)), std::nanf(""));
  pack_panels(panels.data(), A.data(), K, M, K);
  ASSERT_EQ(panels.size(), static_cast<size_t>(kPanelRows * K));
  // k-major inside the panel: column 0 of the rows, then column 1.
  EXPECT_EQ(panels[0], 1.0f);
  EXPECT_EQ(panels[1], 3.0f);
  EXPECT_EQ(panels[2], 5.0f);
  EXPECT_EQ(panels[kPanelRows + 0], 2.0f);
  EXPECT_EQ(panels[kPanelRows + 2], 6.0f);
  for (int64_t r = M; r < kPanelRows; ++r) {
    EXPECT_EQ(panels[r], 0.0f);
    EXPECT_EQ(panels[kPanelRows + r], 0.0f);
  }
}

}  // namespace
}  // namespace inq
