// Linear: kernels against a naive reference, autograd plumbing, accumulation, the layer and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "gradcheck.h"
#include "layers/linear.h"

using namespace inq;
using inq::test::random_tensor;

namespace {

// y[n][o] = b[o] + sum_i x[n][i] * w[o][i], in double.
std::vector<double> naive_linear(const Tensor& x, const Tensor& w, const float* b) {
  const int64_t N = x.size(0), in = x.size(1), out = w.size(0);
  std::vector<double> y(static_cast<size_t>(N * out));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? b[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += static_cast<double>(x.data()[n * in + i]) * w.data()[o * in + i];
      y[static_cast<size_t>(n * out + o)] = s;
    }
  return y;
}

void expect_close(const float* got, const std::vector<double>& want, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (std::fabs(got[i] - want[i]) > 1e-4 * std::max(1.0, std::fabs(want[i])) && ++bad <= 5)
      ADD_FAILURE() << what << " differs at " << i << ": got " << got[i] << ", want " << want[i];
  EXPECT_EQ(bad, 0) << what;
}

// Runs its scope with n compute threads, then restores the count.
struct ThreadCountGuard {
  explicit ThreadCountGuard(int n) : saved(get_num_threads()) { set_num_threads(n); }
  ~ThreadCountGuard() { set_num_threads(saved); }
  int saved;
};

}  // namespace

TEST(Linear, ForwardAndBackwardMatchNaiveAndAccumulate) {
  Generator gen(1);
  for (const auto& [N, in, out, with_bias] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
           {1, 1, 1, true}, {5, 7, 3, true}, {4, 33, 10, false}, {17, 64, 9, true},
           // Batches of 2..16 take the dot-product path: odd inner sizes, outputs not a multiple of 4.
           {2, 17, 5, true}, {8, 37, 13, true}, {16, 100, 6, false}, {3, 1, 2, true}}) {
    SCOPED_TRACE(fmt::format("N={} in={} out={} bias={}", N, in, out, with_bias));
    Tensor x = random_tensor({N, in}, gen), w = random_tensor({out, in}, gen);
    Tensor b = with_bias ? random_tensor({out}, gen) : Tensor();
    Tensor dy = random_tensor({N, out}, gen);
    for (Tensor* t : {&x, &w, &b})
      if (t->defined()) t->set_requires_grad(true);
    // Pre-filled gradients prove that backward adds rather than overwrites.
    Tensor px = random_tensor(x.shape(), gen), pw = random_tensor(w.shape(), gen),
           pb = random_tensor({out}, gen);
    x.set_grad(px.clone());
    w.set_grad(pw.clone());
    if (with_bias) b.set_grad(pb.clone());

    Tensor y = linear(x, w, b);
    ASSERT_EQ(y.shape(), (Shape{N, out}));
    expect_close(y.data(), naive_linear(x, w, with_bias ? b.data() : nullptr), "y");
    y.backward(dy);

    // dx = dy w, dw = dy^T x, db = column sums of dy.
    std::vector<double> dx(static_cast<size_t>(N * in)), dw(static_cast<size_t>(out * in)),
        db(static_cast<size_t>(out));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < out; ++o) {
        const double g = dy.data()[n * out + o];
        db[o] += g;
        for (int64_t i = 0; i < in; ++i) {
          dx[n * in + i] += g * w.data()[o * in + i];
          dw[o * in + i] += g * x.data()[n * in + i];
        }
      }
    for (size_t i = 0; i < dx.size(); ++i) dx[i] += px.data()[i];
    for (size_t i = 0; i < dw.size(); ++i) dw[i] += pw.data()[i];
    for (size_t i = 0; i < db.size(); ++i) db[i] += pb.data()[i];
    expect_close(x.grad().data(), dx, "x.grad");
    expect_close(w.grad().data(), dw, "w.grad");
    if (with_bias) expect_close(b.grad().data(), db, "b.grad");
  }
}

