// Winograd F(2x2,3x3) / F(4x4,3x3) (layers/conv2d_winograd.h) against the naive direct convolution
// in double on odd shapes, the input gradient through the same kernel, the dispatcher in
// conv2d.cpp, determinism, thread counts and the gradient checker through the Conv2d layer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "framework/dot_gemm.h"
#include "framework/error.h"
#include "framework/panel_gemm.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "error_testing.h"
#include "gradcheck.h"
#include "layers/conv2d.h"
#include "layers/conv2d_winograd.h"

using namespace inq;
using inq::test::expect_error;
using inq::test::random_tensor;

namespace {

// Restores the algorithm mode and the thread count when a test leaves.
struct ModeGuard {
  ModeGuard() : mode(conv2d_algorithm()), threads(get_num_threads()) {}
  ~ModeGuard() {
    set_conv2d_algorithm(mode);
    set_num_threads(threads);
  }
  Conv2dAlgorithm mode;
  int threads;
};

struct WCase {
  std::string name;
  Shape x, w;
  Size2 padding;
};

// Batch 1 and 3, channel counts that are not multiples of 16 (or of anything), odd and non-square
// images, images smaller than one tile, padding 0, 1, 2 and asymmetric.
std::vector<WCase> cases() {
  return {
      {"b1_c3_k5_7x5_pad1", {1, 3, 7, 5}, {5, 3, 3, 3}, 1},
      {"b3_c17_k19_9x13_pad1", {3, 17, 9, 13}, {19, 17, 3, 3}, 1},
      {"b3_c5_k7_11x6_pad0", {3, 5, 11, 6}, {7, 5, 3, 3}, 0},
      {"b2_c4_k3_3x3_pad0_single_output", {2, 4, 3, 3}, {3, 4, 3, 3}, 0},
      {"b3_c2_k4_2x3_pad1_smaller_than_a_tile", {3, 2, 2, 3}, {4, 2, 3, 3}, 1},
      {"b1_c6_k2_1x1_pad1", {1, 6, 1, 1}, {2, 6, 3, 3}, 1},
      {"b2_c9_k11_8x8_pad2", {2, 9, 8, 8}, {11, 9, 3, 3}, 2},
      {"b3_c33_k18_10x7_pad_1x0", {3, 33, 10, 7}, {18, 33, 3, 3}, {1, 0}},
      {"b1_c1_k1_5x9_pad1", {1, 1, 5, 9}, {1, 1, 3, 3}, 1},
      // Tile rows longer than one gathered run (7 tiles for F(4x4), 15 for F(2x2)), cut at the
      // right edge: the AVX-512 patch gather splits them.
      {"b2_c3_k4_5x67_pad2_long_tile_rows", {2, 3, 5, 67}, {4, 3, 3, 3}, 2},
      {"b1_c2_k3_4x40_pad1_long_tile_rows", {1, 2, 4, 40}, {3, 2, 3, 3}, 1},
  };
}

// Error bound. Each output is a sum of 9*C products; the naive reference sums them in double. The
// float kernel's error is a few float roundings of the largest intermediate values, which the
// transforms scale up by at most the norms of B, G, A (for F(4x4): the 5s and 8s in B and A, the
// filter transform's ~1/4 gains): so we bound it relative to S = sum |x| * |w| over the output's
// taps (the same convolution of |x| and |w|), not to |y|, which cancels. Measured worst |err| / S
// on these shapes (printed by the forward test): F(2x2) 1.4e-7 typically, 1.0e-6 on the padding-2
// case's corner outputs (few taps, small S); F(4x4) 0.9e-6 to 1.5e-6. Tolerances 5e-6 and 1e-5
// leave a 5-7x margin yet fail on any wrong transform entry or misplaced tile (errors of order S).
double tolerance(int m) { return m == 2 ? 5e-6 : 1e-5; }

struct Check {
  double worst = 0.0;  // max |got - want| / scale
  int bad = 0;
};

Check compare(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& scale,
              double tol, const std::string& what) {
  Check c;
  // An entry whose taps fall mostly in the padding has a small S (0 when all do: an exact zero),
  // yet the transformed tile sums it comes from carry the magnitudes of the tile's other outputs
  // and cancel only to float precision (measured: 4e-8 absolute on such a zero of a dw whose other
  // entries are ~1). A tenth of the tensor's largest S bounds those magnitudes.
  double largest = 0.0;
  for (float v : scale) largest = std::max(largest, static_cast<double>(v));
  for (size_t i = 0; i < want.size(); ++i) {
    const double s = std::max({0.1 * largest, 1e-30, static_cast<double>(scale[i])});
    const double e = std::fabs(static_cast<double>(got[i]) - want[i]) / s;
    c.worst = std::max(c.worst, e);
    if (!(e <= tol) && ++c.bad <= 5)
      ADD_FAILURE() << what << " at flat index " << i << ": got " << got[i] << ", want " << want[i]
                    << ", scale " << s;
  }
  EXPECT_EQ(c.bad, 0) << what;
  return c;
}

std::vector<float> abs_of(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  for (float& e : v) e = std::fabs(e);
  return v;
}

}  // namespace

