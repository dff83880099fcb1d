// layers/conv2d_panels.h against the naive convolution (double sums) on every lowering path: a 1x1
// layer multiplying the image itself (batch 1 and large images) or small images side by side,
// im2col chunks of several images, bands of output rows of a large image, and the input multiplied
// in place through a table of padded rows (forced on every case, and chosen automatically for a
// stem); with stride, padding, dilation, non-square kernels and images, channel counts that are not
// multiples of the 14-row panel, batch 1 and several, with and without bias; the same bits from
// both lowerings, at 1, 2 and 3 threads (with images shared out between threads or each image's
// GEMM shared) and with panels made on demand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "framework/error.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "gradcheck.h"
#include "layers/conv2d_panels.h"
#include "layers/conv2d_winograd.h"

using namespace inq;
using inq::test::random_tensor;

namespace {

struct PCase {
  std::string name;
  Shape x, w;
  Size2 stride, padding, dilation;
};

std::vector<float> abs_of(const Tensor& t) {
  std::vector<float> a(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) a[static_cast<size_t>(i)] = std::fabs(t.data()[i]);
  return a;
}

}  // namespace

TEST(Conv2dPanels, MatchesNaiveOnEveryLoweringPath) {
  if (!panel_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  const int saved_threads = get_num_threads();
  const std::vector<PCase> cases = {
      {"1x1 batch 1 (the image is B)", {1, 19, 7, 9}, {29, 19, 1, 1}, 1, 0, 1},
      {"1x1 large images one by one", {2, 5, 17, 16}, {15, 5, 1, 1}, 1, 0, 1},
      {"1x1 small images side by side", {3, 12, 5, 3}, {13, 12, 1, 1}, 1, 0, 1},
      {"1x1 stride 2 (lowered)", {2, 8, 9, 7}, {17, 8, 1, 1}, 2, 0, 1},
      {"3x3 pad 1 batch 1", {1, 16, 7, 7}, {30, 16, 3, 3}, 1, 1, 1},
      {"3x3 stride 2 batch 3", {3, 7, 11, 10}, {14, 7, 3, 3}, 2, 1, 1},
      // Batches of 4 and more: at 2 threads each thread lowers and multiplies its own images (batch
      // 5 in shares of 2 and 3); at 3 threads batch 6 too, batches 4 and 5 on the team's GEMMs.
      {"3x3 stride 2 batch 5 (images per thread)", {5, 7, 11, 10}, {14, 7, 3, 3}, 2, 1, 1},
      {"1x1 small images batch 6 (images per thread)", {6, 12, 5, 3}, {13, 12, 1, 1}, 1, 0, 1},
      {"1x1 large images batch 4 (images per thread)", {4, 5, 17, 16}, {15, 5, 1, 1}, 1, 0, 1},
      {"7x7 stride 2 pad 3 (a stem)", {1, 3, 23, 21}, {9, 3, 7, 7}, 2, 3, 1},
      {"non-square kernel, dilation", {2, 4, 12, 13}, {6, 4, 3, 2}, {1, 2}, {2, 1}, {2, 1}},
      // 64 * 9 col rows x 70 x 64 pixels = 2.6M floats > one GEMM's 2M: bands of output rows.
      {"bands of rows", {1, 64, 70, 64}, {5, 64, 3, 3}, 1, 1, 1},
      // Chosen in place automatically: 3 channels, 7x7 stride 2, 50 output columns (3 vectors and
      // a masked tail), padding on every side, 17 output channels (a panel of 14 and one of 3).
      {"in place: a stem", {2, 3, 28, 99}, {17, 3, 7, 7}, 2, 3, 1},
      {"in place: stride 3, dilation 2, non-square", {1, 2, 31, 160}, {5, 2, 2, 4}, {3, 3}, {1, 2}, {2, 2}},
  };
  Generator gen(17);
  for (const PCase& c : cases) {
    const Conv2dGeometry g = Conv2dGeometry::make(c.x, c.w, c.stride, c.padding, c.dilation);
    ASSERT_TRUE(conv2d_panels_supported(g)) << c.name;
    const Tensor x = random_tensor(c.x, gen), w = random_tensor(c.w, gen), bias = random_tensor({c.w[0]}, gen);
    const int64_t inner = g.col_rows();
    std::vector<float> panels(static_cast<size_t>(panel_floats(g.K, inner)));
    pack_panels(panels.data(), w.data(), inner, g.K, inner);
    if (c.name.rfind("in place", 0) == 0) {
      EXPECT_TRUE(conv2d_panels_in_place(g)) << c.name;
    }
    for (bool with_bias : {true, false}) {
      const float* b = with_bias ? bias.data() : nullptr;
      std::vector<float> want(static_cast<size_t>(shape_numel(g.output_shape()))), scale(want.size());
      conv2d_forward_naive(want.data(), x.data(), w.data(), b, g);
      const std::vector<float> ax = abs_of(x), aw = abs_of(w), ab = abs_of(bias);
      conv2d_forward_naive(scale.data(), ax.data(), aw.data(), with_bias ? ab.data() : nullptr, g);
      // Every case through both lowerings: each output is the same k-ordered sum either way, so
      // all three choices give the same bits at every thread count.
      std::vector<float> first;
      for (PanelsLowering lowering : {PanelsLowering::Automatic, PanelsLowering::Lowered, PanelsLowering::InPlace}) {
        const std::string what = c.name + (lowering == PanelsLowering::InPlace   ? " (in place)"
                                           : lowering == PanelsLowering::Lowered ? " (lowered)"
                                                                                 : "");
        for (int threads : {1, 2, 3}) {
          set_num_threads(threads);
          std::vector<float> y(want.size(), std::nanf(""));
          conv2d_forward_panels(y.data(), x.data(), panels.data(), b, g, lowering);
          for (size_t i = 0; i < want.size(); ++i)
            ASSERT_NEAR(y[i], want[i], 1e-6 + (inner + 1) * 6e-8 * scale[i]) << what << " at " << i;
          // Panels made on demand (as a packed layer decodes them): the same bits.
          std::vector<float> y2(want.size(), std::nanf(""));
          conv2d_forward_panels(
              y2.data(), x.data(),
              [&](int64_t p, float* scratch) {
                std::copy(panels.begin() + p * inner * kPanelRows, panels.begin() + (p + 1) * inner * kPanelRows,
                          scratch);
                return static_cast<const float*>(scratch);
              },
              b, g, lowering);
          EXPECT_EQ(0, std::memcmp(y2.data(), y.data(), y.size() * sizeof(float))) << what << " made on demand";
          if (first.empty()) {
            first = y;
          } else {
            EXPECT_EQ(0, std::memcmp(first.data(), y.data(), y.size() * sizeof(float))) << what;
          }
        }
      }
    }
  }
  set_num_threads(saved_threads);
}

TEST(Conv2dPanels, ImagesPerThreadTakeBatchesOfTwoPerThreadWhoseImagesLowerInOnePiece) {
  if (!panel_gemm_supported()) GTEST_SKIP() << "no AVX-512 in this build";
  const int saved_threads = get_num_threads();
  set_num_threads(2);
  // ResNet-50's 3x3/2 128c layer at batch 8 and 4; batch 3 cannot give each thread two images.
  EXPECT_TRUE(conv2d_panels_images_per_thread(Conv2dGeometry::make({8, 128, 56, 56}, {128, 128, 3, 3}, 2, 1)));
  EXPECT_TRUE(conv2d_panels_images_per_thread(Conv2dGeometry::make({4, 128, 56, 56}, {128, 128, 3, 3}, 2, 1)));
  EXPECT_FALSE(conv2d_panels_images_per_thread(Conv2dGeometry::make({3, 128, 56, 56}, {128, 128, 3, 3}, 2, 1)));
  // A 224x224 image with 64 channels lowers in bands of rows (576 x 50176 floats): the team's.
  EXPECT_FALSE(conv2d_panels_images_per_thread(Conv2dGeometry::make({8, 64, 224, 224}, {64, 64, 3, 3}, 1, 1)));
  set_num_threads(1);
  EXPECT_FALSE(conv2d_panels_images_per_thread(Conv2dGeometry::make({8, 128, 56, 56}, {128, 128, 3, 3}, 2, 1)));
  set_num_threads(saved_threads);
}

TEST(Conv2dPanels, RefusesGroups) {
  const Conv2dGeometry g = Conv2dGeometry::make({1, 4, 5, 5}, {4, 2, 3, 3}, 1, 1, 1, 2);
  EXPECT_FALSE(conv2d_panels_supported(g));
  std::vector<float> x(100), y(100), panels(static_cast<size_t>(panel_floats(4, 18)));
  EXPECT_THROW(conv2d_forward_panels(y.data(), x.data(), panels.data(), nullptr, g), Error);
}
