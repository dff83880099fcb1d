// MaxPool2d, AvgPool2d, AdaptiveAvgPool2d: PyTorch's output-size rule (ceil mode, padding,
// dilation), values, divisors, tie handling and gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "framework/error.h"
#include "gradcheck.h"
#include "layers/pooling.h"
#include "tensor_testing.h"

using namespace inq;

namespace {

using test::expect_near_all;

Tensor arange_plane(int64_t h, int64_t w, float start) {
  std::vector<float> v(static_cast<size_t>(h * w));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return Tensor::from_vector({1, 1, h, w}, v);
}

}  // namespace

// Each row worked by hand with out = floor((in + 2p - d(k-1) - 1 [+ s-1 in ceil mode]) / s) + 1, then
// in ceil mode dropping a last window with (out-1)*s >= in + p. PyTorch 1.13 agrees on all rows.
TEST(MaxPool2d, OutputSizeRule) {
  struct Row {
    int64_t in, k, s, p, d;
    bool ceil;
    int64_t expected;
  };
  const Row rows[] = {
      {5, 2, 2, 0, 1, false, 2},    // floor(3/2)+1
      {5, 2, 2, 0, 1, true, 3},     // floor(4/2)+1; last window starts at 4 < 5
      {6, 3, 2, 1, 1, false, 3},    // floor(5/2)+1
      {6, 3, 2, 1, 1, true, 4},     // floor(6/2)+1; last starts at 6-1 = 5 < 6
      {5, 3, 3, 1, 1, true, 2},     // floor(6/3)+1 = 3, but (3-1)*3 = 6 >= 5+1: dropped
      {5, 3, 3, 1, 1, false, 2},    // floor(4/3)+1
      {112, 3, 2, 0, 1, true, 56},  // GoogLeNet stem: floor(110/2)+1
      {14, 3, 2, 0, 1, true, 7},    // floor(12/2)+1
      {56, 3, 2, 0, 1, true, 28},   // floor(54/2)+1
      {7, 3, 2, 0, 1, true, 3},     // floor(5/2)+1
      {7, 3, 1, 0, 2, false, 3},    // extent 5: floor(2/1)+1
      {8, 3, 2, 1, 2, true, 4},     // extent 5: floor(5/2)+1; (4-1)*2 = 6 < 9
      {2, 3, 1, 0, 1, false, 0},    // too small: caller must reject
  };
  for (const Row& r : rows)
    EXPECT_EQ(pool_output_size(r.in, r.k, r.s, r.p, r.d, r.ceil), r.expected)
        << "in " << r.in << " k " << r.k << " s " << r.s << " p " << r.p << " d " << r.d << " ceil "
        << r.ceil;
  const Pool2dGeometry g =
      max_pool2d_geometry({2, 3, 5, 6}, {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true});
  EXPECT_EQ(g.oh, 3);  // floor(5/2)+1 = 3; (3-1)*2 = 4 < 6
  EXPECT_EQ(g.ow, 4);
  EXPECT_EQ(max_pool2d_geometry({1, 1, 4, 4}, {.kernel_size = 2}).stride, 2);  // stride defaults to kernel
}