TEST(WinogradKernels, ForwardMatchesNaiveOnOddShapes) {
  ModeGuard guard;
  set_num_threads(2);
  Generator gen(21);
  for (const WCase& c : cases()) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, 1, c.padding);
    ASSERT_TRUE(winograd_supported(g)) << c.name;
    Tensor x = random_tensor(c.x, gen), w = random_tensor(c.w, gen), b = random_tensor({c.w[0]}, gen);
    std::vector<float> want(shape_numel(g.output_shape())), scale(want.size());
    conv2d_forward_naive(want.data(), x.data(), w.data(), b.data(), g);
    const std::vector<float> ax = abs_of(x), aw = abs_of(w);
    conv2d_forward_naive(scale.data(), ax.data(), aw.data(), nullptr, g);
    for (int m : {2, 4})
      for (int64_t tb : {int64_t(16), int64_t(0)}) {  // several blocks with a partial last one; auto
        std::vector<float> y(want.size(), std::nanf(""));
        winograd_conv2d_forward(y.data(), x.data(), w.data(), b.data(), g, {.m = m, .block_tiles = tb});
        const Check r = compare(y, want, scale, tolerance(m), c.name + " m=" + std::to_string(m));
        std::cout << c.name << " m=" << m << " tb=" << tb << ": worst |err|/S " << r.worst << "\n";
      }
  }
}

// Filters transformed once (winograd_transform_filters, what a frozen inference layer keeps) give
// exactly the output of the forward that transforms them itself, on every odd shape, both tiles,
// private and shared blocks, 1 and 2 threads; the input gradient refuses them.
TEST(WinogradKernels, PretransformedFiltersGiveBitIdenticalOutputs) {
  ModeGuard guard;
  Generator gen(23);
  for (const WCase& c : cases()) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, 1, c.padding);
    Tensor x = random_tensor(c.x, gen), w = random_tensor(c.w, gen), b = random_tensor({c.w[0]}, gen);
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (int m : {2, 4}) {
        std::vector<float> U(static_cast<size_t>(winograd_filter_floats(g, m)), std::nanf(""));
        winograd_transform_filters(U.data(), w.data(), g, m);
        for (int64_t tb : {int64_t(16), int64_t(0)}) {
          const size_t n = static_cast<size_t>(shape_numel(g.output_shape()));
          std::vector<float> want(n), got(n, std::nanf(""));
          winograd_conv2d_forward(want.data(), x.data(), w.data(), b.data(), g, {.m = m, .block_tiles = tb});
          winograd_conv2d_forward(got.data(), x.data(), nullptr, b.data(), g,
                                  {.m = m, .block_tiles = tb, .filters = U.data()});
          EXPECT_EQ(0, std::memcmp(got.data(), want.data(), n * sizeof(float)))
              << c.name << " m=" << m << " tb=" << tb << " threads=" << threads;
        }
      }
    }
  }
  const Conv2dGeometry g = Conv2dGeometry::make({1, 4, 6, 6}, {4, 4, 3, 3}, 1, 1);
  std::vector<float> U(static_cast<size_t>(winograd_filter_floats(g, 4))), buf(4 * 36);
  expect_error(
      [&] { winograd_conv2d_backward_data(buf.data(), buf.data(), buf.data(), g, {.filters = U.data()}, false); },
               {"transformed filters", "input gradient"});
  const Conv2dGeometry strided = Conv2dGeometry::make({1, 4, 6, 6}, {4, 4, 3, 3}, 2, 1);
  expect_error([&] { winograd_transform_filters(U.data(), buf.data(), strided, 4); }, {"stride 1"});
}

