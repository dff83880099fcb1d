// BatchNorm's raw kernels (batch_norm2d_forward / batch_norm2d_backward) against a naive twin in
// double on odd shapes: planes of 1..37 values (not multiples of the kernels' 8 accumulator lanes,
// so every tail path runs), one or several images and channels, with and without the fused ReLU
// and the affine parameters, in training and evaluation mode. The same file is compiled a second
// time with layers/batchnorm.cpp built without AVX-512 (CMakeLists.txt, inq_portable_batchnorm_tests),
// so the scalar reductions are held to the same twin.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "layers/batchnorm.h"

using namespace inq;

namespace {

struct Case {
  int64_t N, C, plane;
  bool relu, affine, training;
};

struct NaiveResult {
  std::vector<double> y, dx, dw, db;
  std::vector<double> dw_scale, db_scale;  // the sums of |term|: the size of the reductions' rounding
};

// Textbook batch normalization in double: batch statistics (biased variance) in training, the
// running ones in evaluation; the gradient through the batch statistics in training.
NaiveResult naive_batch_norm(const Case& k, const std::vector<float>& x, const std::vector<float>& dy,
                             const std::vector<float>& w, const std::vector<float>& b,
                             const std::vector<float>& running_mean, const std::vector<float>& running_var,
                             double eps) {
  NaiveResult r;
  const size_t total = x.size();
  r.y.assign(total, 0.0);
  r.dx.assign(total, 0.0);
  r.dw.assign(static_cast<size_t>(k.C), 0.0);
  r.db.assign(static_cast<size_t>(k.C), 0.0);
  r.dw_scale.assign(static_cast<size_t>(k.C), 0.0);
  r.db_scale.assign(static_cast<size_t>(k.C), 0.0);
  const double m = static_cast<double>(k.N * k.plane);
  for (int64_t c = 0; c < k.C; ++c) {
    const auto at = [&](int64_t n, int64_t i) { return static_cast<size_t>((n * k.C + c) * k.plane + i); };
    double mean = running_mean[c], var = running_var[c];
    if (k.training) {
      mean = 0.0;
      for (int64_t n = 0; n < k.N; ++n)
        for (int64_t i = 0; i < k.plane; ++i) mean += x[at(n, i)];
      mean /= m;
      var = 0.0;
      for (int64_t n = 0; n < k.N; ++n)
        for (int64_t i = 0; i < k.plane; ++i) var += (x[at(n, i)] - mean) * (x[at(n, i)] - mean);
      var /= m;
    }
    const double invstd = 1.0 / std::sqrt(var + eps);
    const double scale = k.affine ? w[c] : 1.0, shift = k.affine ? b[c] : 0.0;
    // g: the gradient reaching the normalization (masked by the ReLU).
    std::vector<double> g(static_cast<size_t>(k.N * k.plane)), x_hat(g.size());
    double sum_g = 0.0, sum_g_xhat = 0.0;
    for (int64_t n = 0; n < k.N; ++n)
      for (int64_t i = 0; i < k.plane; ++i) {
        const size_t j = static_cast<size_t>(n * k.plane + i);
        x_hat[j] = (x[at(n, i)] - mean) * invstd;
        double y = x_hat[j] * scale + shift;
        if (k.relu) y = std::max(y, 0.0);
        r.y[at(n, i)] = y;
        g[j] = (!k.relu || y > 0.0) ? dy[at(n, i)] : 0.0;
        sum_g += g[j];
        sum_g_xhat += g[j] * x_hat[j];
        r.db_scale[c] += std::fabs(g[j]);
        r.dw_scale[c] += std::fabs(g[j] * x_hat[j]);
      }
    r.dw[c] = sum_g_xhat;
    r.db[c] = sum_g;
    for (int64_t n = 0; n < k.N; ++n)
      for (int64_t i = 0; i < k.plane; ++i) {
        const size_t j = static_cast<size_t>(n * k.plane + i);
        r.dx[at(n, i)] = k.training ? scale * invstd * (g[j] - sum_g / m - x_hat[j] * sum_g_xhat / m)
                                    : scale * invstd * g[j];
      }
  }
  return r;
}

// |got - want| <= tol * (1 + scale), scale = |want| unless given per element.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const char* what,
                  const Case& k, const std::vector<double>* scale = nullptr) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1.0 + (scale ? (*scale)[i] : std::fabs(want[i]))))
        << what << "[" << i << "], N " << k.N << " C " << k.C << " plane " << k.plane << " relu " << k.relu
        << " affine " << k.affine << " training " << k.training;
}

TEST(BatchNorm2dKernels, MatchTheNaiveTwinOnOddShapes) {
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> value(-2.0f, 3.0f), positive(0.5f, 2.0f);
  const double eps = 1e-5;
  int cases = 0;
  // N = 37: more images than the kernels' 16 parts of the batch, cut unevenly (2 or 3 images each).
  for (const int64_t N : {1, 3, 37})
    for (const int64_t C : {1, 5})
      for (const int64_t plane : {1, 2, 7, 8, 9, 17, 37})
        for (const bool relu : {false, true})
          for (const bool affine : {false, true})
            for (const bool training : {true, false}) {
              // Training on fewer than 7 values per channel is ill-conditioned (on 2 the exact input
              // gradient is 0 and the kernel's, computed from float x_hat, is rounding noise times
              // invstd), so those shapes run in evaluation mode only.
              if (training && N * plane < 7) continue;
              const Case k{N, C, plane, relu, affine, training};
              const size_t total = static_cast<size_t>(N * C * plane);
              std::vector<float> x(total), dy(total), w(static_cast<size_t>(C)), b(w.size());
              std::vector<float> running_mean(w.size()), running_var(w.size());
              // Channel means above the spread: the variance must not cancel.
              for (size_t i = 0; i < total; ++i)
                x[i] = value(gen) + 10.0f * static_cast<float>(static_cast<int64_t>(i) / plane % C + 1);
              for (auto& v : dy) v = value(gen);
              for (int64_t c = 0; c < C; ++c) {
                w[c] = positive(gen);
                b[c] = value(gen) * 0.5f;
                running_mean[c] = value(gen);
                running_var[c] = positive(gen);
              }
              const NaiveResult want = naive_batch_norm(k, x, dy, w, b, running_mean, running_var, eps);
              std::vector<float> y(total), mean(w.size()), invstd(w.size()), dx(total), dw(w.size()), db(w.size());
              std::vector<float> rm = running_mean, rv = running_var;
              batch_norm2d_forward(y.data(), mean.data(), invstd.data(), x.data(), affine ? w.data() : nullptr,
                                   affine ? b.data() : nullptr, rm.data(), rv.data(), N, C, plane, training, 0.1, eps,
                                   relu);
              batch_norm2d_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), relu ? y.data() : nullptr,
                                    affine ? w.data() : nullptr, mean.data(), invstd.data(), N, C, plane, training);
              expect_close(y, want.y, 1e-4, "y", k);
              expect_close(dx, want.dx, 1e-3, "dx", k);
              expect_close(dw, want.dw, 1e-5, "dw", k, &want.dw_scale);
              expect_close(db, want.db, 1e-5, "db", k, &want.db_scale);
              ++cases;
            }
  EXPECT_EQ(cases, 304);  // every shape ran
}

}  // namespace