// x (5x5) = (7*i mod 11) - 5 for i = 0..24:
//   -5  2 -2  5  1
//   -3  4  0 -4  3
//   -1 -5  2 -2  5
//    1 -3  4  0 -4
//    3 -1 -5  2 -2
TEST(MaxPool2d, CeilModeAndPaddingValues) {
  std::vector<float> v(25);
  for (int i = 0; i < 25; ++i) v[i] = static_cast<float>((7 * i) % 11 - 5);
  Tensor x = Tensor::from_vector({1, 1, 5, 5}, v);
  // k3 s3 p1 ceil: 2x2 output; windows rows/cols [-1,1] and [2,4]:
  //   max(-5,2,-3,4)=4   max(-2,5,1,0,-4,3)=5   max(-1,-5,1,-3,3,-1)=3   max(2,-2,5,4,0,-4,-5,2,-2)=5
  Tensor y = max_pool2d(x, {.kernel_size = 3, .stride = 3, .padding = 1, .ceil_mode = true});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(y.to_vector(), (std::vector<float>{4, 5, 3, 5}));
  // k2 s2 ceil: 3x3 output, the last row and column see a partial window (row/col 4 only).
  Tensor y2 = max_pool2d(x, {.kernel_size = 2, .ceil_mode = true});
  EXPECT_EQ(y2.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(y2.to_vector(), (std::vector<float>{4, 5, 3, 1, 4, 5, 3, 2, -2}));
  // Padding is -inf, not 0: an all-negative input keeps negative maxima at the border.
  Tensor neg = Tensor::full({1, 1, 2, 2}, -3.0f);
  Tensor y3 = max_pool2d(neg, {.kernel_size = 3, .stride = 1, .padding = 1});
  EXPECT_EQ(y3.to_vector(), (std::vector<float>{-3, -3, -3, -3}));
}

// The fast kernel against the naive reference on many geometries, with inputs full of ties (values
// from a set of 4), some -inf and some NaN: identical outputs and identical argmax offsets.
TEST(MaxPool2d, FastKernelMatchesNaiveReference) {
  Generator gen(24);
  struct Case {
    Shape shape;
    MaxPool2dOptions o;
  };
  const Case cases[] = {
      {{2, 3, 9, 8}, {.kernel_size = 3, .stride = 2, .ceil_mode = true}},
      {{1, 2, 7, 7}, {.kernel_size = 3, .stride = 2, .padding = 1}},
      {{1, 2, 8, 9}, {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true}},
      {{1, 1, 5, 5}, {.kernel_size = 3, .stride = 3, .padding = 1, .ceil_mode = true}},
      {{2, 2, 6, 6}, {.kernel_size = 2}},
      {{1, 2, 9, 7}, {.kernel_size = 3, .stride = 1, .padding = 1, .dilation = 2}},
      {{1, 1, 6, 11}, {.kernel_size = 4, .stride = 3, .padding = 2, .dilation = 2, .ceil_mode = true}},
      {{1, 1, 1, 1}, {.kernel_size = 1}},
      // Rows wide enough for the 16-column vector path and its masked tails (stride 1 and 2).
      {{2, 3, 28, 28}, {.kernel_size = 2}},
      {{1, 2, 10, 10}, {.kernel_size = 2}},
      {{1, 2, 9, 69}, {.kernel_size = 2, .ceil_mode = true}},  // a last partial window: the general path
      {{1, 1, 4, 66}, {.kernel_size = 2}},
      {{1, 2, 9, 55}, {.kernel_size = 3, .stride = 2}},
      {{1, 2, 8, 57}, {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true}},
      {{1, 2, 7, 33}, {.kernel_size = 3, .stride = 1, .padding = 1}},
      {{1, 1, 5, 34}, {.kernel_size = 3, .stride = 2, .ceil_mode = true}},
      {{1, 1, 4, 47}, {.kernel_size = 2, .stride = 1}},
      {{1, 1, 3, 40}, {.kernel_size = 5, .stride = 2, .padding = 2}},
  };
  for (const Case& c : cases) {
    Tensor x = Tensor::empty(c.shape);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const uint64_t r = gen.uniform_int(20);
      x.data()[i] = r == 0   ? -std::numeric_limits<float>::infinity()
                    : r == 1 ? std::numeric_limits<float>::quiet_NaN()
                             : static_cast<float>(r % 4);
    }
    const Pool2dGeometry g = max_pool2d_geometry(c.shape, c.o);
    const int64_t out = g.n * g.c * g.oh * g.ow;
    std::vector<float> y_fast(out), y_naive(out);
    std::vector<int32_t> a_fast(out), a_naive(out);
    max_pool2d_forward(y_fast.data(), a_fast.data(), x.data(), g);
    max_pool2d_forward_naive(y_naive.data(), a_naive.data(), x.data(), g);
    for (int64_t i = 0; i < out; ++i) {
      EXPECT_TRUE(y_fast[i] == y_naive[i] || (std::isnan(y_fast[i]) && std::isnan(y_naive[i])))
          << shape_str(c.shape) << " k" << c.o.kernel_size << " at " << i << ": " << y_fast[i] << " vs "
          << y_naive[i];
      EXPECT_EQ(a_fast[i], a_naive[i]) << shape_str(c.shape) << " k" << c.o.kernel_size << " at " << i;
    }
  }
}