// Filter panels (winograd_pack_filter_panels + this file's GEMM kernel instead of OpenBLAS) against
// the naive convolution on every odd shape (output channels that leave a partial panel of 14: 1, 2,
// 3, 4, 5, 7, 11, 18, 19), both tiles, 16-tile blocks and the automatic ones (one and two vectors of
// tile columns), and bit-identical at 1 and 2 threads.
TEST(WinogradKernels, FilterPanelsMatchNaiveAndDoNotDependOnThreads) {
  if (!winograd_filter_panels_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  ModeGuard guard;
  Generator gen(29);
  for (const WCase& c : cases()) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, 1, c.padding);
    Tensor x = random_tensor(c.x, gen), w = random_tensor(c.w, gen), b = random_tensor({c.w[0]}, gen);
    std::vector<float> want(shape_numel(g.output_shape())), scale(want.size());
    conv2d_forward_naive(want.data(), x.data(), w.data(), b.data(), g);
    const std::vector<float> ax = abs_of(x), aw = abs_of(w);
    conv2d_forward_naive(scale.data(), ax.data(), aw.data(), nullptr, g);
    for (int m : {2, 4}) {
      std::vector<float> U(static_cast<size_t>(winograd_filter_floats(g, m)));
      winograd_transform_filters(U.data(), w.data(), g, m);
      std::vector<float> panels(static_cast<size_t>(winograd_filter_panel_floats(g, m)), std::nanf(""));
      winograd_pack_filter_panels(panels.data(), U.data(), g, m);
      for (int64_t tb : {int64_t(16), int64_t(0)}) {
        std::vector<float> first;
        for (int threads : {1, 2}) {
          set_num_threads(threads);
          std::vector<float> y(want.size(), std::nanf(""));
          winograd_conv2d_forward(y.data(), x.data(), nullptr, b.data(), g,
                                  {.m = m, .block_tiles = tb, .filter_panels = panels.data()});
          compare(y, want, scale, tolerance(m), c.name + " panels m=" + std::to_string(m));
          if (first.empty()) {
            first = y;
          } else {
            EXPECT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float))) << c.name << " m=" << m;
          }
        }
      }
    }
  }
}

// The streamed forward (filters handed over a panel of output channels at a time, as a packed layer
// decodes them) gives the same bits as the forward on the whole weight's filter panels, at 1, 2 and
// 3 threads (3 splits a panel's tiles between threads), on every odd shape, on one with several
// blocks of tiles per panel and on one whose tiles go in several passes; the callback is asked for
// panels inside the layer only.
TEST(WinogradKernels, StreamedFiltersGiveTheFilterPanelsBits) {
  if (!winograd_filter_panels_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  ModeGuard guard;
  Generator gen(37);
  std::vector<WCase> shapes = cases();
  shapes.push_back({"b2_c5_k16_30x34_pad1_many_tiles", {2, 5, 30, 34}, {16, 5, 3, 3}, 1});
  // V holds at most 2^18 floats of tiles at a time (at least 128): 2 passes with F(4x4), 4 with F(2x2).
  shapes.push_back({"b3_c460_k3_26x26_pad1_several_passes", {3, 460, 26, 26}, {3, 460, 3, 3}, 1});
  for (const WCase& c : shapes) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, 1, c.padding);
    Tensor x = random_tensor(c.x, gen), w = random_tensor(c.w, gen), b = random_tensor({c.w[0]}, gen);
    std::vector<float> want_naive(shape_numel(g.output_shape())), scale(want_naive.size());
    conv2d_forward_naive(want_naive.data(), x.data(), w.data(), b.data(), g);
    const std::vector<float> ax = abs_of(x), aw = abs_of(w);
    conv2d_forward_naive(scale.data(), ax.data(), aw.data(), nullptr, g);
    const int64_t filter_floats = g.C * 9;
    const WinogradFilterPanel panel = [&](int64_t p, float* out) {
      EXPECT_TRUE(p >= 0 && p < panel_count(g.K)) << c.name << " panel " << p;
      const int64_t rows = std::min(kPanelRows, g.K - p * kPanelRows);
      pack_panels(out, w.data() + p * kPanelRows * filter_floats, filter_floats, rows, filter_floats);
    };
    for (int m : {2, 4}) {
      std::vector<float> U(static_cast<size_t>(winograd_filter_floats(g, m)));
      winograd_transform_filters(U.data(), w.data(), g, m);
      std::vector<float> panels(static_cast<size_t>(winograd_filter_panel_floats(g, m)));
      winograd_pack_filter_panels(panels.data(), U.data(), g, m);
      std::vector<float> want(want_naive.size(), std::nanf(""));
      winograd_conv2d_forward(want.data(), x.data(), nullptr, b.data(), g, {.m = m, .filter_panels = panels.data()});
      for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        std::vector<float> y(want.size(), std::nanf(""));
        winograd_conv2d_forward_streamed(y.data(), x.data(), panel, b.data(), g, m);
        EXPECT_EQ(0, std::memcmp(want.data(), y.data(), y.size() * sizeof(float)))
            << c.name << " m=" << m << " threads=" << threads;
        compare(y, want_naive, scale, tolerance(m), c.name + " streamed m=" + std::to_string(m));
      }
    }
  }
  const Conv2dGeometry strided = Conv2dGeometry::make({1, 2, 8, 8}, {3, 2, 3, 3}, 2, 1);
  std::vector<float> y(shape_numel(strided.output_shape()));
  expect_error([&] { winograd_conv2d_forward_streamed(y.data(), y.data(), nullptr, nullptr, strided, 4); },
               {"stride 1"});
}

