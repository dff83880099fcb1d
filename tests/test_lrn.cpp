// LocalResponseNorm: values and gradients against PyTorch for odd and even window sizes, a value by
// hand, gradient checks and option/shape errors.
#include <gtest/gtest.h>

#include <cmath>

#include "framework/error.h"
#include "gradcheck.h"
#include "layers/lrn.h"
#include "tensor_testing.h"

using namespace inq;

namespace {

using test::expect_near_all;

// torch.randn(1, 5, 2, 2, generator=torch.Generator().manual_seed(0)) in PyTorch 1.13.
Tensor golden_input() {
  return Tensor::from_vector(
      {1, 5, 2, 2}, {-1.12584f,  -1.15236f,   -0.2505786f, -0.4338788f, 0.5988395f, -1.555095f, -0.3413604f,
                     1.853006f,  0.4680964f,  -0.1577124f, 1.44366f,    0.2660494f, 1.389366f,  1.586334f,
                     0.9462984f, -0.8436767f, 0.9318266f,  1.259009f,   2.004981f,  0.0537369f});
}
Tensor golden_r() {  // arange(20)/10 - 1
  std::vector<float> r(20);
  for (int i = 0; i < 20; ++i) r[i] = static_cast<float>(i) / 10.0f - 1.0f;
  return Tensor::from_vector({1, 5, 2, 2}, r);
}

}  // namespace

// One value by hand: size 3, alpha 0.5, beta 0.75, k 2 on channel values (1, 2, 3) at one pixel.
// Channel 0 window is {-1 (zero pad), 0, 1}: 2 + 0.5/3 * (1 + 4) = 2.8333; b = 1 / 2.8333^0.75.
// Channel 1 window {0, 1, 2}: 2 + 0.5/3 * 14 = 4.3333; b = 2 / 4.3333^0.75.
// With size 4 (window [c-2, c+1]) channel 0 reads {0, 1}: the same 2.8333; channel 2 reads {0..2} plus
// padding: 2 + 0.5/4 * 14 = 3.75.
TEST(LocalResponseNorm, HandComputedValues) {
  Tensor x = Tensor::from_vector({1, 3, 1, 1}, {1, 2, 3});
  Tensor y = local_response_norm(x, {.size = 3, .alpha = 0.5, .beta = 0.75, .k = 2.0});
  EXPECT_NEAR(y.data()[0], 1.0 / std::pow(2.0 + 0.5 / 3 * 5, 0.75), 1e-6);
  EXPECT_NEAR(y.data()[1], 2.0 / std::pow(2.0 + 0.5 / 3 * 14, 0.75), 1e-6);
  EXPECT_NEAR(y.data()[2], 3.0 / std::pow(2.0 + 0.5 / 3 * 13, 0.75), 1e-6);
  Tensor y4 = local_response_norm(x, {.size = 4, .alpha = 0.5, .beta = 0.75, .k = 2.0});
  EXPECT_NEAR(y4.data()[0], 1.0 / std::pow(2.0 + 0.5 / 4 * 5, 0.75), 1e-6);
  EXPECT_NEAR(y4.data()[2], 3.0 / std::pow(2.0 + 0.5 / 4 * 14, 0.75), 1e-6);
}

// PyTorch 1.13: y = F.local_response_norm(x, size, alpha=0.5, beta=0.75, k=2.0); (y * r).sum().backward().
TEST(LocalResponseNorm, MatchesPyTorchOddWindow) {
  Tensor x = golden_input();
  x.set_requires_grad(true);
  Tensor y = local_response_norm(x, {.size = 3, .alpha = 0.5, .beta = 0.75, .k = 2.0});
  expect_near_all(y,
                  {-0.6085704f, -0.5588802f, -0.1473466f,  -0.211681f, 0.3198516f, -0.7533092f, -0.1783026f,
                   0.9009854f,  0.2414025f,  -0.07234637f, 0.7226508f, 0.1262158f, 0.6981945f,  0.7557086f,
                   0.3986424f,  -0.4783571f, 0.4734588f,   0.6004701f, 0.921534f,  0.03059546f},
                  1e-5f, "y");
  y.backward(golden_r());
  expect_near_all(
      x.grad(), {-0.4885326f, -0.3399909f,  -0.4649033f,  -0.3465531f,  -0.3451494f, -0.1109893f, -0.2014157f,
                 -0.1265211f, -0.09760176f, -0.03679577f, -0.02900223f, 0.06146944f, 0.04805735f, 0.04633231f,
                 0.09472913f, 0.2635471f,   0.2650309f,   0.2580081f,   0.2113823f,  0.5137544f},
      1e-5f, "dx");
}

TEST(LocalResponseNorm, MatchesPyTorchEvenWindow) {
  Tensor x = golden_input();
  x.set_requires_grad(true);
  Tensor y = local_response_norm(x, {.size = 4, .alpha = 0.5, .beta = 0.75, .k = 2.0});
  expect_near_all(y,
                  {-0.6225532f, -0.5851837f, -0.1477547f,  -0.2213759f, 0.3280848f, -0.7889525f, -0.183799f,
                   0.9429007f,  0.2374411f,  -0.07313684f, 0.7499005f,  0.1318214f, 0.715616f,   0.7293367f,
                   0.426982f,   -0.4208936f, 0.4867245f,   0.6302622f,  0.9081084f, 0.03082409f},
                  1e-5f, "y");
  y.backward(golden_r());
  expect_near_all(x.grad(),
                  {-0.516005f, -0.3758735f, -0.4674642f, -0.3609459f,  -0.3550163f, -0.1215061f, -0.205787f,
                   -0.107546f, -0.1079867f, -0.0340942f, -0.09311809f, 0.05851645f, 0.06062163f, 0.06189422f,
                   0.1251616f, 0.2391773f,  0.2816123f,  0.2906955f,   0.2451236f,  0.5169557f},
                  1e-5f, "dx");
}

TEST(LocalResponseNorm, Gradients) {
  Generator gen(31);
  for (int64_t size : {1, 2, 3, 5}) {
    LocalResponseNorm lrn({.size = size, .alpha = 0.8, .beta = 0.75, .k = 1.5});
    EXPECT_GT(test::check_module_gradients(lrn, test::random_tensor({2, 6, 2, 3}, gen, 1.5)), 0)
        << "size " << size;
  }
  // AlexNet's settings (size 5, alpha 1e-4): nearly the identity, still exact.
  LocalResponseNorm alexnet({.size = 5, .alpha = 1e-4, .beta = 0.75, .k = 2.0});
  EXPECT_GT(test::check_module_gradients(alexnet, test::random_tensor({1, 7, 3, 3}, gen, 5.0)), 0);
}

TEST(LocalResponseNorm, RejectsBadShapesAndOptions) {
  EXPECT_THROW(local_response_norm(Tensor::zeros({2, 3}), {.size = 3}), Error);
  EXPECT_THROW(LocalResponseNorm({.size = 0}), Error);
  EXPECT_THROW(LocalResponseNorm({.size = 3, .k = 0.0}), Error);
  EXPECT_THROW(LocalResponseNorm({.size = 3, .alpha = -1.0}), Error);
  // Any trailing dims: (N, C, L) works like (N, C, L, 1).
  Generator gen(32);
  Tensor x = test::random_tensor({2, 4, 3}, gen);
  Tensor a = local_response_norm(x, {.size = 3, .alpha = 0.5});
  Tensor b = local_response_norm(x.reshape({2, 4, 3, 1}), {.size = 3, .alpha = 0.5});
  EXPECT_EQ(a.to_vector(), b.to_vector());
}
