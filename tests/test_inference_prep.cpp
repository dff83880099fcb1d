// prepare_for_inference (layers/inference_prep.h): frozen Conv2d layers compute exactly what the
// unprepared layers compute, keep Winograd filters only for the calls that use them, leave the
// parameters, and a whole model gives bit-identical logits.
#include <gtest/gtest.h>

#include <cstring>

#include "framework/autograd.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "gradcheck.h"
#include "layers/conv2d.h"
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
    // 2 x 13 x 11: Winograd by the dispatcher's rule; 1 x 3 x 5: im2col (too few tiles).
    const Tensor wide = random_tensor({2, 16, 13, 11}, gen), small = random_tensor({1, 16, 3, 5}, gen);
    ASSERT_TRUE(choose_conv2d_algorithm(Conv2dGeometry::make(wide.shape(), {24, 16, 3, 3}, 1, 1)).winograd_forward);
    ASSERT_FALSE(choose_conv2d_algorithm(Conv2dGeometry::make(small.shape(), {24, 16, 3, 3}, 1, 1)).winograd_forward);
    EXPECT_TRUE(same_bits(frozen->forward(small), plain->forward(small))) << "bias " << bias;
    EXPECT_EQ(kernel->cached_filter_sets(), 0);
    for (int repeat = 0; repeat < 2; ++repeat) {  // the second call reuses the kept filters
      EXPECT_TRUE(same_bits(frozen->forward(wide), plain->forward(wide))) << "bias " << bias;
      EXPECT_EQ(kernel->cached_filter_sets(), 1);
    }
    EXPECT_EQ(prepare_for_inference(*frozen).frozen_convs, 0);  // frozen layers are left alone
  }
}

TEST(InferencePrep, PreparedResNet20GivesBitIdenticalLogitsAtOneAndTwoThreads) {
  const int threads = get_num_threads();
  for (int t : {1, 2}) {
    set_num_threads(t);
    seed_all(7);
    auto plain = create_model("resnet20", {.num_classes = 10, .in_channels = 1});
    plain->eval();
    seed_all(7);
    auto frozen = create_model("resnet20", {.num_classes = 10, .in_channels = 1});
    EXPECT_EQ(prepare_for_inference(*frozen).frozen_convs, 21);  // 19 + 2 projection shortcuts
    Generator gen(9);
    const Tensor x = random_tensor({3, 1, 28, 28}, gen);
    NoGradGuard no_grad;
    EXPECT_TRUE(same_bits(frozen->forward(x), plain->forward(x))) << t << " threads";
  }
  set_num_threads(threads);
}