TEST(WinogradKernels, BackwardDataMatchesNaiveAndAccumulates) {
  ModeGuard guard;
  set_num_threads(2);
  Generator gen(22);
  for (const WCase& c : cases()) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, 1, c.padding);
    Tensor dy = random_tensor(g.output_shape(), gen), w = random_tensor(c.w, gen);
    std::vector<float> want(shape_numel(g.input_shape())), scale(want.size());
    conv2d_backward_data_naive(want.data(), dy.data(), w.data(), g);
    const std::vector<float> ady = abs_of(dy), aw = abs_of(w);
    conv2d_backward_data_naive(scale.data(), ady.data(), aw.data(), g);
    for (int m : {2, 4}) {
      std::vector<float> dx(want.size(), std::nanf(""));
      winograd_conv2d_backward_data(dx.data(), dy.data(), w.data(), g, {.m = m, .block_tiles = 16}, false);
      compare(dx, want, scale, tolerance(m), c.name + " dx m=" + std::to_string(m));
      // Accumulating adds onto what is there: start from 1 and compare dx - 1.
      std::vector<float> acc(want.size(), 1.0f);
      winograd_conv2d_backward_data(acc.data(), dy.data(), w.data(), g, {.m = m}, true);
      for (float& v : acc) v -= 1.0f;
      // One more rounding (of v + 1) per entry: up to 2^-24 * (1 + |v|) more.
      std::vector<float> scale1(scale);
      for (float& s : scale1) s += 1.0f;
      compare(acc, want, scale1, tolerance(m), c.name + " dx accumulate m=" + std::to_string(m));
    }
  }
}

TEST(WinogradKernels, BackwardWeightMatchesNaiveAndAccumulates) {
  // Same bound as above, S = sum |dy| * |x| over each weight's taps: each dw entry sums
  // N * OH * OW products, the GEMMs sum transformed ones in float. Measured worst |err| / S is
  // printed; tolerances as for the forward.
  ModeGuard guard;
  set_num_threads(2);
  Generator gen(25);
  for (const WCase& c : cases()) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, 1, c.padding);
    Tensor x = random_tensor(c.x, gen), dy = random_tensor(g.output_shape(), gen);
    std::vector<float> want(shape_numel(g.weight_shape())), scale(want.size());
    conv2d_backward_weight_naive(want.data(), x.data(), dy.data(), g);
    const std::vector<float> ax = abs_of(x), ady = abs_of(dy);
    conv2d_backward_weight_naive(scale.data(), ax.data(), ady.data(), g);
    for (int m : {2, 4}) {
      // Shared blocks (1 partition) and private partitions (3: more than the chunks on the small
      // shapes, which clamps them), each with several blocks (16 tiles) and the default size.
      for (int64_t parts : {int64_t(1), int64_t(3)})
        for (int64_t tb : {int64_t(16), int64_t(0)}) {
          std::vector<float> dw(want.size(), std::nanf(""));
          winograd_conv2d_backward_weight(dw.data(), x.data(), dy.data(), g,
                                          {.m = m, .block_tiles = tb, .weight_partitions = parts}, false);
          const std::string what = c.name + " dw m=" + std::to_string(m) + " parts=" + std::to_string(parts);
          const Check r = compare(dw, want, scale, tolerance(m), what);
          std::cout << what << " tb=" << tb << ": worst |err|/S " << r.worst << "\n";
        }
      for (int64_t parts : {int64_t(1), int64_t(3)}) {
        std::vector<float> acc(want.size(), 1.0f);
        winograd_conv2d_backward_weight(acc.data(), x.data(), dy.data(), g, {.m = m, .weight_partitions = parts}, true);
        for (float& v : acc) v -= 1.0f;
        std::vector<float> scale1(scale);
        for (float& s : scale1) s += 1.0f;
        compare(acc, want, scale1, tolerance(m),
                c.name + " dw accumulate m=" + std::to_string(m) + " parts=" + std::to_string(parts));
      }
    }
  }
}

TEST(WinogradKernels, RejectsGeometriesItDoesNotCover) {
  EXPECT_FALSE(winograd_supported(Conv2dGeometry::make({1, 4, 8, 8}, {4, 4, 3, 3}, 2, 1)));  // stride
  EXPECT_FALSE(winograd_supported(Conv2dGeometry::make({1, 4, 8, 8}, {4, 4, 3, 3}, 1, 2, 2)));  // dilation
  EXPECT_FALSE(winograd_supported(Conv2dGeometry::make({1, 4, 8, 8}, {4, 2, 3, 3}, 1, 1, 1, 2)));  // groups
  EXPECT_FALSE(winograd_supported(Conv2dGeometry::make({1, 4, 8, 8}, {4, 4, 1, 1})));  // 1x1
  EXPECT_FALSE(winograd_supported(Conv2dGeometry::make({1, 4, 8, 8}, {4, 4, 3, 5}, 1, 1)));  // non-square
  EXPECT_FALSE(winograd_supported(Conv2dGeometry::make({1, 4, 8, 8}, {4, 4, 3, 3}, 1, 3)));  // pad 3
  const Conv2dGeometry g = Conv2dGeometry::make({1, 4, 8, 8}, {4, 4, 3, 3}, 2, 1);
  std::vector<float> buf(1024);
  EXPECT_THROW(winograd_conv2d_forward(buf.data(), buf.data(), buf.data(), nullptr, g, {}), Error);
}

