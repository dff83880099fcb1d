// BatchNorm2d: gradients in train and eval mode, running statistics (momentum, unbiased variance),
// values against PyTorch, options and shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "framework/error.h"
#include "gradcheck.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "tensor_testing.h"

using namespace inq;

namespace {

// The (2, 2, 2, 2) input and the objective weights r used for the PyTorch values below.
Tensor golden_input() {
  return Tensor::from_vector({2, 2, 2, 2}, {1, 2, 3, 4, 0.5f, -1, 2, 0, -2, 0, 1, 5, 3, 3, -1, 1.5f});
}
Tensor golden_r() {
  std::vector<float> r(16);
  for (int i = 0; i < 16; ++i) r[i] = static_cast<float>(i) / 8.0f - 1.0f;
  return Tensor::from_vector({2, 2, 2, 2}, r);
}

using test::expect_near_all;

}  // namespace

TEST(BatchNorm2d, ParametersAndBuffersNamedLikeTorchvision) {
  BatchNorm2d bn(3);
  auto params = bn.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "weight");
  EXPECT_EQ(params[1].name, "bias");
  EXPECT_EQ(params[0].role, ParamRole::Norm);
  EXPECT_EQ(params[1].role, ParamRole::Norm);
  EXPECT_EQ(bn.weight.to_vector(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(bn.bias.to_vector(), (std::vector<float>{0, 0, 0}));
  auto buffers = bn.named_buffers();
  ASSERT_EQ(buffers.size(), 3u);
  EXPECT_EQ(buffers[0].name, "running_mean");
  EXPECT_EQ(buffers[1].name, "running_var");
  EXPECT_EQ(buffers[2].name, "num_batches_tracked");
  EXPECT_EQ(bn.running_mean.to_vector(), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(bn.running_var.to_vector(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(bn.num_batches_tracked.shape(), Shape{});
  EXPECT_EQ(bn.num_batches_tracked.item(), 0.0f);
}

TEST(BatchNorm2d, GradientsInTrainMode) {
  Generator gen(7);
  BatchNorm2d bn(3);
  bn.weight.copy_from(test::random_tensor({3}, gen));
  bn.bias.copy_from(test::random_tensor({3}, gen));
  Tensor x = test::random_tensor({2, 3, 3, 2}, gen, 2.0);
  bn.train();
  EXPECT_GT(test::check_module_gradients(bn, x), 0);
}

TEST(BatchNorm2d, GradientsInEvalMode) {
  Generator gen(8);
  BatchNorm2d bn(3);
  bn.weight.copy_from(test::random_tensor({3}, gen));
  bn.bias.copy_from(test::random_tensor({3}, gen));
  bn.running_mean.copy_from(test::random_tensor({3}, gen));
  bn.running_var.copy_from(Tensor::from_vector({3}, {0.5f, 2.0f, 1.5f}));
  Tensor x = test::random_tensor({2, 3, 2, 2}, gen);
  bn.eval();
  EXPECT_GT(test::check_module_gradients(bn, x), 0);
}

TEST(BatchNorm2d, GradientsWithoutAffine) {
  Generator gen(9);
  BatchNorm2d bn(BatchNorm2dOptions{.num_features = 2, .affine = false});
  EXPECT_TRUE(bn.named_parameters().empty());
  Tensor x = test::random_tensor({3, 2, 2, 2}, gen);
  EXPECT_GT(test::check_module_gradients(bn, x), 0);
}

TEST(BatchNorm2d, TrainModeNormalizesEachChannel) {
  Generator gen(10);
  BatchNorm2d bn(2);
  Tensor x = test::random_tensor({4, 2, 3, 3}, gen, 3.0);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += 5.0f;
  Tensor y = bn(x);
  for (int64_t c = 0; c < 2; ++c) {
    double s = 0, ss = 0;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t i = 0; i < 9; ++i) {
        const double v = y.data()[(n * 2 + c) * 9 + i];
        s += v;
        ss += v * v;
      }
    EXPECT_NEAR(s / 36, 0.0, 1e-5);
    EXPECT_NEAR(ss / 36, 1.0, 1e-3);  // biased variance is 1 up to eps
  }
}

// Values from PyTorch 1.13 (torch.nn.BatchNorm2d(2), weight [1.5, -0.5], bias [0.1, 0.2], training,
// input golden_input(), objective sum(y * r) with r = arange(16)/8 - 1, then .backward()).
TEST(BatchNorm2d, MatchesPyTorchInTrainMode) {
  BatchNorm2d bn(2);
  bn.weight.copy_from(Tensor::from_vector({2}, {1.5f, -0.5f}));
  bn.bias.copy_from(Tensor::from_vector({2}, {0.1f, 0.2f}));
  Tensor x = golden_input();
  x.set_requires_grad(true);
  Tensor y = bn(x);
  expect_near_all(
      y,
      {-0.4340512f, 0.278017f, 0.9900852f, 1.702153f, 0.3643987f, 0.8575945f, -0.1287972f, 0.5287973f,
       -2.570256f, -1.146119f, -0.4340512f, 2.414222f, -0.4575945f, -0.4575945f, 0.8575945f, 0.03560139f},
      1e-5f, "y");
  y.backward(golden_r());
  expect_near_all(
      x.grad(),
      {-0.5045905f, -0.3955238f, -0.2864571f, -0.1773903f, 0.20772f, 0.1116359f, 0.1805051f, 0.06609286f,
       0.147303f, 0.276428f, 0.3854947f, 0.5547361f, -0.02943656f, -0.07053622f, -0.258261f, -0.20772f},
      1e-5f, "dx");
  expect_near_all(bn.weight.grad(), {-0.4747121f, 1.356289f}, 1e-5f, "dweight");
  expect_near_all(bn.bias.grad(), {-2.5f, 1.5f}, 1e-5f, "dbias");
}

// Running statistics after two training batches, by hand (momentum 0.1, unbiased variance):
// channel 0 of golden_input() holds 1 2 3 4 -2 0 1 5: mean 14/8 = 1.75, squared deviations sum to
// 35.5, unbiased var 35.5/7 = 5.0714286. After batch 1: mean 0.9*0 + 0.1*1.75 = 0.175,
// var 0.9*1 + 0.1*5.0714286 = 1.4071429. Batch 2 is 2x+1: mean 4.5, var 4*5.0714286 = 20.285714, so
// mean 0.9*0.175 + 0.45 = 0.6075 and var 0.9*1.4071429 + 2.0285714 = 3.295.
// Channel 1 (0.5 -1 2 0 3 3 -1 1.5): mean 1, squared deviations 18.5, unbiased var 2.6428571:
// 0.1 and 0.9 + 0.26428571 = 1.1642857, then mean 0.09 + 0.3 = 0.39 and
// var 0.9*1.1642857 + 0.1*4*2.6428571 = 2.105. PyTorch 1.13 gives the same four numbers.
TEST(BatchNorm2d, RunningStatisticsFollowMomentumWithUnbiasedVariance) {
  BatchNorm2d bn(2);
  bn.weight.copy_from(Tensor::from_vector({2}, {1.5f, -0.5f}));
  bn.bias.copy_from(Tensor::from_vector({2}, {0.1f, 0.2f}));
  Tensor x = golden_input();
  bn(x);
  expect_near_all(bn.running_mean, {0.175f, 0.1f}, 1e-6f, "running_mean after 1");
  expect_near_all(bn.running_var, {1.4071429f, 1.1642857f}, 1e-6f, "running_var after 1");
  Tensor x2 = Tensor::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) x2.data()[i] = 2.0f * x.data()[i] + 1.0f;
  bn(x2);
  expect_near_all(bn.running_mean, {0.6075f, 0.39f}, 1e-6f, "running_mean after 2");
  expect_near_all(bn.running_var, {3.295f, 2.105f}, 1e-5f, "running_var after 2");
  EXPECT_EQ(bn.num_batches_tracked.item(), 2.0f);

  // Eval mode normalizes with the running statistics and leaves them alone (PyTorch 1.13 values, the
  // same module after the two batches, .eval(); e.g. y[0] = (1 - 0.6075) / sqrt(3.295 + 1e-5) * 1.5 + 0.1).
  bn.eval();
  Tensor xe = golden_input();
  xe.set_requires_grad(true);
  Tensor y = bn(xe);
  expect_near_all(
      y,
      {0.4243415f, 1.250689f, 2.077037f, 2.903385f, 0.1620916f, 0.6790245f, -0.3548414f, 0.3344026f,
       -2.054702f, -0.4020063f, 0.4243415f, 3.729733f, -0.6994633f, -0.6994633f, 0.6790245f, -0.1825304f},
      1e-5f, "eval y");
  y.backward(golden_r());
  expect_near_all(
      xe.grad(),
      {-0.8263478f, -0.7230543f, -0.6197609f, -0.5164674f, 0.172311f, 0.1292332f, 0.08615549f, 0.04307774f,
       0.0f, 0.1032935f, 0.206587f, 0.3098804f, -0.172311f, -0.2153887f, -0.2584665f, -0.3015442f},
      1e-5f, "eval dx");
  expect_near_all(bn.running_mean, {0.6075f, 0.39f}, 1e-6f, "running_mean unchanged in eval");
  EXPECT_EQ(bn.num_batches_tracked.item(), 2.0f);
}

TEST(BatchNorm2d, WithoutRunningStatsEvalUsesBatchStatistics) {
  BatchNorm2d bn(BatchNorm2dOptions{.num_features = 2, .track_running_stats = false});
  EXPECT_TRUE(bn.named_buffers().empty());
  Tensor x = golden_input();
  Tensor y_train = bn(x);
  bn.eval();
  Tensor y_eval = bn(x);
  EXPECT_EQ(y_train.to_vector(), y_eval.to_vector());
}

TEST(BatchNorm2d, MomentumOption) {
  BatchNorm2d bn(BatchNorm2dOptions{.num_features = 2, .momentum = 1.0});
  bn(golden_input());
  expect_near_all(bn.running_mean, {1.75f, 1.0f}, 1e-6f, "running_mean");
  expect_near_all(bn.running_var, {5.0714286f, 2.6428571f}, 1e-5f, "running_var");
}

TEST(BatchNorm2d, RejectsBadShapesAndOptions) {
  BatchNorm2d bn(3);
  EXPECT_THROW(bn(Tensor::zeros({2, 3, 4})), Error);
  EXPECT_THROW(bn(Tensor::zeros({2, 4, 2, 2})), Error);
  EXPECT_THROW(bn(Tensor::zeros({1, 3, 1, 1})), Error);  // one value per channel in training
  EXPECT_EQ(bn.num_batches_tracked.item(), 0.0f);        // failed calls count nothing
  bn.eval();
  EXPECT_NO_THROW(bn(Tensor::zeros({1, 3, 1, 1})));
  try {
    bn(Tensor::zeros({2, 4, 2, 2}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 4, 2, 2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(BatchNorm2d(0), Error);
  EXPECT_THROW(BatchNorm2d(BatchNorm2dOptions{.num_features = 2, .eps = 0.0}), Error);
  EXPECT_THROW(BatchNorm2d(BatchNorm2dOptions{.num_features = 2, .momentum = 1.5}), Error);
  EXPECT_THROW(
      batch_norm2d(Tensor::zeros({2, 3, 2, 2}), Tensor::zeros({2}), Tensor(), Tensor(), Tensor(), true),
      Error);
  EXPECT_THROW(batch_norm2d(Tensor::zeros({2, 3, 2, 2}), Tensor(), Tensor(), Tensor(), Tensor(), false),
               Error);
}

// The cumulative average used to re-estimate statistics after INQ's last step: after reset and K
// training batches, the running statistics are the plain means of the K batch statistics
// (mean over (N, H, W); variance unbiased), computed here independently in double.
TEST(BatchNorm2d, CumulativeAverageIsTheMeanOfTheBatchStatistics) {
  const int64_t n = 2, c = 3, h = 2, w = 3, batches = 4;
  BatchNorm2d bn(c);
  bn.running_mean.fill_(5.0f);  // whatever was there before is forgotten by the reset
  bn.running_var.fill_(7.0f);
  bn.num_batches_tracked.fill_(123.0f);
  bn.reset_running_stats();
  EXPECT_EQ(bn.running_mean.to_vector(), std::vector<float>(c, 0.0f));
  EXPECT_EQ(bn.running_var.to_vector(), std::vector<float>(c, 1.0f));
  EXPECT_EQ(bn.num_batches_tracked.item(), 0.0f);
  bn.set_cumulative_average(true);
  bn.train();
  std::vector<double> mean_sum(c, 0.0), var_sum(c, 0.0);
  for (int64_t b = 0; b < batches; ++b) {
    std::vector<float> x(static_cast<size_t>(n * c * h * w));
    for (size_t i = 0; i < x.size(); ++i)  // a different offset and spread per batch and channel
      x[i] = static_cast<float>(std::sin(0.7 * static_cast<double>(i) + static_cast<double>(b)) * (1.0 + b) +
                                static_cast<double>(b) * 0.5);
    bn.forward(Tensor::from_vector({n, c, h, w}, x));
    for (int64_t ch = 0; ch < c; ++ch) {
      std::vector<double> v;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t k = 0; k < h * w; ++k) v.push_back(x[static_cast<size_t>((i * c + ch) * h * w + k)]);
      double m = 0.0, s = 0.0;
      for (double e : v) m += e;
      m /= static_cast<double>(v.size());
      for (double e : v) s += (e - m) * (e - m);
      mean_sum[static_cast<size_t>(ch)] += m;
      var_sum[static_cast<size_t>(ch)] += s / static_cast<double>(v.size() - 1);
    }
  }
  for (int64_t ch = 0; ch < c; ++ch) {
    EXPECT_NEAR(bn.running_mean.data()[ch], mean_sum[static_cast<size_t>(ch)] / batches, 1e-5) << ch;
    EXPECT_NEAR(bn.running_var.data()[ch], var_sum[static_cast<size_t>(ch)] / batches, 1e-5) << ch;
  }
  EXPECT_EQ(bn.num_batches_tracked.item(), static_cast<float>(batches));

  // Back to the momentum update: one more batch moves the statistics by momentum 0.1 only.
  bn.set_cumulative_average(false);
  const float before = bn.running_mean.data()[0];
  bn.forward(Tensor::full({n, c, h, w}, 10.0f));
  EXPECT_NEAR(bn.running_mean.data()[0], 0.9 * before + 0.1 * 10.0, 1e-5);
}

TEST(BatchNorm2d, ReestimationNeedsRunningStatistics) {
  BatchNorm2d bn(BatchNorm2dOptions{.num_features = 2, .track_running_stats = false});
  EXPECT_THROW(bn.reset_running_stats(), Error);
  EXPECT_THROW(bn.set_cumulative_average(true), Error);
}

// ---- BatchNorm + ReLU fused (batch_norm2d_relu, BatchNorm2d::forward_relu) ----
// Its naive twin is the composition relu(batch_norm2d(...)): same arithmetic in the same order, so
// values and gradients must match bit for bit, in training and eval mode, on odd shapes.
namespace {

struct BnCase {
  Shape shape;
  bool training, affine;
};

void expect_bitwise_equal(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (int64_t i = 0; i < a.numel(); ++i)
    ASSERT_EQ(std::memcmp(a.data() + i, b.data() + i, sizeof(float)), 0)
        << what << "[" << i << "]: " << a.data()[i] << " vs " << b.data()[i];
}

}  // namespace

TEST(BatchNorm2dRelu, MatchesTheUnfusedCompositionBitForBit) {
  for (const BnCase& c : {BnCase{{3, 5, 7, 3}, true, true}, BnCase{{1, 3, 1, 9}, true, false},
                          BnCase{{2, 4, 5, 5}, false, true}, BnCase{{5, 1, 3, 2}, false, false},
                          BnCase{{4, 7, 19, 13}, true, true}}) {
    SCOPED_TRACE(shape_str(c.shape) + (c.training ? " training" : " eval") + (c.affine ? " affine" : ""));
    Generator gen(21);
    const int64_t C = c.shape[1];
    // Shifted so that both signs reach the ReLU.
    Tensor x0 = test::random_tensor(c.shape, gen, 2.0), dy = test::random_tensor(c.shape, gen);
    Tensor w0 = test::random_tensor({C}, gen), b0 = test::random_tensor({C}, gen);
    Tensor rm0 = test::random_tensor({C}, gen), rv0 = Tensor::full({C}, 0.7f);
    std::vector<Tensor> outs, grads, stats;
    for (bool fused : {false, true}) {
      Tensor x = x0.clone(), w = w0.clone(), b = b0.clone(), rm = rm0.clone(), rv = rv0.clone();
      x.set_requires_grad(true);
      w.set_requires_grad(true);
      b.set_requires_grad(true);
      Tensor wt = c.affine ? w : Tensor(), bt = c.affine ? b : Tensor();
      Tensor y = fused ? batch_norm2d_relu(x, wt, bt, rm, rv, c.training, 0.1, 1e-5)
                       : relu(batch_norm2d(x, wt, bt, rm, rv, c.training, 0.1, 1e-5));
      {
        PoisonFreshBuffersGuard poison;  // every gradient entry must be written
        y.backward(dy);
      }
      outs.push_back(y.detach());
      grads.push_back(x.grad());
      if (c.affine) {
        grads.push_back(w.grad());
        grads.push_back(b.grad());
      }
      stats.push_back(rm);
      stats.push_back(rv);
    }
    expect_bitwise_equal(outs[0], outs[1], "y");
    const size_t per = grads.size() / 2;
    for (size_t i = 0; i < per; ++i) expect_bitwise_equal(grads[i], grads[per + i], "grad " + std::to_string(i));
    expect_bitwise_equal(stats[0], stats[2], "running_mean");
    expect_bitwise_equal(stats[1], stats[3], "running_var");
    // Some outputs are clamped and some are not, or the test would not exercise the mask.
    int zeros = 0;
    for (int64_t i = 0; i < outs[1].numel(); ++i) zeros += outs[1].data()[i] == 0.0f;
    EXPECT_GT(zeros, 0);
    EXPECT_LT(zeros, outs[1].numel());
  }
}

TEST(BatchNorm2dRelu, GradientsInTrainAndEvalMode) {
  for (bool training : {true, false}) {
    Generator gen(training ? 31 : 32);
    Tensor x = test::random_tensor({2, 3, 3, 2}, gen, 2.0);
    Tensor w = test::random_tensor({3}, gen), b = test::random_tensor({3}, gen);
    Tensor rm = test::random_tensor({3}, gen), rv = Tensor::from_vector({3}, {0.5f, 2.0f, 1.5f});
    // Running statistics are updated in training: give each evaluation its own copy.
    auto f = [&] {
      Tensor m = rm.clone(), v = rv.clone();
      return batch_norm2d_relu(x, w, b, m, v, training, 0.1, 1e-5);
    };
    EXPECT_GT(test::check_gradients(f, {{"x", x}, {"weight", w}, {"bias", b}}), 0) << "training " << training;
  }
}

TEST(BatchNorm2dRelu, ModuleForwardReluKeepsTheBookkeeping) {
  // forward_relu moves the running statistics and the batch count exactly as forward does.
  Generator gen(33);
  Tensor x = test::random_tensor({4, 3, 5, 5}, gen);
  BatchNorm2d a(3), b(3);
  a.train();
  b.train();
  Tensor ya = relu(a.forward(x)), yb = b.forward_relu(x);
  expect_bitwise_equal(ya, yb, "y");
  expect_bitwise_equal(a.running_mean, b.running_mean, "running_mean");
  expect_bitwise_equal(a.running_var, b.running_var, "running_var");
  EXPECT_EQ(b.num_batches_tracked.item(), 1.0f);
  a.eval();
  b.eval();
  expect_bitwise_equal(relu(a.forward(x)), b.forward_relu(x), "eval y");
  EXPECT_EQ(b.num_batches_tracked.item(), 1.0f);
}
