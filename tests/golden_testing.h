#pragma once
// Helpers of the golden-trajectory tests (SGD and INQ): parameters from the scripts' values, the
// scenario's gradient and the comparison with the values the scripts in tests/golden/ computed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "framework/tensor.h"

namespace inq::test {

// A parameter (requires grad) holding the script's values.
inline Tensor param_from(const Shape& shape, const double* values) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(values[i]);
  Tensor t = Tensor::from_vector(shape, v);
  t.set_requires_grad(true);
  return t;
}

// g = 0.7 * (p - target) + 0.1 * (t + 1) * (-1)^i, computed in double from the current float values
// (as the scripts do) and stored as float.
inline void set_golden_grad(Tensor& p, const double* target, int t) {
  Tensor g = Tensor::empty(p.shape());
  for (int64_t i = 0; i < p.numel(); ++i)
    g.data()[i] =
        static_cast<float>(0.7 * (double(p.data()[i]) - target[i]) + 0.1 * (t + 1) * (i % 2 ? -1.0 : 1.0));
  p.set_grad(g);
}

inline void expect_near_all(const Tensor& t, const double* want, const std::string& what) {
  for (int64_t i = 0; i < t.numel(); ++i)
    EXPECT_NEAR(t.data()[i], want[i], 2e-6 * std::max(1.0, std::fabs(want[i]))) << what << " [" << i << "]";
}

}  // namespace inq::test