TEST(WinogradDispatch, ChoosesWinogradForWideLayersAndIm2colElsewhere) {
  ModeGuard guard;
  set_conv2d_algorithm(Conv2dAlgorithm::Auto);
  const auto plan = [](const Shape& x, const Shape& w, Size2 stride, Size2 pad,
                        Im2colKernels kernels = Im2colKernels::Plain) {
    return choose_conv2d_algorithm(Conv2dGeometry::make(x, w, stride, pad), false, true, kernels);
  };
  // ResNet-50's and ResNet-20's 3x3 stride-1 layers: Winograd.
  EXPECT_TRUE(plan({8, 64, 56, 56}, {64, 64, 3, 3}, 1, 1).winograd_forward);
  EXPECT_TRUE(plan({8, 512, 7, 7}, {512, 512, 3, 3}, 1, 1).winograd_data);
  EXPECT_EQ(plan({8, 512, 7, 7}, {512, 512, 3, 3}, 1, 1).tile, 4);
  EXPECT_TRUE(plan({128, 16, 28, 28}, {16, 16, 3, 3}, 1, 1).winograd_forward);
  // Where im2col's GEMMs run AVX-512 kernels (OpenBLAS's, or this build's panel and dot-product
  // kernels), layers of fewer than 64 F(4x4) tiles leave F(4x4): to F(2x2) from 128 of its tiles
  // (the weight gradient only on this build's kernels), else to im2col in all three directions.
  // 128 F(4x4) tiles (256c 14x14, batch 8) and ResNet-20's layers stay on F(4x4).
  for (Im2colKernels kernels : {Im2colKernels::OwnAvx512, Im2colKernels::BlasAvx512}) {
    for (int64_t batch : {8, 15}) {  // 32, 60 F(4x4) tiles; 128, 240 F(2x2) tiles
      const Conv2dPlan few = plan({batch, 512, 7, 7}, {512, 512, 3, 3}, 1, 1, kernels);
      EXPECT_TRUE(few.winograd_forward && few.winograd_data) << batch;
      EXPECT_EQ(few.winograd_weight, kernels == Im2colKernels::OwnAvx512) << batch;
      EXPECT_EQ(few.tile, 2) << batch;
    }
    const Conv2dPlan batch4 = plan({4, 512, 7, 7}, {512, 512, 3, 3}, 1, 1, kernels);  // 64 F(2x2) tiles
    EXPECT_FALSE(batch4.winograd_forward || batch4.winograd_data || batch4.winograd_weight);
    EXPECT_TRUE(plan({8, 160, 7, 7}, {320, 160, 3, 3}, 1, 1, kernels).winograd_forward);  // GoogLeNet's 5a
    const Conv2dPlan many = plan({16, 512, 7, 7}, {512, 512, 3, 3}, 1, 1, kernels);  // 64 F(4x4) tiles
    EXPECT_TRUE(many.winograd_data && many.winograd_weight);
    EXPECT_EQ(many.tile, 4);
    EXPECT_EQ(plan({8, 256, 14, 14}, {256, 256, 3, 3}, 1, 1, kernels).tile, 4);
    EXPECT_TRUE(plan({8, 256, 14, 14}, {256, 256, 3, 3}, 1, 1, kernels).winograd_forward);
    EXPECT_TRUE(plan({128, 64, 7, 7}, {64, 64, 3, 3}, 1, 1, kernels).winograd_weight);
  }
  // By default: OpenBLAS's AVX-512 kernels first, else this build's own.
  const Im2colKernels here = im2col_kernels();
  EXPECT_EQ(here == Im2colKernels::BlasAvx512, sgemm_runs_avx512());
  EXPECT_EQ(here == Im2colKernels::OwnAvx512, !sgemm_runs_avx512() && panel_gemm_supported());
  EXPECT_EQ(choose_conv2d_algorithm(Conv2dGeometry::make({8, 512, 7, 7}, {512, 512, 3, 3}, 1, 1)).tile,
            here == Im2colKernels::Plain ? 4 : 2);
  // Kept filters (inference) are not affected.
  EXPECT_EQ(choose_conv2d_algorithm(Conv2dGeometry::make({8, 512, 7, 7}, {512, 512, 3, 3}, 1, 1), true, true,
                                    Im2colKernels::BlasAvx512)
                .tile,
            4);
  // The 1 -> 16 stem, fewer than 16 channels, batch-1 7x7 (Winograd would multiply more), stride
  // 2, 1x1: im2col.
  EXPECT_FALSE(plan({128, 1, 28, 28}, {16, 1, 3, 3}, 1, 1).winograd_forward);
  EXPECT_FALSE(plan({128, 8, 28, 28}, {16, 8, 3, 3}, 1, 1).winograd_forward);
  EXPECT_FALSE(plan({1, 512, 7, 7}, {512, 512, 3, 3}, 1, 1).winograd_forward);
  // ... unless the caller keeps the transformed filters: then F(2x2) (16 * 16 products against 9 * 49),
  // forward only; still not on a 4x4 image (4 tiles padded to 16 lanes: 256 products against 144).
  const auto kept = [](const Shape& x, const Shape& w) {
    return choose_conv2d_algorithm(Conv2dGeometry::make(x, w, 1, 1), /*filters_kept=*/true);
  };
  EXPECT_TRUE(kept({1, 512, 7, 7}, {512, 512, 3, 3}).winograd_forward);
  EXPECT_EQ(kept({1, 512, 7, 7}, {512, 512, 3, 3}).tile, 2);
  EXPECT_FALSE(kept({1, 512, 7, 7}, {512, 512, 3, 3}).winograd_data);
  EXPECT_FALSE(kept({1, 512, 4, 4}, {512, 512, 3, 3}).winograd_forward);
  EXPECT_EQ(kept({8, 512, 7, 7}, {512, 512, 3, 3}).tile, 4);  // F(4x4) wherever it pays
  EXPECT_TRUE(plan({1, 64, 56, 56}, {64, 64, 3, 3}, 1, 1).winograd_forward);
  EXPECT_FALSE(plan({8, 64, 56, 56}, {64, 64, 3, 3}, 2, 1).winograd_forward);
  EXPECT_FALSE(plan({8, 64, 56, 56}, {256, 64, 1, 1}, 1, 0).winograd_forward);
  // Forcing.
  set_conv2d_algorithm(Conv2dAlgorithm::Im2col);
  EXPECT_FALSE(plan({8, 64, 56, 56}, {64, 64, 3, 3}, 1, 1).winograd_forward);
  EXPECT_FALSE(plan({8, 64, 56, 56}, {64, 64, 3, 3}, 1, 1).winograd_data);
  set_conv2d_algorithm(Conv2dAlgorithm::Winograd);
  EXPECT_TRUE(plan({128, 1, 28, 28}, {16, 1, 3, 3}, 1, 1).winograd_forward);
  EXPECT_FALSE(plan({8, 64, 56, 56}, {64, 64, 3, 3}, 2, 1).winograd_forward);  // not applicable
}

