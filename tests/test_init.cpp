// Initializers: fans, gains, and the moments and bounds of every distribution.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "framework/error.h"
#include "framework/random.h"
#include "layers/init.h"

using namespace inq;

namespace {

struct Moments {
  double mean = 0, std = 0, min = 1e300, max = -1e300;
};

Moments moments(const Tensor& t) {
  Moments m;
  double s = 0, s2 = 0;
  for (float v : t.to_vector()) {
    s += v, s2 += double(v) * v;
    m.min = std::min(m.min, double(v)), m.max = std::max(m.max, double(v));
  }
  const double n = static_cast<double>(t.numel());
  m.mean = s / n;
  m.std = std::sqrt(std::max(0.0, s2 / n - m.mean * m.mean));
  return m;
}

}  // namespace

TEST(Init, FansAndGains) {
  EXPECT_EQ(compute_fans({64, 16, 3, 5}).fan_in, 16 * 15);
  EXPECT_EQ(compute_fans({64, 16, 3, 5}).fan_out, 64 * 15);
  EXPECT_EQ(compute_fans({10, 84}).fan_in, 84);
  EXPECT_EQ(compute_fans({10, 84}).fan_out, 10);
  EXPECT_THROW(compute_fans({10}), Error);
  EXPECT_DOUBLE_EQ(leaky_relu_gain(0.0), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(leaky_relu_gain(std::sqrt(5.0)), std::sqrt(1.0 / 3.0));
}

TEST(Init, KaimingNormalMoments) {
  seed_all(1);
  Tensor w = Tensor::empty({128, 64, 3, 3});  // 73728 samples: std of the std estimate ~0.3%
  kaiming_normal_(w);
  Moments m = moments(w);
  const double want = std::sqrt(2.0) / std::sqrt(64.0 * 9.0);
  EXPECT_NEAR(m.mean, 0.0, 0.02 * want);
  EXPECT_NEAR(m.std, want, 0.02 * want);
  kaiming_normal_(w, FanMode::FanOut, 1.0);
  m = moments(w);
  EXPECT_NEAR(m.std, 1.0 / std::sqrt(128.0 * 9.0), 0.02 / std::sqrt(128.0 * 9.0));
}

TEST(Init, KaimingUniformBoundsAndMoments) {
  seed_all(2);
  Tensor w = Tensor::empty({256, 300});
  kaiming_uniform_(w, FanMode::FanIn, leaky_relu_gain(std::sqrt(5.0)));
  const Moments m = moments(w);
  const double bound = 1.0 / std::sqrt(300.0);  // PyTorch's default Linear/Conv init
  EXPECT_LE(m.max, bound);
  EXPECT_GE(m.min, -bound);
  EXPECT_GT(m.max, 0.99 * bound);
  EXPECT_NEAR(m.std, bound / std::sqrt(3.0), 0.02 * bound);
  EXPECT_NEAR(m.mean, 0.0, 0.02 * bound);
}

TEST(Init, UniformNormalConstant) {
  seed_all(3);
  Tensor t = Tensor::empty({50000});
  uniform_(t, 2.0, 5.0);
  Moments m = moments(t);
  EXPECT_GE(m.min, 2.0);
  EXPECT_LE(m.max, 5.0);
  EXPECT_NEAR(m.mean, 3.5, 0.02);
  EXPECT_NEAR(m.std, 3.0 / std::sqrt(12.0), 0.02);
  normal_(t, -1.0, 0.5);
  m = moments(t);
  EXPECT_NEAR(m.mean, -1.0, 0.01);
  EXPECT_NEAR(m.std, 0.5, 0.01);
  constant_(t, 0.25);
  m = moments(t);
  EXPECT_EQ(m.min, 0.25);
  EXPECT_EQ(m.max, 0.25);
  EXPECT_THROW(uniform_(t, 1.0, 0.0), Error);
  EXPECT_THROW(normal_(t, 0.0, -1.0), Error);
}

TEST(Init, TruncNormalWideNarrowAndTail) {
  seed_all(4);
  Tensor t = Tensor::empty({50000});
  // GoogLeNet's setting: the bounds are absolute, so with std 0.01 nothing is cut.
  trunc_normal_(t, 0.0, 0.01, -2.0, 2.0);
  Moments m = moments(t);
  EXPECT_NEAR(m.std, 0.01, 0.0002);
  EXPECT_NEAR(m.mean, 0.0, 0.0002);
  // Cut at one std: variance 1 - 2 phi(1) / (Phi(1) - Phi(-1)) = 0.29112.
  trunc_normal_(t, 0.0, 1.0, -1.0, 1.0);
  m = moments(t);
  EXPECT_GE(m.min, -1.0);
  EXPECT_LE(m.max, 1.0);
  EXPECT_NEAR(m.std, std::sqrt(0.29112), 0.01);
  // A far-tail interval [3, 4] (mass 0.13%): the inverse-CDF path (slower: a smaller tensor).
  // Mean (phi(3) - phi(4)) / mass.
  t = Tensor::empty({10000});
  trunc_normal_(t, 0.0, 1.0, 3.0, 4.0);
  m = moments(t);
  EXPECT_GE(m.min, 3.0);
  EXPECT_LE(m.max, 4.0);
  EXPECT_NEAR(m.mean, 3.2596, 0.01);
  // The mirror image, with a shifted mean and scale.
  trunc_normal_(t, 10.0, 2.0, 10.0 - 8.0, 10.0 - 6.0);
  m = moments(t);
  EXPECT_GE(m.min, 2.0);
  EXPECT_LE(m.max, 4.0);
  EXPECT_NEAR(m.mean, 10.0 - 2.0 * 3.2596, 0.02);
  EXPECT_THROW(trunc_normal_(t, 0.0, 0.0, -1.0, 1.0), Error);
  EXPECT_THROW(trunc_normal_(t, 0.0, 1.0, 1.0, -1.0), Error);
  EXPECT_THROW(trunc_normal_(t, 0.0, 1.0, 60.0, 61.0), Error);  // no representable mass
}

TEST(Init, SeedFixesValues) {
  Tensor a = Tensor::empty({100}), b = Tensor::empty({100});
  seed_all(7);
  kaiming_normal_(a = Tensor::empty({10, 10}));
  seed_all(7);
  kaiming_normal_(b = Tensor::empty({10, 10}));
  EXPECT_EQ(a.to_vector(), b.to_vector());
  seed_all(8);
  kaiming_normal_(b);
  EXPECT_NE(a.to_vector(), b.to_vector());
}
