// Direct convolution for narrow layers (layers/conv2d_direct.h) against the naive double-accumulating
// references (layers/conv2d_winograd.h) on odd shapes: batch 1 and several, 1..9 channels, kernels
// 1x1 to 7x7 and non-square, padding 0 up to kernel size - 1 and unequal per side, widths under one
// vector, between one and two and over two (masked tails), channel counts not a multiple of the
// blocks; accumulation into existing outputs; bit-identical results at 1 and 2 threads; the
// dispatcher's choice; and the gradient checker through Conv2d.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "framework/error.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "gradcheck.h"
#include "layers/conv2d.h"
#include "layers/conv2d_direct.h"
#include "layers/conv2d_winograd.h"

using namespace inq;

namespace {

struct Shape4 {
  int64_t N, C, H, W, K, R, S, ph, pw;
};

const Shape4 kShapes[] = {
    {3, 1, 28, 28, 6, 5, 5, 2, 2},    // LeNet-5 conv1
    {2, 6, 14, 14, 16, 5, 5, 0, 0},   // LeNet-5 conv2
    {2, 1, 28, 28, 16, 3, 3, 1, 1},   // ResNet-20's stem on 28x28
    {1, 3, 7, 40, 9, 3, 5, 1, 2},     // non-square kernel, unequal padding, two vectors and a tail
    {1, 2, 5, 17, 13, 1, 1, 0, 0},    // 1x1
    {2, 4, 9, 33, 17, 4, 2, 3, 1},    // even kernel, three vectors' worth of columns
    {1, 2, 3, 70, 5, 3, 3, 1, 1},     // wide rows
    {1, 1, 1, 1, 3, 1, 1, 0, 0},      // a single pixel
    {1, 2, 10, 12, 5, 7, 7, 3, 3},    // 7x7: the weight gradient's general path
    {2, 9, 6, 6, 11, 3, 3, 2, 2},     // padding R - 1: the input gradient's padding is 0
    {1, 1, 5, 20, 3, 2, 11, 1, 5},    // kernel wider than tall
    {2, 3, 9, 11, 10, 3, 3, 1, 1},    // narrow rows in pairs, an odd row count: the last pair is one row
};

Conv2dGeometry geometry(const Shape4& s) {
  return Conv2dGeometry::make({s.N, s.C, s.H, s.W}, {s.K, s.C, s.R, s.S}, 1, Size2(s.ph, s.pw));
}

std::vector<float> random_values(int64_t n, uint64_t seed) {
  Generator gen(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(gen.normal(0, 1));
  return v;
}

std::vector<float> absolute(std::vector<float> v) {
  for (auto& x : v) x = std::fabs(x);
  return v;
}

// |got - want| within 1e-5 of the same sum taken over |terms| (the scale of the rounding).
void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& scale,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::fabs(got[i] - want[i]), 1e-5f * (scale[i] + 1e-6f)) << what << " at " << i << ": " << got[i]
                                                                      << " vs " << want[i];
}

// Runs a kernel into a buffer full of garbage (it must overwrite it) and compares with the naive
// result, then once more with accumulate (the sum must double).
void expect_writes_then_accumulates(std::vector<float> want, std::vector<float> scale, const std::string& what,
                                    const std::function<void(float*, bool)>& run) {
  std::vector<float> got(want.size(), 123.0f);
  run(got.data(), /*accumulate=*/false);
  expect_close(got, want, scale, what);
  run(got.data(), /*accumulate=*/true);
  for (size_t i = 0; i < want.size(); ++i) {
    want[i] *= 2;
    scale[i] *= 2;
  }
  expect_close(got, want, scale, what + " accumulate");
}

}  // namespace

TEST(DirectConv, ForwardMatchesNaiveAndAccumulates) {
  for (const Shape4& s : kShapes) {
    const Conv2dGeometry g = geometry(s);
    const auto x = random_values(g.N * g.C * g.H * g.W, 1), w = random_values(g.K * g.C * g.R * g.S, 2),
               b = random_values(g.K, 3);
    const int64_t out = g.N * g.K * g.OH * g.OW;
    std::vector<float> want(out), scale(out);
    conv2d_forward_naive(want.data(), x.data(), w.data(), b.data(), g);
    conv2d_forward_naive(scale.data(), absolute(x).data(), absolute(w).data(), absolute(b).data(), g);
    expect_writes_then_accumulates(want, scale, "forward " + g.str(), [&](float* y, bool accumulate) {
      direct_conv2d_forward(y, x.data(), w.data(), b.data(), g, accumulate);  // accumulate: y += conv + b
    });
    // No bias.
    std::vector<float> plain(out), plain_want(out);
    direct_conv2d_forward(plain.data(), x.data(), w.data(), nullptr, g);
    conv2d_forward_naive(plain_want.data(), x.data(), w.data(), nullptr, g);
    expect_close(plain, plain_want, scale, "forward without bias " + g.str());
  }
}