TEST(WinogradDispatch, Conv2dKernelsRunThePathTheDispatcherChose) {
  // conv2d_forward / conv2d_backward under Auto give exactly the Winograd kernel's bits on a
  // Winograd shape, and exactly the im2col path's bits (forced) where it chose im2col; the two
  // paths' results differ in the last bits, so this tells which one ran.
  ModeGuard guard;
  set_num_threads(2);
  Generator gen(23);
  const Conv2dGeometry g = Conv2dGeometry::make({3, 40, 12, 10}, {36, 40, 3, 3}, 1, 1);
  Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
  Tensor b = random_tensor({g.K}, gen), dy = random_tensor(g.output_shape(), gen);
  const Conv2dPlan plan = (set_conv2d_algorithm(Conv2dAlgorithm::Auto), choose_conv2d_algorithm(g));
  ASSERT_TRUE(plan.winograd_forward && plan.winograd_data && plan.winograd_weight);
  const size_t ny = static_cast<size_t>(shape_numel(g.output_shape()));
  const size_t nx = static_cast<size_t>(shape_numel(g.input_shape()));
  const size_t nw = static_cast<size_t>(shape_numel(g.weight_shape()));
  std::vector<float> y_auto(ny), y_wino(ny), y_im2col(ny), dx_auto(nx), dx_wino(nx), dx_im2col(nx);
  std::vector<float> dw_auto(nw), dw_wino(nw), dw_im2col(nw);
  conv2d_forward(y_auto.data(), x.data(), w.data(), b.data(), g);
  conv2d_backward(dx_auto.data(), dw_auto.data(), nullptr, dy.data(), x.data(), w.data(), g, false);
  winograd_conv2d_forward(y_wino.data(), x.data(), w.data(), b.data(), g, {.m = plan.tile});
  winograd_conv2d_backward_data(dx_wino.data(), dy.data(), w.data(), g, {.m = plan.tile}, false);
  winograd_conv2d_backward_weight(dw_wino.data(), x.data(), dy.data(), g, {.m = plan.tile}, false);
  set_conv2d_algorithm(Conv2dAlgorithm::Im2col);
  conv2d_forward(y_im2col.data(), x.data(), w.data(), b.data(), g);
  conv2d_backward(dx_im2col.data(), dw_im2col.data(), nullptr, dy.data(), x.data(), w.data(), g, false);
  EXPECT_EQ(y_auto, y_wino);
  EXPECT_EQ(dx_auto, dx_wino);
  EXPECT_EQ(dw_auto, dw_wino);
  EXPECT_NE(y_auto, y_im2col);
  EXPECT_NE(dx_auto, dx_im2col);
  EXPECT_NE(dw_auto, dw_im2col);
  // Between 16 and 32 channels the weight gradient runs Winograd only on the AVX-512 GEMM kernel
  // (framework/dot_gemm.h); with sgemm it stays on im2col (the measured break-even).
  set_conv2d_algorithm(Conv2dAlgorithm::Auto);
  const Conv2dPlan narrow = choose_conv2d_algorithm(Conv2dGeometry::make({128, 16, 28, 28}, {16, 16, 3, 3}, 1, 1));
  EXPECT_TRUE(narrow.winograd_forward && narrow.winograd_data);
  EXPECT_EQ(narrow.winograd_weight, dot_gemm_supported());
  const Conv2dPlan narrower = choose_conv2d_algorithm(Conv2dGeometry::make({128, 15, 28, 28}, {16, 15, 3, 3}, 1, 1));
  EXPECT_FALSE(narrower.winograd_weight);
}

