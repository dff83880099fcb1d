// prepare_for_inference (layers/inference_prep.h): frozen Conv2d layers compute what the unprepared
// layers compute (exactly, where both run the same kernels on the same filters; within rounding
// where the frozen layer runs F(2x2), filter panels or the panel GEMM), keep Winograd filters only for the calls
// that use them, leave the parameters, and a whole model gives the unprepared model's logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "framework/autograd.h"
#include "framework/panel_gemm.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "gradcheck.h"
#include "framework/error.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/conv2d_winograd.h"
#include "layers/inference_prep.h"
#include "models/registry.h"

using namespace inq;
using inq::test::random_tensor;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<size_t>(a.numel()) * sizeof(float)) == 0;
}

int64_t named(const Module& m, const std::string& name) {
  int64_t n = 0;
  for (const auto& p : m.named_parameters()) n += p.name == name;
  return n;
}

}  // namespace

TEST(InferencePrep, FrozenConvMatchesTheLayerOnWinogradAndIm2colInputs) {
  for (const bool bias : {true, false}) {
    seed_all(3);
    auto plain = std::make_shared<Conv2d>(Conv2dOptions{.in_channels = 16, .out_channels = 24, .kernel_size = 3,
                                                        .padding = 1, .bias = bias});
    seed_all(3);
    auto frozen = std::make_shared<Conv2d>(Conv2dOptions{.in_channels = 16, .out_channels = 24, .kernel_size = 3,
                                                         .padding = 1, .bias = bias});
    EXPECT_EQ(named(*frozen, "weight"), 1);
    const InferencePrepSummary s = prepare_for_inference(*frozen);
    EXPECT_EQ(s.frozen_convs, 1);
    EXPECT_FALSE(frozen->is_training());
    EXPECT_EQ(named(*frozen, "weight"), 0);  // no longer a parameter
    EXPECT_EQ(named(*frozen, "bias"), bias ? 1 : 0);
    const auto* kernel = dynamic_cast<const FrozenConv2dKernel*>(frozen->weight_kernel());
    ASSERT_NE(kernel, nullptr);
    EXPECT_EQ(kernel->cached_filter_sets(), 0);  // made on first use only
    NoGradGuard no_grad;
    Generator gen(5);
    // 4 x 24 x 22 (144 tiles): Winograd with plain filters, as the plain layer (the same bits); 1 x 3
    // x 5: im2col, multiplied by the panel kernel where the plain layer calls sgemm (within rounding).
    const Tensor wide = random_tensor({4, 16, 24, 22}, gen), small = random_tensor({1, 16, 3, 5}, gen);
    ASSERT_TRUE(choose_conv2d_algorithm(Conv2dGeometry::make(wide.shape(), {24, 16, 3, 3}, 1, 1)).winograd_forward);
    ASSERT_FALSE(choose_conv2d_algorithm(Conv2dGeometry::make(small.shape(), {24, 16, 3, 3}, 1, 1)).winograd_forward);
    {
      const Tensor got = frozen->forward(small), want = plain->forward(small);
      ASSERT_EQ(got.shape(), want.shape());
      for (int64_t i = 0; i < want.numel(); ++i)
        EXPECT_NEAR(got.data()[i], want.data()[i], 1e-5f * (1.0f + std::fabs(want.data()[i]))) << "bias " << bias;
    }
    EXPECT_EQ(kernel->cached_filter_sets(), 0);
    EXPECT_EQ(kernel->holds_panels(), panel_gemm_supported());
    for (int repeat = 0; repeat < 2; ++repeat) {  // the second call reuses the kept filters
      EXPECT_TRUE(same_bits(frozen->forward(wide), plain->forward(wide))) << "bias " << bias;
      EXPECT_EQ(kernel->cached_filter_sets(), 1);
    }
    EXPECT_EQ(prepare_for_inference(*frozen).frozen_convs, 0);  // frozen layers are left alone
  }
}

TEST(InferencePrep, FrozenConvWithoutPanelsTakesABiasTheLayerWasBuiltWithout) {
  // A grouped layer keeps its plain weight (no panels) and runs conv2d; a folded BatchNorm gives the
  // layer a bias its options (bias = false) do not mention, which conv2d used to refuse.
  Generator gen(9);
  const Conv2dOptions built{.in_channels = 8, .out_channels = 12, .kernel_size = 3, .padding = 1, .groups = 2,
                            .bias = false};
  const Tensor w = random_tensor({12, 4, 3, 3}, gen), b = random_tensor({12}, gen), x = random_tensor({2, 8, 7, 6}, gen);
  const FrozenConv2dKernel kernel(w, built.groups);
  EXPECT_FALSE(kernel.holds_panels());
  NoGradGuard no_grad;
  Conv2dOptions with_bias = built;
  with_bias.bias = true;
  EXPECT_TRUE(same_bits(kernel.forward(x, b, built), conv2d(x, w, b, with_bias)));
  EXPECT_TRUE(same_bits(kernel.forward(x, Tensor(), built), conv2d(x, w, Tensor(), built)));
}

