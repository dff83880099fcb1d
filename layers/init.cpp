#include "layers/init.h"

#include <cmath>

#include "framework/error.h"
#include "framework/random.h"

namespace inq {

namespace {
thread_local bool g_skip_init = false;
}  // namespace

SkipParameterInitGuard::SkipParameterInitGuard() : previous_(g_skip_init) { g_skip_init = true; }
SkipParameterInitGuard::~SkipParameterInitGuard() { g_skip_init = previous_; }
bool SkipParameterInitGuard::active() { return g_skip_init; }

Fans compute_fans(const Shape& s) {
  INQ_CHECK(s.size() >= 2,
            "Given a tensor of shape {}, expected at least 2 dims to compute fan in and fan out",
            shape_str(s));
  int64_t receptive = 1;
  for (size_t i = 2; i < s.size(); ++i) receptive *= s[i];
  return {s[1] * receptive, s[0] * receptive};
}

double leaky_relu_gain(double negative_slope) {
  return std::sqrt(2.0 / (1.0 + negative_slope * negative_slope));
}

void uniform_(Tensor& t, double lo, double hi) {
  if (g_skip_init) return;
  INQ_CHECK(lo <= hi, "Given uniform_ bounds [{}, {}] for a tensor of shape {}, expected lo <= hi", lo, hi,
            shape_str(t.shape()));
  Generator& gen = default_generator();
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(lo + (hi - lo) * gen.uniform_double());
}

void normal_(Tensor& t, double mean, double std) {
  if (g_skip_init) return;
  INQ_CHECK(std >= 0.0, "Given normal_ with std {} for a tensor of shape {}, expected std >= 0", std,
            shape_str(t.shape()));
  Generator& gen = default_generator();
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(gen.normal(mean, std));
}

void constant_(Tensor& t, double value) {
  if (!g_skip_init) t.fill_(static_cast<float>(value));
}

namespace {
// Standard normal CDF; erfc keeps it accurate in the lower tail.
double phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
}  // namespace

void trunc_normal_(Tensor& t, double mean, double std, double lo, double hi) {
  if (g_skip_init) return;
  INQ_CHECK(std > 0.0 && lo < hi,
            "Given trunc_normal_ with mean {}, std {} and bounds [{}, {}] for a tensor of shape {}, expected "
            "std > 0 and lo < hi",
            mean, std, lo, hi, shape_str(t.shape()));
  double a = (lo - mean) / std, b = (hi - mean) / std;
  // Work in the lower tail, where phi() is accurate, by mirroring an interval above the mean.
  const bool mirrored = a > 0.0;
  if (mirrored) {
    const double na = -b, nb = -a;
    a = na, b = nb;
  }
  const double phi_a = phi(a), mass = phi(b) - phi_a;
  INQ_CHECK(
      mass > 0.0,
      "Given trunc_normal_ with mean {}, std {} and bounds [{}, {}], expected an interval with non-zero "
      "probability, but it lies too far in the tail",
      mean, std, lo, hi);
  Generator& gen = default_generator();
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    double z;
    if (mass >= 0.05) {
      // Rejection: exact, and at most 20 draws per sample on average.
      do {
        z = gen.normal();
      } while (z < a || z > b);
    } else {
      // Inverse CDF by bisection: phi is monotone and accurate on [a, b] here.
      const double u = phi_a + mass * gen.uniform_double();
      double left = a, right = b;
      for (int iter = 0; iter < 60; ++iter) {  // width (b - a) / 2^60
        const double mid = 0.5 * (left + right);
        (phi(mid) < u ? left : right) = mid;
      }
      z = 0.5 * (left + right);
    }
    if (mirrored) z = -z;
    // Clamp guards the float rounding of mean + std * z at the bounds.
    p[i] = static_cast<float>(std::fmin(hi, std::fmax(lo, mean + std * z)));
  }
}

namespace {
double fan_for(const Tensor& t, FanMode mode) {
  const Fans f = compute_fans(t.shape());
  const int64_t fan = mode == FanMode::FanIn ? f.fan_in : f.fan_out;
  INQ_CHECK(fan > 0, "Given a tensor of shape {}, expected a positive fan, but got {} instead",
            shape_str(t.shape()), fan);
  return static_cast<double>(fan);
}
}  // namespace

void kaiming_normal_(Tensor& t, FanMode mode, double gain) {
  normal_(t, 0.0, gain / std::sqrt(fan_for(t, mode)));
}

void kaiming_uniform_(Tensor& t, FanMode mode, double gain) {
  const double bound = gain * std::sqrt(3.0 / fan_for(t, mode));
  uniform_(t, -bound, bound);
}

}  // namespace inq