TEST(WinogradDispatch, ForcedWinogradFallsBackToIm2colWhereItDoesNotApply) {
  // Stride, dilation, groups, 1x1, a non-square kernel and padding 3: Winograd forced, every pass
  // must run exactly the im2col path (bit-identical to Im2col forced).
  ModeGuard guard;
  set_num_threads(2);
  Generator gen(26);
  struct Odd {
    Shape x, w;
    Size2 stride, padding, dilation;
    int64_t groups;
  };
  for (const Odd& o : std::vector<Odd>{{{3, 5, 9, 8}, {6, 5, 3, 3}, 2, 1, 1, 1},
                                       {{2, 4, 9, 10}, {3, 4, 3, 3}, 1, 2, 2, 1},
                                       {{2, 4, 7, 6}, {6, 2, 3, 3}, 1, 1, 1, 2},
                                       {{3, 5, 4, 6}, {7, 5, 1, 1}, 1, 0, 1, 1},
                                       {{2, 3, 6, 7}, {4, 3, 3, 5}, 1, {1, 2}, 1, 1},
                                       {{1, 2, 5, 5}, {3, 2, 3, 3}, 1, 3, 1, 1}}) {
    const Conv2dGeometry g = Conv2dGeometry::make(o.x, o.w, o.stride, o.padding, o.dilation, o.groups);
    ASSERT_FALSE(winograd_supported(g)) << g.str();
    Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
    Tensor b = random_tensor({g.K}, gen), dy = random_tensor(g.output_shape(), gen);
    std::vector<float> y[2], dx[2], dw[2];
    const Conv2dAlgorithm modes[2] = {Conv2dAlgorithm::Winograd, Conv2dAlgorithm::Im2col};
    for (int i = 0; i < 2; ++i) {
      set_conv2d_algorithm(modes[i]);
      y[i].resize(shape_numel(g.output_shape()));
      dx[i].resize(shape_numel(g.input_shape()));
      dw[i].resize(shape_numel(g.weight_shape()));
      conv2d_forward(y[i].data(), x.data(), w.data(), b.data(), g);
      conv2d_backward(dx[i].data(), dw[i].data(), nullptr, dy.data(), x.data(), w.data(), g, false);
    }
    EXPECT_EQ(y[0], y[1]) << g.str();
    EXPECT_EQ(dx[0], dx[1]) << g.str();
    EXPECT_EQ(dw[0], dw[1]) << g.str();
  }
}