TEST(DirectConv, BackwardDataMatchesNaiveAndAccumulates) {
  for (const Shape4& s : kShapes) {
    const Conv2dGeometry g = geometry(s);
    const auto dy = random_values(g.N * g.K * g.OH * g.OW, 4), w = random_values(g.K * g.C * g.R * g.S, 5);
    const int64_t in = g.N * g.C * g.H * g.W;
    std::vector<float> want(in), scale(in);
    conv2d_backward_data_naive(want.data(), dy.data(), w.data(), g);
    conv2d_backward_data_naive(scale.data(), absolute(dy).data(), absolute(w).data(), g);
    expect_writes_then_accumulates(want, scale, "input gradient " + g.str(), [&](float* dx, bool accumulate) {
      direct_conv2d_backward_data(dx, dy.data(), w.data(), g, accumulate);
    });
  }
}

TEST(DirectConv, BackwardWeightMatchesNaiveAndAccumulates) {
  for (const Shape4& s : kShapes) {
    const Conv2dGeometry g = geometry(s);
    const auto x = random_values(g.N * g.C * g.H * g.W, 6), dy = random_values(g.N * g.K * g.OH * g.OW, 7);
    const int64_t n = g.K * g.C * g.R * g.S;
    std::vector<float> want(n), scale(n);
    conv2d_backward_weight_naive(want.data(), x.data(), dy.data(), g);
    conv2d_backward_weight_naive(scale.data(), absolute(x).data(), absolute(dy).data(), g);
    expect_writes_then_accumulates(want, scale, "weight gradient " + g.str(), [&](float* dw, bool accumulate) {
      direct_conv2d_backward_weight(dw, x.data(), dy.data(), g, accumulate);
    });
  }
}

TEST(DirectConv, BitIdenticalAtOneAndTwoThreads) {
  const Conv2dGeometry g = geometry({16, 6, 14, 14, 16, 5, 5, 0, 0});
  const auto x = random_values(g.N * g.C * g.H * g.W, 8), w = random_values(g.K * g.C * g.R * g.S, 9),
             dy = random_values(g.N * g.K * g.OH * g.OW, 10);
  auto run = [&](int threads) {
    set_num_threads(threads);
    std::vector<float> y(g.N * g.K * g.OH * g.OW), dx(x.size()), dw(w.size());
    direct_conv2d_forward(y.data(), x.data(), w.data(), nullptr, g);
    direct_conv2d_backward_data(dx.data(), dy.data(), w.data(), g, false);
    direct_conv2d_backward_weight(dw.data(), x.data(), dy.data(), g, false);
    y.insert(y.end(), dx.begin(), dx.end());
    y.insert(y.end(), dw.begin(), dw.end());
    return y;
  };
  const auto one = run(1), two = run(2);
  set_num_threads(1);
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(one[i], two[i]) << i;  // bit for bit
}

TEST(DirectConv, RefusesGeometriesItDoesNotCover) {
  EXPECT_FALSE(direct_conv2d_supported(Conv2dGeometry::make({1, 2, 9, 9}, {4, 2, 3, 3}, 2, 1)));          // stride
  EXPECT_FALSE(direct_conv2d_supported(Conv2dGeometry::make({1, 2, 9, 9}, {4, 2, 3, 3}, 1, 1, 2)));       // dilation
  EXPECT_FALSE(direct_conv2d_supported(Conv2dGeometry::make({1, 4, 9, 9}, {4, 2, 3, 3}, 1, 1, 1, 2)));    // groups
  EXPECT_FALSE(direct_conv2d_supported(Conv2dGeometry::make({1, 2, 9, 9}, {4, 2, 3, 3}, 1, 3)));          // padding
  EXPECT_FALSE(direct_conv2d_supported(Conv2dGeometry::make({1, 1, 9, 40}, {4, 1, 1, 17}, 1, 0)));        // width
  EXPECT_TRUE(direct_conv2d_supported(Conv2dGeometry::make({1, 2, 9, 9}, {4, 2, 3, 3}, 1, 2)));
  const Conv2dGeometry strided = Conv2dGeometry::make({1, 2, 9, 9}, {4, 2, 3, 3}, 2, 1);
  std::vector<float> y(strided.N * strided.K * strided.OH * strided.OW), x(2 * 81), w(4 * 2 * 9);
  EXPECT_THROW(direct_conv2d_forward(y.data(), x.data(), w.data(), nullptr, strided), Error);
}