TEST(MaxPool2d, GradientGoesToTheFirstMaximumOnTies) {
  Tensor x = Tensor::from_vector({1, 1, 2, 4}, {1, 7, 7, 7, 7, 7, 2, 3});
  x.set_requires_grad(true);
  Tensor y = max_pool2d(x, {.kernel_size = 2});
  EXPECT_EQ(y.to_vector(), (std::vector<float>{7, 7}));
  y.backward(Tensor::from_vector({1, 1, 1, 2}, {10, 20}));
  // First window (1 7 / 7 7): row-major first 7 is at (0,1). Second window (7 7 / 2 3): (0,2).
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 10, 20, 0, 0, 0, 0, 0}));
}

TEST(MaxPool2d, OverlappingWindowsAccumulate) {
  Tensor x = Tensor::from_vector({1, 1, 3, 3}, {0, 0, 0, 0, 9, 0, 0, 0, 0});
  x.set_requires_grad(true);
  Tensor y = max_pool2d(x, {.kernel_size = 2, .stride = 1});
  y.backward(Tensor::full({1, 1, 2, 2}, 1.0f));
  EXPECT_EQ(x.grad().data()[4], 4.0f);  // the centre is the max of all four windows
}

TEST(MaxPool2d, PropagatesNaN) {
  Tensor x = Tensor::from_vector({1, 1, 2, 2}, {1, std::numeric_limits<float>::quiet_NaN(), 3, 4});
  EXPECT_TRUE(std::isnan(max_pool2d(x, {.kernel_size = 2}).item()));
}

TEST(MaxPool2d, Gradients) {
  Generator gen(21);
  MaxPool2d pool({.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true});
  EXPECT_GT(test::check_module_gradients(pool, test::random_tensor({2, 2, 6, 5}, gen)), 0);
  MaxPool2d dilated({.kernel_size = 2, .stride = 1, .dilation = 2});
  EXPECT_GT(test::check_module_gradients(dilated, test::random_tensor({1, 2, 5, 5}, gen)), 0);
}

TEST(MaxPool2d, RejectsBadShapesAndOptions) {
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 4, 4}), {.kernel_size = 2}), Error);
  EXPECT_THROW(max_pool2d(Tensor::zeros({1, 1, 2, 2}), {.kernel_size = 3}), Error);  // output 0x0
  EXPECT_THROW(MaxPool2d({.kernel_size = 3, .padding = 2}), Error);                  // pad > k/2
  EXPECT_THROW(MaxPool2d({.kernel_size = 0}), Error);
  EXPECT_THROW(MaxPool2d({.kernel_size = 2, .dilation = 0}), Error);
  try {
    max_pool2d(Tensor::zeros({1, 3, 2, 2}), {.kernel_size = 3});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 3, 2, 2]"), std::string::npos) << e.what();
  }
}

// x (3x3) = 1..9, k2 s2 p1 -> 2x2. Windows (rows x cols, clipped): {0}x{0}, {0}x{1,2}, {1,2}x{0},
// {1,2}x{1,2}. Sums 1, 2+3 = 5, 4+7 = 11, 5+6+8+9 = 28. With count_include_pad every window counts
// 2x2 = 4; without it, 1, 2, 2, 4. (PyTorch 1.13 agrees.)
TEST(AvgPool2d, CountIncludePad) {
  Tensor x = arange_plane(3, 3, 1);
  expect_near_all(avg_pool2d(x, {.kernel_size = 2, .padding = 1}), {0.25f, 1.25f, 2.75f, 7.0f}, 1e-6f,
                  "include pad");
  expect_near_all(avg_pool2d(x, {.kernel_size = 2, .padding = 1, .count_include_pad = false}),
                  {1.0f, 2.5f, 5.5f, 7.0f}, 1e-6f, "exclude pad");
}

