#pragma once
// The one reusable gradient checker (after Caffe's GradientChecker, dlib's test_layer and ggml's
// test-backend-ops). It compares the autograd gradient of the objective dot(f(inputs), r), with r a
// fixed random tensor (a plain sum would give zero gradient through BatchNorm and softmax), against
// central differences evaluated in double with a relative step, for every input and parameter.
// - The RNG-dependent parts of f (dropout) are made repeatable by `reseed`, called before each forward.
// - Points where the two one-sided differences disagree strongly are kinks (ReLU at 0, max-pool
//   ties) and are skipped; the test fails if too many are skipped.
// - Every buffer allocated while backward runs (the gradient buffers backward functions write into,
//   and their scratch tensors) is filled with NaN (PoisonFreshBuffersGuard), so a backward that
//   leaves an entry unwritten, or accumulates into a buffer it never zeroed, turns that gradient
//   entry NaN; the whole gradient, not only the sampled indices, must be finite. Without this such
//   a backward passes whenever the allocator happens to return zeros.
// - The leaves' gradients are pre-filled with random values and the check reads grad - prefill,
//   which proves the engine accumulates into .grad() instead of overwriting it.
// - Big tensors are checked on a random subset of indices.
// - A failure names the tensor, flat index, both values and the step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "framework/autograd.h"
#include "framework/ops.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "layers/module.h"

namespace inq::test {

struct GradCheckOptions {
  double step = 1e-2;          // relative: h = step * max(1, |x|)
  double tolerance = 1e-2;     // |analytic - numeric| <= tolerance * max(1, |analytic|, |numeric|)
  double kink_ratio = 0.2;     // skip when one-sided differences differ by more than this fraction
  int max_samples = 60;        // per tensor
  uint64_t seed = 1234;
  std::function<void()> reseed;  // called before every forward (dropout masks)
  bool poison_backward_buffers = true;  // NaN-fill what backward allocates (off only to show why)
};

struct NamedLeaf {
  std::string name;
  Tensor tensor;
};

inline Tensor random_tensor(const Shape& shape, Generator& gen, double scale = 1.0) {
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(gen.normal(0.0, scale));
  return t;
}

// Checks the gradients of f with respect to every tensor in `wrt` (all leaves). Returns the number
// of entries compared; failures are reported with ADD_FAILURE.
inline int check_gradients(const std::function<Tensor()>& f, std::vector<NamedLeaf> wrt,
                           const GradCheckOptions& opt = {}) {
  Generator gen(opt.seed);
  for (auto& leaf : wrt) leaf.tensor.set_requires_grad(true);

  if (opt.reseed) opt.reseed();
  Tensor out = f();
  const Tensor r = random_tensor(out.shape(), gen);
  auto objective = [&]() -> double {
    NoGradGuard no_grad;
    if (opt.reseed) opt.reseed();
    Tensor y = f();
    double s = 0.0;
    for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(y.data()[i]) * r.data()[i];
    return s;
  };

  // Analytic gradient, into pre-filled leaf gradients, through poisoned backward buffers.
  std::vector<Tensor> prefill;
  for (auto& leaf : wrt) {
    Tensor p = random_tensor(leaf.tensor.shape(), gen);
    prefill.push_back(p);
    leaf.tensor.set_grad(p.clone());
  }
  {
    std::optional<PoisonFreshBuffersGuard> poison;
    if (opt.poison_backward_buffers) poison.emplace();
    out.backward(r);
  }

  int compared = 0;
  for (size_t t = 0; t < wrt.size(); ++t) {
    Tensor x = wrt[t].tensor;
    Tensor g = x.grad();
    if (!g.defined()) {
      ADD_FAILURE() << "tensor '" << wrt[t].name << "' received no gradient";
      continue;
    }
    // Poison (or a genuine NaN/inf) anywhere in the gradient, sampled or not.
    int64_t non_finite = 0, first_non_finite = -1;
    for (int64_t i = 0; i < g.numel(); ++i) {
      if (std::isfinite(g.data()[i])) continue;
      if (non_finite++ == 0) first_non_finite = i;
    }
    if (non_finite > 0) {
      ADD_FAILURE() << "gradient of '" << wrt[t].name << "' has " << non_finite << " non-finite entries (first at "
                    << "flat index " << first_non_finite << "): a backward left them unwritten or accumulated "
                    << "into a buffer it never zeroed, or its maths overflowed";
      continue;
    }
    std::vector<int64_t> indices;
    if (x.numel() <= opt.max_samples) {
      for (int64_t i = 0; i < x.numel(); ++i) indices.push_back(i);
    } else {
      for (int i = 0; i < opt.max_samples; ++i) indices.push_back(static_cast<int64_t>(gen.uniform_int(x.numel())));
    }
    int skipped = 0;
    for (int64_t i : indices) {
      const double analytic = static_cast<double>(g.data()[i]) - prefill[t].data()[i];
      float* p = x.data() + i;
      const float original = *p;
      const double h = opt.step * std::max(1.0, std::fabs(static_cast<double>(original)));
      *p = static_cast<float>(original + h);
      const double f_plus = objective();
      *p = static_cast<float>(original - h);
      const double f_minus = objective();
      *p = original;
      const double f_zero = objective();
      const double d_plus = (f_plus - f_zero) / h, d_minus = (f_zero - f_minus) / h;
      if (std::fabs(d_plus - d_minus) > opt.kink_ratio * std::max({std::fabs(d_plus), std::fabs(d_minus), 1e-2})) {
        ++skipped;
        continue;
      }
      const double numeric = (f_plus - f_minus) / (2.0 * h);
      const double scale = std::max({1.0, std::fabs(analytic), std::fabs(numeric)});
      if (!(std::fabs(analytic - numeric) <= opt.tolerance * scale)) {  // NaN fails too
        ADD_FAILURE() << "gradient mismatch in '" << wrt[t].name << "' at flat index " << i << ": analytic "
                      << analytic << ", numeric " << numeric << " (step " << h << ")";
      }
      ++compared;
    }
    EXPECT_LE(skipped * 2, static_cast<int>(indices.size()))
        << "too many kinks skipped in '" << wrt[t].name << "': " << skipped << " of " << indices.size();
  }
  return compared;
}

// Convenience: the module's input plus all of its parameters.
inline int check_module_gradients(Module& module, Tensor input, const GradCheckOptions& opt = {},
                                  bool check_input = true) {
  std::vector<NamedLeaf> wrt;
  if (check_input) wrt.push_back({"input", input});
  for (auto& p : module.named_parameters()) wrt.push_back({p.name, p.tensor});
  return check_gradients([&] { return module.forward(input); }, wrt, opt);
}

}  // namespace inq::test