// A batch-1 7x7 layer, im2col for the plain layer, runs F(2x2) once its filters are kept: checked
// against the naive double-precision convolution (F(2x2)'s error is a few float roundings of the
// products' scale) and against the plain layer.
TEST(InferencePrep, SmallImagesRunWinogradTwoByTwoWithKeptFilters) {
  seed_all(4);
  auto plain = std::make_shared<Conv2d>(Conv2dOptions{.in_channels = 32, .out_channels = 40, .kernel_size = 3,
                                                      .padding = 1});
  seed_all(4);
  auto frozen = std::make_shared<Conv2d>(Conv2dOptions{.in_channels = 32, .out_channels = 40, .kernel_size = 3,
                                                       .padding = 1});
  const Tensor w = frozen->weight.clone(), b = frozen->bias.clone();
  prepare_for_inference(*frozen);
  Generator gen(6);
  const Tensor x = random_tensor({1, 32, 7, 7}, gen);
  const Conv2dGeometry g = Conv2dGeometry::make(x.shape(), w.shape(), 1, 1);
  ASSERT_FALSE(choose_conv2d_algorithm(g).winograd_forward);
  ASSERT_EQ(choose_conv2d_algorithm(g, true).tile, 2);
  NoGradGuard no_grad;
  const Tensor got = frozen->forward(x), im2col = plain->forward(x);
  std::vector<float> want(static_cast<size_t>(got.numel())), scale(want.size());
  conv2d_forward_naive(want.data(), x.data(), w.data(), b.data(), g);
  Tensor ax = x.clone(), aw = w.clone(), ab = b.clone();
  for (Tensor* t : {&ax, &aw, &ab})
    for (int64_t i = 0; i < t->numel(); ++i) t->data()[i] = std::fabs(t->data()[i]);
  conv2d_forward_naive(scale.data(), ax.data(), aw.data(), ab.data(), g);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got.data()[i], want[i], 1e-5 * scale[i]) << i;
    EXPECT_NEAR(got.data()[i], im2col.data()[i], 2e-5 * scale[i]) << i;
  }
  const auto* kernel = dynamic_cast<const FrozenConv2dKernel*>(frozen->weight_kernel());
  ASSERT_NE(kernel, nullptr);
  EXPECT_EQ(kernel->cached_filter_sets(), 1);
}

// Transformed filters above kMaxKeptFilterBytes are not kept: a 512-channel layer keeps F(2x2)'s
// (16.8 MB) instead of F(4x4)'s (37.7 MB); a 1024-channel one keeps none and runs the panels on small
// blocks and Winograd with filters transformed per call on large ones, as the plain layer does (the
// same bits there).
TEST(InferencePrep, LargeLayersKeepSmallerFiltersOrNone) {
  NoGradGuard no_grad;
  Generator gen(8);
  for (const int64_t channels : {512, 1024}) {
    SCOPED_TRACE(channels);
    seed_all(9);
    auto plain = std::make_shared<Conv2d>(Conv2dOptions{.in_channels = channels, .out_channels = channels,
                                                        .kernel_size = 3, .padding = 1});
    seed_all(9);
    auto frozen = std::make_shared<Conv2d>(Conv2dOptions{.in_channels = channels, .out_channels = channels,
                                                         .kernel_size = 3, .padding = 1});
    prepare_for_inference(*frozen);
    const auto* kernel = dynamic_cast<const FrozenConv2dKernel*>(frozen->weight_kernel());
    ASSERT_NE(kernel, nullptr);
    const Tensor small = random_tensor({1, channels, 14, 14}, gen);
    const Conv2dGeometry g = Conv2dGeometry::make(small.shape(), {channels, channels, 3, 3}, 1, 1);
    ASSERT_EQ(choose_conv2d_algorithm(g, true).tile, 4);
    EXPECT_FALSE(frozen_conv2d_keeps_filters(g, 4));
    EXPECT_EQ(frozen_conv2d_keeps_filters(g, 2), channels == 512);
    const Tensor got = frozen->forward(small), want = plain->forward(small);
    ASSERT_EQ(got.shape(), want.shape());
    for (int64_t i = 0; i < want.numel(); ++i)
      ASSERT_NEAR(got.data()[i], want.data()[i], 1e-4f * (1.0f + std::fabs(want.data()[i]))) << i;
    EXPECT_EQ(kernel->cached_filter_sets(), channels == 512 ? 1 : 0);
    if (channels == 1024) {
      const Tensor large = random_tensor({1, channels, 48, 48}, gen);  // 144 tiles
      ASSERT_TRUE(choose_conv2d_algorithm(Conv2dGeometry::make(large.shape(), {channels, channels, 3, 3}, 1, 1))
                      .winograd_forward);
      EXPECT_TRUE(same_bits(frozen->forward(large), plain->forward(large)));
      EXPECT_EQ(kernel->cached_filter_sets(), 0);
    }
  }
}

