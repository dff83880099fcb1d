#pragma once
// Comparing tensors with expected values: within a tolerance (values worked by hand or computed by
// PyTorch) and bit for bit (determinism, frozen weights).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "framework/random.h"
#include "framework/tensor.h"

namespace inq::test {

inline void expect_near_all(const Tensor& t, const std::vector<float>& expected, float tol, const char* what) {
  ASSERT_EQ(t.numel(), static_cast<int64_t>(expected.size())) << what;
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(t.data()[i], expected[i], tol) << what << " at " << i;
}

// Same bits: tells -0.0 from 0.0 and compares NaNs by payload.
inline bool bit_equal(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

inline bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

// n values drawn uniformly from [-1, 1): operands for kernel-against-naive tests.
inline std::vector<float> random_values(int64_t n, Generator& gen) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = 2.0f * gen.uniform() - 1.0f;
  return v;
}

}  // namespace inq::test