// x (4x4) = 1..16, k3 s2 p1 ceil -> 3x3. Along a dim the windows are [-1,2), [1,4), [3,6); clipped to the
// padded input [-1,5) they count 3, 3, 2 (the last hangs past the right padding); clipped to the input
// they hold rows {0,1}, {1,2,3}, {3}. Corner (2,2): only x[3][3] = 16, divisor 2*2 = 4 -> 4 with
// count_include_pad, 16 without. Centre (1,1): rows/cols 1..3 sum to 99, /9 = 11 either way.
TEST(AvgPool2d, CeilModeDivisorsMatchPyTorch) {
  Tensor x = arange_plane(4, 4, 1);
  Tensor y = avg_pool2d(x, {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  // PyTorch 1.13: F.avg_pool2d(arange(1,17).view(1,1,4,4), 3, 2, 1, ceil_mode=True),
  // then with count_include_pad=False.
  expect_near_all(y, {1.555556f, 3.333333f, 2.0f, 6.333333f, 11.0f, 6.0f, 4.5f, 7.5f, 4.0f}, 1e-5f,
                  "include pad");
  Tensor y2 = avg_pool2d(
      x, {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = false});
  expect_near_all(y2, {3.5f, 5.0f, 6.0f, 9.5f, 11.0f, 12.0f, 13.5f, 15.0f, 16.0f}, 1e-5f, "exclude pad");
}

TEST(AvgPool2d, Gradients) {
  Generator gen(22);
  for (bool include_pad : {true, false}) {
    AvgPool2d pool(
        {.kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = true, .count_include_pad = include_pad});
    EXPECT_GT(test::check_module_gradients(pool, test::random_tensor({2, 2, 4, 5}, gen)), 0);
  }
  AvgPool2d plain({.kernel_size = 2});
  EXPECT_GT(test::check_module_gradients(plain, test::random_tensor({1, 3, 4, 4}, gen)), 0);
}

TEST(AvgPool2d, RejectsBadShapesAndOptions) {
  EXPECT_THROW(avg_pool2d(Tensor::zeros({4, 4}), {.kernel_size = 2}), Error);
  EXPECT_THROW(avg_pool2d(Tensor::zeros({1, 1, 1, 1}), {.kernel_size = 2}), Error);
  EXPECT_THROW(AvgPool2d({.kernel_size = 2, .padding = 2}), Error);
  EXPECT_THROW(AvgPool2d({.kernel_size = 2, .stride = -1}), Error);
}

// 7 -> 3 bins: [floor(0), ceil(7/3)) = [0,3), [floor(7/3), ceil(14/3)) = [2,5), [floor(14/3), 7) = [4,7)
// (overlapping). On x = 0..48 (row-major 7x7) the mean of a bin is the value at its centre:
// rows 1, 3, 5 and cols 1, 3, 5 -> 7r + c: 8 10 12 / 22 24 26 / 36 38 40.
TEST(AdaptiveAvgPool2d, NonDivisibleSizes) {
  Tensor y = adaptive_avg_pool2d(arange_plane(7, 7, 0), 3, 3);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  expect_near_all(y, {8, 10, 12, 22, 24, 26, 36, 38, 40}, 1e-5f, "7->3");
  // 5 -> 2 rows: [0,3), [2,5) (centres 1 and 3); 5 -> 3 cols: [0,2), [1,4), [3,5) (centres 0.5, 2, 3.5).
  // On x = 0..24 (5x5): 5*r + c -> 5.5 7 8.5 / 15.5 17 18.5 (PyTorch 1.13 agrees).
  expect_near_all(adaptive_avg_pool2d(arange_plane(5, 5, 0), 2, 3), {5.5f, 7, 8.5f, 15.5f, 17, 18.5f}, 1e-5f,
                  "5->2x3");
  // Global pooling and upsampling (output larger than input: bins of one element, repeated).
  expect_near_all(adaptive_avg_pool2d(arange_plane(2, 2, 1), 1, 1), {2.5f}, 1e-6f, "global");
  expect_near_all(adaptive_avg_pool2d(arange_plane(1, 2, 1), 2, 3), {1, 1.5f, 2, 1, 1.5f, 2}, 1e-6f, "grow");
}

TEST(AdaptiveAvgPool2d, Gradients) {
  Generator gen(23);
  AdaptiveAvgPool2d pool({.output_h = 3, .output_w = 2});
  EXPECT_GT(test::check_module_gradients(pool, test::random_tensor({2, 2, 7, 5}, gen)), 0);
}

TEST(AdaptiveAvgPool2d, RejectsBadShapesAndOptions) {
  EXPECT_THROW(adaptive_avg_pool2d(Tensor::zeros({3, 4, 4}), 1, 1), Error);
  EXPECT_THROW(adaptive_avg_pool2d(Tensor::zeros({1, 3, 4, 4}), 0, 1), Error);
  EXPECT_THROW(AdaptiveAvgPool2d({.output_h = 1, .output_w = 0}), Error);
}