TEST(WinogradKernels, DeterministicAndIndependentOfTheThreadCount) {
  // The threads split channels, transform points and output channels, never a sum (the weight
  // gradient sums blocks in block order, and private partitions' sums in partition order), so
  // every value is computed the same way: bit-identical across runs and between 1, 2 and 3
  // threads. 5 images of 15x14: 80 tiles; forward and input gradient at 16 per block (5 blocks:
  // private blocks at 2 threads, shared at 1), the weight gradient at 48 per block (it sums two
  // blocks) on shared blocks, and on 2 and 3 private partitions of 16-tile blocks (3 threads on 2
  // partitions leave one idle).
  ModeGuard guard;
  Generator gen(24);
  const Conv2dGeometry g = Conv2dGeometry::make({5, 40, 15, 14}, {36, 40, 3, 3}, 1, 1);
  Tensor x = random_tensor(g.input_shape(), gen), w = random_tensor(g.weight_shape(), gen);
  Tensor b = random_tensor({g.K}, gen), dy = random_tensor(g.output_shape(), gen);
  std::vector<std::vector<float>> ys, dxs, dws, dws2, dws3;
  for (int threads : {2, 2, 1, 3}) {
    set_num_threads(threads);
    std::vector<float> y(shape_numel(g.output_shape())), dx(shape_numel(g.input_shape()));
    winograd_conv2d_forward(y.data(), x.data(), w.data(), b.data(), g, {.m = 4, .block_tiles = 16});
    winograd_conv2d_backward_data(dx.data(), dy.data(), w.data(), g, {.m = 4, .block_tiles = 16}, false);
    std::vector<float> dw(shape_numel(g.weight_shape())), dw2(dw.size()), dw3(dw.size());
    winograd_conv2d_backward_weight(dw.data(), x.data(), dy.data(), g,
                                    {.m = 4, .block_tiles = 48, .weight_partitions = 1}, false);
    winograd_conv2d_backward_weight(dw2.data(), x.data(), dy.data(), g,
                                    {.m = 4, .block_tiles = 16, .weight_partitions = 2}, false);
    winograd_conv2d_backward_weight(dw3.data(), x.data(), dy.data(), g,
                                    {.m = 4, .block_tiles = 16, .weight_partitions = 3}, false);
    ys.push_back(y);
    dxs.push_back(dx);
    dws.push_back(dw);
    dws2.push_back(dw2);
    dws3.push_back(dw3);
  }
  for (size_t run = 1; run < ys.size(); ++run) {
    EXPECT_EQ(ys[0], ys[run]) << "run " << run;
    EXPECT_EQ(dxs[0], dxs[run]) << "run " << run;
    EXPECT_EQ(dws[0], dws[run]) << "run " << run;
    EXPECT_EQ(dws2[0], dws2[run]) << "run " << run;
    EXPECT_EQ(dws3[0], dws3[run]) << "run " << run;
  }
  // The partitions change the order of the sum, so the bits, but not the value.
  EXPECT_NE(dws[0], dws3[0]);
}

TEST(WinogradKernels, WeightPartitionsFollowTheGeometryAlone) {
  // ResNet-20's 3x3 layers at batch 128 (F(4x4)): 6272, 2048 and 512 tiles -> 8, 8 and 2 partitions;
  // batch 1 still 2; a layer with more than 64 x 64 filters keeps the shared blocks.
  EXPECT_EQ(winograd_weight_partitions(Conv2dGeometry::make({128, 16, 28, 28}, {16, 16, 3, 3}, 1, 1), 4), 8);
  EXPECT_EQ(winograd_weight_partitions(Conv2dGeometry::make({128, 32, 14, 14}, {32, 32, 3, 3}, 1, 1), 4), 8);
  EXPECT_EQ(winograd_weight_partitions(Conv2dGeometry::make({128, 64, 7, 7}, {64, 64, 3, 3}, 1, 1), 4), 2);
  EXPECT_EQ(winograd_weight_partitions(Conv2dGeometry::make({1, 64, 7, 7}, {64, 64, 3, 3}, 1, 1), 4), 2);
  EXPECT_EQ(winograd_weight_partitions(Conv2dGeometry::make({8, 128, 28, 28}, {128, 128, 3, 3}, 1, 1), 4), 1);
  Generator gen(3);
  const Conv2dGeometry g = Conv2dGeometry::make({1, 2, 4, 4}, {2, 2, 3, 3}, 1, 1);
  Tensor x = random_tensor(g.input_shape(), gen), dy = random_tensor(g.output_shape(), gen);
  std::vector<float> dw(shape_numel(g.weight_shape()));
  EXPECT_THROW(winograd_conv2d_backward_weight(dw.data(), x.data(), dy.data(), g, {.m = 4, .weight_partitions = -1},
                                               false),
               Error);
}

TEST(WinogradModule, GradientCheckThroughConv2dOnWinogradShapes) {
  ModeGuard guard;
  set_conv2d_algorithm(Conv2dAlgorithm::Winograd);
  seed_all(31);
  Generator gen(32);
  const std::vector<std::pair<Conv2dOptions, Shape>> configs = {
      {{.in_channels = 3, .out_channels = 5, .kernel_size = 3, .padding = 1}, {2, 3, 6, 5}},
      {{.in_channels = 2, .out_channels = 3, .kernel_size = 3, .padding = 0, .bias = false}, {3, 2, 7, 4}},
  };
  for (const auto& [opt, shape] : configs) {
    Conv2d conv(opt);
    ASSERT_TRUE(choose_conv2d_algorithm(Conv2dGeometry::make(shape, conv.weight.shape(), 1, opt.padding))
                    .winograd_forward);
    Tensor x = random_tensor(shape, gen);
    EXPECT_GT(test::check_module_gradients(conv, x), 0);
  }
}
