// The portable form of the packed kernels (inq/packed_matrix.cpp compiled without AVX-512, as on a
// machine without it; CMakeLists.txt builds this program with -mno-avx512f) against the naive twin,
// so the fallback stays tested on machines where the vector kernels run.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "inq/packed.h"
#include "inq/packed_matrix.h"

using namespace inq;

TEST(PackedMatrixPortable, MatchesTheNaiveTwinAtEveryBitWidth) {
  ASSERT_FALSE(packed_kernels_vectorized()) << "this program must be built without AVX-512";
  std::mt19937 rng(1);
  for (int bits = 2; bits <= 10; ++bits) {
    const int n1 = bits == 10 ? 110 : -1;  // at 10 bits 2^n2 is a float only for n1 >= 106
    const Codebook cb{.bits = bits, .n1 = n1, .n2 = n1 + 1 - (1 << (bits - 2))};
    const std::vector<float> levels = cb.levels();
    for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{3, 17}, {17, 100}, {6, 250}, {35, 7}}) {
      Tensor w = Tensor::empty({rows, cols});
      for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] = levels[rng() % levels.size()];
      const PackedMatrix m = PackedMatrix::from_packed("w", pack_tensor("w", w, cb), rows, cols);
      std::vector<float> decoded(static_cast<size_t>(rows * cols));
      m.decode_rows(0, rows, decoded.data(), cols);
      for (int64_t i = 0; i < rows * cols; ++i) ASSERT_EQ(decoded[i], w.data()[i]) << "bits " << bits;
      for (int64_t N : {1, 3, 9}) {
        std::vector<float> x(static_cast<size_t>(N * cols)), y(static_cast<size_t>(N * rows)), ref(y.size());
        for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
        m.matmul_transposed(x.data(), N, nullptr, y.data());
        packed_matmul_reference(m, x.data(), N, nullptr, ref.data());
        for (int64_t n = 0; n < N; ++n)
          for (int64_t r = 0; r < rows; ++r) {
            double scale = 0;  // the sum of |products|: the size of the rounding of the dot product
            for (int64_t c = 0; c < cols; ++c) scale += std::fabs(double(w.data()[r * cols + c]) * x[n * cols + c]);
            ASSERT_LE(std::fabs(double(y[n * rows + r]) - ref[n * rows + r]), 1e-5 * scale + 1e-30)
                << "bits " << bits << " N " << N << " row " << r;
          }
      }
    }
  }
}
