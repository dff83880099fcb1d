// layers/conv2d_rows.h: the phase planes name the lowered matrix im2col would write (every row
// start of the table, checked against im2col on odd geometries), and the in-place weight gradient
// matches the naive one (double sums) with stride, padding, dilation, non-square kernels, output
// channels not a multiple of the 4-channel block, C*R*S not a multiple of the 6-tap block, output
// rows shorter than a vector and with a masked tail, batch 1 and several; written or accumulated;
// the same bits at 1, 2 and 3 threads. conv2d_backward routes a stem to it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "framework/dot_gemm.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "gradcheck.h"
#include "layers/conv2d.h"
#include "layers/conv2d_rows.h"
#include "layers/conv2d_winograd.h"

using namespace inq;
using inq::test::random_tensor;

namespace {

struct RowsCase {
  std::string name;
  Shape x, w;
  Size2 stride, padding, dilation;
};

const std::vector<RowsCase>& cases() {
  static const std::vector<RowsCase> all = {
      {"7x7 stride 2 pad 3 (a stem), 50 columns", {2, 3, 28, 99}, {17, 3, 7, 7}, 2, 3, 1},
      {"11x11 stride 4 pad 2, batch 1", {1, 3, 40, 70}, {6, 3, 11, 11}, 4, 2, 1},
      {"3x3 stride 1, 5 columns", {3, 5, 6, 5}, {9, 5, 3, 3}, 1, 1, 1},
      {"non-square, stride 3, dilation 2", {1, 2, 31, 160}, {5, 2, 2, 4}, {3, 3}, {1, 2}, {2, 2}},
      {"1x1 stride 2, no padding", {2, 7, 9, 40}, {3, 7, 1, 1}, 2, 0, 1},
  };
  return all;
}

}  // namespace

TEST(Conv2dRows, PhasePlanesNameTheLoweredMatrix) {
  Generator gen(3);
  for (const RowsCase& c : cases()) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, c.stride, c.padding, c.dilation);
    const Tensor x = random_tensor(c.x, gen);
    const int64_t inner = g.col_rows(), P = g.output_pixels();
    std::vector<float> col(static_cast<size_t>(inner * P));
    im2col(col.data(), x.data(), 1, g);  // image 0
    const PhasePlanes layout = PhasePlanes::of(g);
    std::vector<float> planes(static_cast<size_t>(layout.image_floats()), std::nanf(""));
    build_phase_rows(planes.data(), x.data(), g, layout, 0, layout.count * layout.rows);
    std::vector<const float*> table(static_cast<size_t>(inner));
    phase_row_table(table.data(), planes.data(), g, layout);
    for (int64_t j = 0; j < inner; ++j)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow)
          ASSERT_EQ(table[static_cast<size_t>(j)][oh * g.stride.h * layout.width + ow], col[j * P + oh * g.OW + ow])
              << c.name << " row " << j << " at (" << oh << ", " << ow << ")";
  }
}

TEST(Conv2dRows, WeightGradientMatchesNaive) {
  if (!dot_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  const int saved_threads = get_num_threads();
  Generator gen(5);
  for (const RowsCase& c : cases()) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, c.stride, c.padding, c.dilation);
    const Tensor x = random_tensor(c.x, gen), dy = random_tensor(g.output_shape(), gen);
    const Tensor start = random_tensor(c.w, gen);
    const int64_t count = shape_numel(c.w);
    std::vector<float> want(static_cast<size_t>(count)), scale(want.size());
    conv2d_backward_weight_naive(want.data(), x.data(), dy.data(), g);
    std::vector<float> ax(static_cast<size_t>(x.numel())), ady(static_cast<size_t>(dy.numel()));
    for (size_t i = 0; i < ax.size(); ++i) ax[i] = std::fabs(x.data()[i]);
    for (size_t i = 0; i < ady.size(); ++i) ady[i] = std::fabs(dy.data()[i]);
    conv2d_backward_weight_naive(scale.data(), ax.data(), ady.data(), g);
    const double terms = static_cast<double>(g.N * g.output_pixels());
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      std::vector<float> dw(want.size(), std::nanf(""));
      conv2d_backward_weight_rows(dw.data(), x.data(), dy.data(), g, /*accumulate=*/false);
      for (size_t i = 0; i < dw.size(); ++i)
        ASSERT_NEAR(dw[i], want[i], 1e-6 + terms * 6e-8 * scale[i]) << c.name << " at " << i;
      if (first.empty()) {
        first = dw;
      } else {
        EXPECT_EQ(0, std::memcmp(first.data(), dw.data(), dw.size() * sizeof(float))) << c.name << ", " << threads;
      }
      // Accumulated: start + the written result, rounded once per output.
      std::vector<float> acc(start.data(), start.data() + count);
      conv2d_backward_weight_rows(acc.data(), x.data(), dy.data(), g, /*accumulate=*/true);
      for (size_t i = 0; i < acc.size(); ++i) ASSERT_EQ(acc[i], start.data()[i] + dw[i]) << c.name << " at " << i;
    }
  }
  set_num_threads(saved_threads);
}

TEST(Conv2dRows, BackwardRoutesAStemHereAndMatchesNaive) {
  if (!dot_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  const RowsCase& c = cases()[0];
  const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, c.stride, c.padding, c.dilation);
  ASSERT_TRUE(conv2d_weight_grad_rows_pays(g));
  Generator gen(9);
  const Tensor x = random_tensor(c.x, gen), w = random_tensor(c.w, gen), dy = random_tensor(g.output_shape(), gen);
  std::vector<float> dw(static_cast<size_t>(w.numel())), direct(dw.size());
  conv2d_backward(nullptr, dw.data(), nullptr, dy.data(), x.data(), w.data(), g, /*accumulate=*/false);
  conv2d_backward_weight_rows(direct.data(), x.data(), dy.data(), g, /*accumulate=*/false);
  EXPECT_EQ(0, std::memcmp(dw.data(), direct.data(), dw.size() * sizeof(float)));
  // And the forward's in-place route gives the naive convolution.
  std::vector<float> y(static_cast<size_t>(dy.numel())), want(y.size());
  conv2d_forward(y.data(), x.data(), w.data(), nullptr, g);
  conv2d_forward_naive(want.data(), x.data(), w.data(), nullptr, g);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], want[i], 1e-3) << i;
}