// Batch 1 (F(2x2) on the 7x7 layers, filter panels below 128 tiles) and batch 3, at 1 and 2 threads:
// the prepared model's logits within 1e-5 of the largest logit of the unprepared model's, and the
// same bits on a second call (the kept filters are reused, not rebuilt differently).
TEST(InferencePrep, PreparedResNet20MatchesTheModel) {
  const int threads = get_num_threads();
  for (int64_t batch : {1, 3}) {
    for (int t : {1, 2}) {
      set_num_threads(t);
      seed_all(7);
      auto plain = create_model("resnet20", {.num_classes = 10, .in_channels = 1});
      plain->eval();
      seed_all(7);
      auto frozen = create_model("resnet20", {.num_classes = 10, .in_channels = 1});
      EXPECT_EQ(prepare_for_inference(*frozen).frozen_convs, 21);  // 19 + 2 projection shortcuts
      Generator gen(9);
      const Tensor x = random_tensor({batch, 1, 28, 28}, gen);
      NoGradGuard no_grad;
      const Tensor got = frozen->forward(x), want = plain->forward(x);
      float largest = 0.0f;
      for (int64_t i = 0; i < want.numel(); ++i) largest = std::max(largest, std::fabs(want.data()[i]));
      for (int64_t i = 0; i < want.numel(); ++i)
        EXPECT_NEAR(got.data()[i], want.data()[i], 1e-5f * largest) << "batch " << batch << " logit " << i;
      EXPECT_TRUE(same_bits(frozen->forward(x), got)) << "batch " << batch << ", a second call";
    }
  }
  set_num_threads(threads);
}

// BatchNorm folding (Module::conv_batchnorm_pairs): ResNet-20, ResNet-18 and GoogLeNet with
// non-trivial running statistics and affine parameters give the unprepared model's eval-mode logits
// within rounding, every declared BatchNorm is folded (and then refuses training), and a second
// prepare_for_inference folds nothing more.
TEST(InferencePrep, BatchNormsFoldIntoTheConvolutionsBeforeThem) {
  struct Case {
    const char* arch;
    int64_t channels, size, classes, batchnorms;
  };
  // ResNet-20: 19 convolutions + 2 shortcuts; ResNet-18: 17 + 3; GoogLeNet: 57 BasicConv2d.
  for (const Case& c : {Case{"resnet20", 1, 28, 10, 21}, Case{"resnet18", 3, 40, 20, 20},
                        Case{"googlenet", 3, 48, 20, 57}}) {
    SCOPED_TRACE(c.arch);
    ModelOptions options{.num_classes = c.classes, .in_channels = c.channels};
    options.aux_logits = false;
    // The same running statistics and affine parameters in both copies.
    const auto perturb = [](Module& model) {
      Generator g(12);
      for (BatchNorm2d* bn : batchnorm_layers(model)) {
        for (int64_t i = 0; i < bn->running_mean.numel(); ++i) {
          bn->running_mean.data()[i] = 0.2f * static_cast<float>(g.normal());
          bn->running_var.data()[i] = 0.5f + g.uniform();
          bn->weight.data()[i] = 0.5f + g.uniform();
          bn->bias.data()[i] = 0.1f * static_cast<float>(g.normal());
        }
      }
    };
    seed_all(11);
    auto plain = create_model(c.arch, options);
    seed_all(11);
    auto folded = create_model(c.arch, options);
    perturb(*plain);
    perturb(*folded);
    Generator gen(13);
    plain->eval();
    const InferencePrepSummary s = prepare_for_inference(*folded);
    EXPECT_EQ(s.folded_batchnorms, c.batchnorms);
    int64_t marked = 0;
    for (BatchNorm2d* bn : batchnorm_layers(*folded)) marked += bn->folded();
    EXPECT_EQ(marked, c.batchnorms);
    EXPECT_EQ(prepare_for_inference(*folded).folded_batchnorms, 0);
    const Tensor x = random_tensor({2, c.channels, c.size, c.size}, gen);
    {
      NoGradGuard no_grad;
      const Tensor got = folded->forward(x), want = plain->forward(x);
      ASSERT_EQ(got.shape(), want.shape());
      float largest = 0.0f;
      for (int64_t i = 0; i < want.numel(); ++i) largest = std::max(largest, std::fabs(want.data()[i]));
      for (int64_t i = 0; i < want.numel(); ++i) EXPECT_NEAR(got.data()[i], want.data()[i], 1e-4f * largest) << i;
    }
    folded->train();
    EXPECT_THROW(folded->forward(x), Error);
  }
}