TEST(DirectConv, DispatcherPicksItForNarrowLayersOnly) {
  set_conv2d_algorithm(Conv2dAlgorithm::Auto);
  const Conv2dGeometry lenet1 = geometry({128, 1, 28, 28, 6, 5, 5, 2, 2});
  const Conv2dGeometry lenet2 = geometry({128, 6, 14, 14, 16, 5, 5, 0, 0});
  const Conv2dGeometry wide = geometry({8, 64, 56, 56, 64, 3, 3, 1, 1});
  const bool fast = direct_conv2d_vectorized();
  EXPECT_EQ(choose_conv2d_algorithm(lenet1).direct_forward, fast);
  EXPECT_EQ(choose_conv2d_algorithm(lenet1).direct_weight, fast);
  EXPECT_FALSE(choose_conv2d_algorithm(lenet1).direct_data);  // 1 input channel: im2col's is faster
  EXPECT_EQ(choose_conv2d_algorithm(lenet2).direct_weight, fast);
  EXPECT_EQ(choose_conv2d_algorithm(lenet2).direct_data, fast);
  EXPECT_FALSE(choose_conv2d_algorithm(wide).direct_forward);
  EXPECT_TRUE(choose_conv2d_algorithm(wide).winograd_forward);
  set_conv2d_algorithm(Conv2dAlgorithm::Im2col);
  EXPECT_FALSE(choose_conv2d_algorithm(lenet1).direct_forward);
  set_conv2d_algorithm(Conv2dAlgorithm::Direct);
  EXPECT_TRUE(choose_conv2d_algorithm(wide).direct_data);
  // Forced where it does not apply: im2col (no Winograd either).
  const Conv2dGeometry strided = Conv2dGeometry::make({1, 2, 9, 9}, {4, 2, 3, 3}, 2, 1);
  EXPECT_FALSE(choose_conv2d_algorithm(strided).direct_forward);
  EXPECT_FALSE(choose_conv2d_algorithm(strided).winograd_forward);
  set_conv2d_algorithm(Conv2dAlgorithm::Auto);
}

// Conv2d's autograd through the direct kernels (forced): the same outputs and gradients as im2col's.
TEST(DirectConv, Conv2dThroughTheDirectKernelsMatchesIm2col) {
  const Conv2dGeometry g = geometry({2, 3, 9, 11, 5, 5, 3, 2, 1});
  const auto xv = random_values(g.N * g.C * g.H * g.W, 11), wv = random_values(g.K * g.C * g.R * g.S, 12),
             bv = random_values(g.K, 13), dyv = random_values(g.N * g.K * g.OH * g.OW, 14);
  auto run = [&](Conv2dAlgorithm algo) {
    set_conv2d_algorithm(algo);
    Tensor x = Tensor::from_vector(g.input_shape(), xv), w = Tensor::from_vector(g.weight_shape(), wv),
           b = Tensor::from_vector({g.K}, bv);
    for (Tensor* t : {&x, &w, &b}) t->set_requires_grad(true);
    Tensor y = conv2d(x, w, b, Conv2dOptions{.padding = Size2(2, 1)});
    y.backward(Tensor::from_vector(g.output_shape(), dyv));
    std::vector<float> all = y.to_vector();
    for (Tensor* t : {&x, &w, &b}) {
      const auto grad = t->grad().to_vector();
      all.insert(all.end(), grad.begin(), grad.end());
    }
    return all;
  };
  const auto direct = run(Conv2dAlgorithm::Direct), im2col = run(Conv2dAlgorithm::Im2col);
  set_conv2d_algorithm(Conv2dAlgorithm::Auto);
  ASSERT_EQ(direct.size(), im2col.size());
  for (size_t i = 0; i < direct.size(); ++i)
    EXPECT_NEAR(direct[i], im2col[i], 2e-4f * (1.0f + std::fabs(im2col[i]))) << i;
}

// The gradient checker (finite differences) through Conv2d on shapes the dispatcher sends to the
// direct kernels by itself (auto mode).
TEST(DirectConv, GradientCheckThroughConv2d) {
  if (!direct_conv2d_vectorized()) GTEST_SKIP() << "no AVX-512 kernels: the dispatcher keeps im2col";
  set_conv2d_algorithm(Conv2dAlgorithm::Auto);
  seed_all(41);
  Generator gen(42);
  const std::vector<std::pair<Conv2dOptions, Shape>> configs = {
      {{.in_channels = 1, .out_channels = 6, .kernel_size = 5, .padding = 2}, {2, 1, 7, 6}},
      {{.in_channels = 3, .out_channels = 9, .kernel_size = Size2(3, 2), .padding = Size2(1, 0), .bias = false},
       {2, 3, 5, 19}},
      {{.in_channels = 5, .out_channels = 4, .kernel_size = 3, .padding = 1}, {2, 5, 6, 7}},  // direct input gradient
  };
  for (const auto& [opt, shape] : configs) {
    Conv2d conv(opt);
    ASSERT_TRUE(choose_conv2d_algorithm(Conv2dGeometry::make(shape, conv.weight.shape(), 1, opt.padding)).direct_forward);
    Tensor x = test::random_tensor(shape, gen);
    EXPECT_GT(test::check_module_gradients(conv, x), 0);
  }
}