TEST(Linear, KernelsAddIntoGradientBuffers) {
  // The kernel contract: backward adds into dx, dw, db, so calling it twice doubles the gradient.
  Generator gen(7);
  const int64_t N = 3, in = 5, out = 4;
  Tensor x = random_tensor({N, in}, gen), w = random_tensor({out, in}, gen),
         dy = random_tensor({N, out}, gen);
  Tensor dx1 = Tensor::zeros({N, in}), dw1 = Tensor::zeros({out, in}), db1 = Tensor::zeros({out});
  linear_backward(dx1.data(), dw1.data(), db1.data(), dy.data(), x.data(), w.data(), N, in, out);
  Tensor dx2 = dx1.clone(), dw2 = dw1.clone(), db2 = db1.clone();
  linear_backward(dx2.data(), dw2.data(), db2.data(), dy.data(), x.data(), w.data(), N, in, out);
  for (auto [once, twice] : {std::pair{dx1, dx2}, std::pair{dw1, dw2}, std::pair{db1, db2}})
    for (int64_t i = 0; i < once.numel(); ++i) EXPECT_FLOAT_EQ(twice.data()[i], 2.0f * once.data()[i]);
  // accumulate = false writes the gradients: buffers full of NaN come out equal to the first call's.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor dx3 = Tensor::full({N, in}, nan), dw3 = Tensor::full({out, in}, nan), db3 = Tensor::full({out}, nan);
  linear_backward(dx3.data(), dw3.data(), db3.data(), dy.data(), x.data(), w.data(), N, in, out,
                  /*accumulate=*/false);
  for (auto [once, written] : {std::pair{dx1, dx3}, std::pair{dw1, dw3}, std::pair{db1, db3}})
    for (int64_t i = 0; i < once.numel(); ++i) EXPECT_EQ(written.data()[i], once.data()[i]);
  // The forward overwrites y.
  Tensor y = Tensor::full({N, out}, 1e30f);
  linear_forward(y.data(), x.data(), w.data(), nullptr, N, in, out);
  expect_close(y.data(), naive_linear(x, w, nullptr), "y");
}

TEST(Linear, OnlyRequestedGradientsAndNoGraphWithoutGrad) {
  Generator gen(2);
  Tensor x = random_tensor({3, 4}, gen), w = random_tensor({2, 4}, gen), b = random_tensor({2}, gen);
  w.set_requires_grad(true);
  linear(x, w, b).backward(random_tensor({3, 2}, gen));
  EXPECT_TRUE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  NoGradGuard guard;
  EXPECT_FALSE(linear(x, w, b).requires_grad());
}

TEST(Linear, GradientCheckModule) {
  seed_all(3);
  Generator gen(4);
  Linear with_bias({.in_features = 6, .out_features = 4});
  EXPECT_GT(test::check_module_gradients(with_bias, random_tensor({3, 6}, gen)), 0);
  Linear no_bias({.in_features = 5, .out_features = 2, .bias = false});
  EXPECT_GT(test::check_module_gradients(no_bias, random_tensor({2, 5}, gen)), 0);
}

TEST(Linear, DeterministicBitForBit) {
  Generator gen(5);
  Tensor x = random_tensor({64, 300}, gen), w = random_tensor({100, 300}, gen), b = random_tensor({100}, gen);
  Tensor dy = random_tensor({64, 100}, gen);
  std::vector<float> runs[2][4];
  for (auto& run : runs) {
    Tensor xr = x.clone(), wr = w.clone(), br = b.clone();
    for (Tensor* t : {&xr, &wr, &br}) t->set_requires_grad(true);
    Tensor y = linear(xr, wr, br);
    y.backward(dy);
    run[0] = y.to_vector(), run[1] = xr.grad().to_vector(), run[2] = wr.grad().to_vector();
    run[3] = br.grad().to_vector();
  }
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(std::memcmp(runs[0][i].data(), runs[1][i].data(), runs[0][i].size() * sizeof(float)), 0) << i;
}

// The small-batch path (batches of 2..16, linear_forward_dot) splits the weight's rows between the
// threads: every thread count must give the same bits, and they must match the naive sums, on
// shapes large enough to run in parallel, around the batch limits.
TEST(Linear, SmallBatchForwardIsTheSameForAnyThreadCount) {
  Generator gen(8);
  for (const int64_t N : {1, 2, 7, 16, 17}) {
    SCOPED_TRACE(fmt::format("N={}", N));
    const int64_t in = 301, out = 203;  // 203 = 50 blocks of 4 rows and a tail of 3
    Tensor x = random_tensor({N, in}, gen), w = random_tensor({out, in}, gen), b = random_tensor({out}, gen);
    std::vector<float> runs[3];
    for (int threads : {1, 2, 3}) {
      ThreadCountGuard guard(threads);
      Tensor y = Tensor::full({N, out}, 1e30f);
      linear_forward(y.data(), x.data(), w.data(), b.data(), N, in, out);
      expect_close(y.data(), naive_linear(x, w, b.data()), "y");
      runs[threads - 1] = y.to_vector();
    }
    if (N >= 2 && N <= 16) {
      EXPECT_EQ(runs[0], runs[1]);
      EXPECT_EQ(runs[0], runs[2]);
    }
  }
}

TEST(Linear, ParametersNamesAndPyTorchInit) {
  seed_all(6);
  Linear fc({.in_features = 400, .out_features = 120});
  auto params = fc.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "weight");
  EXPECT_EQ(params[0].role, ParamRole::Weight);
  EXPECT_EQ(params[1].name, "bias");
  EXPECT_EQ(params[1].role, ParamRole::Bias);
  EXPECT_EQ(fc.weight.shape(), (Shape{120, 400}));
  EXPECT_EQ(fc.bias.shape(), (Shape{120}));
  EXPECT_EQ(fc.type_name(), "Linear");
  const double bound = 1.0 / std::sqrt(400.0);
  double sum_sq = 0, max_abs = 0;
  for (float v : fc.weight.to_vector())
    sum_sq += double(v) * v, max_abs = std::max(max_abs, std::fabs(double(v)));
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.99 * bound);
  EXPECT_NEAR(std::sqrt(sum_sq / fc.weight.numel()), bound / std::sqrt(3.0), 0.02 * bound);
  for (float v : fc.bias.to_vector()) EXPECT_LE(std::fabs(v), bound);
  Linear no_bias({.in_features = 3, .out_features = 2, .bias = false});
  EXPECT_FALSE(no_bias.bias.defined());
  EXPECT_EQ(no_bias.named_parameters().size(), 1u);
}

TEST(Linear, BadShapesThrowNamingEveryShape) {
  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected inq::Error";
    return "";
  };
  std::string m = message([] { linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 5}), Tensor::zeros({4})); });
  EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
  EXPECT_NE(m.find("[4, 5]"), std::string::npos) << m;
  EXPECT_NE(m.find("[4]"), std::string::npos) << m;
  m = message([] { linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 3}), Tensor::zeros({3})); });
  EXPECT_NE(m.find("bias"), std::string::npos) << m;
  m = message([] { linear(Tensor::zeros({2, 3, 1}), Tensor::zeros({4, 3}), Tensor()); });
  EXPECT_NE(m.find("[2, 3, 1]"), std::string::npos) << m;
  EXPECT_THROW(linear(Tensor::zeros({2, 0}), Tensor::zeros({4, 0}), Tensor()), Error);
  EXPECT_THROW(Linear({.in_features = 0, .out_features = 3}), Error);
  Linear fc({.in_features = 3, .out_features = 2});
  m = message([&] { fc.forward(Tensor::zeros({5, 4})); });
  EXPECT_NE(m.find("[5, 4]"), std::string::npos) << m;
}
