// Tensor basics and the autograd engine: topological order, accumulation, fan-in, freeing.
#include <gtest/gtest.h>
#include <gtest/gtest-spi.h>

#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/ops.h"
#include "gradcheck.h"

using namespace inq;

TEST(Tensor, FactoriesShapesAndAlignment) {
  Tensor t = Tensor::full({2, 3, 4}, 1.5f);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  EXPECT_FLOAT_EQ(t.data()[23], 1.5f);
  EXPECT_THROW(t.size(3), Error);
  EXPECT_THROW(Tensor::from_vector({2, 2}, {1, 2, 3}), Error);
  EXPECT_THROW(Tensor::empty({-1, 2}), Error);
  EXPECT_THROW(Tensor::empty({int64_t(1) << 40, int64_t(1) << 40}), Error);
}

TEST(Tensor, ReshapeIsAViewAndChecksCounts) {
  Tensor t = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor v = t.reshape({3, -1});
  EXPECT_EQ(v.shape(), (Shape{3, 2}));
  EXPECT_TRUE(v.same_storage(t));
  v.data()[0] = 9;
  EXPECT_EQ(t.data()[0], 9);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(t.reshape({-1, -1}), Error);
  try {
    t.reshape({5});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = Tensor::from_vector({3}, {1, 2, 3});
  x.set_requires_grad(true);
  Tensor w = Tensor::from_vector({3}, {4, 5, 6});
  ops::dot(x, w).backward();
  ops::dot(x, w).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{8, 10, 12}));
  EXPECT_FALSE(w.grad().defined());  // w never required grad
}

TEST(Autograd, FanInSumsAndDoesNotCorruptSharedGradients) {
  // y = (x + x) + reshape(x): dy/dx = 3 everywhere; AddBackward hands the same buffer to both inputs.
  Tensor x = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  x.set_requires_grad(true);
  Tensor y = ops::add(ops::add(x, x), x.reshape({2, 2}));
  Tensor seed = Tensor::full({2, 2}, 1.0f);
  y.backward(seed);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{3, 3, 3, 3}));
  EXPECT_EQ(seed.to_vector(), (std::vector<float>{1, 1, 1, 1}));
}

TEST(Autograd, GraphIsFreedAfterBackwardAndSecondUseIsAnError) {
  Tensor x = Tensor::from_vector({2}, {1, 2});
  x.set_requires_grad(true);
  Tensor s = ops::sum(ops::add(x, x));
  std::weak_ptr<Node> add_node = s.grad_fn()->next[0];
  EXPECT_FALSE(add_node.expired());
  s.backward();
  EXPECT_TRUE(add_node.expired());  // only s kept it alive, through edges cleared by backward
  EXPECT_THROW(s.backward(), Error);
}

TEST(Autograd, NoGradGuardStopsRecording) {
  Tensor x = Tensor::from_vector({2}, {1, 2});
  x.set_requires_grad(true);
  {
    NoGradGuard guard;
    Tensor y = ops::add(x, x);
    EXPECT_FALSE(y.requires_grad());
  }
  EXPECT_TRUE(ops::add(x, x).requires_grad());
}

TEST(Autograd, UnreachedBranchStillReleasesDownstream) {
  // A node whose only incoming gradient is undefined must not stall the nodes after it.
  Tensor a = Tensor::from_vector({2}, {1, 2});
  a.set_requires_grad(true);
  Tensor b = ops::reshape(a, {2});
  Tensor y = ops::add(b, a);
  y.backward(Tensor::full({2}, 2.0f));
  EXPECT_EQ(a.grad().to_vector(), (std::vector<float>{4, 4}));
}

TEST(GradCheck, DetectsAWrongGradient) {
  // A deliberately wrong op: forward x*x, backward claims 3x. The checker must flag it.
  struct WrongSquare : Node {
    Tensor x;
    std::vector<Tensor> backward(const Tensor& g) override {
      Tensor gx = Tensor::empty(x.shape());
      for (int64_t i = 0; i < x.numel(); ++i) gx.data()[i] = 3 * x.data()[i] * g.data()[i];
      return {gx};
    }
    std::string name() const override { return "WrongSquare"; }
  };
  Tensor x = Tensor::from_vector({3}, {0.5f, -1.0f, 2.0f});
  auto f = [&] {
    Tensor y = Tensor::empty(x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) y.data()[i] = x.data()[i] * x.data()[i];
    if (needs_grad({&x})) {
      auto node = std::make_shared<WrongSquare>();
      node->x = x.detach();
      record(y, node, {&x});
    }
    return y;
  };
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    inq::test::check_gradients(f, {{"x", x}});
  }
  EXPECT_GE(failures.size(), 1);
}

TEST(Autograd, NeedsInputGradFollowsTheEdges) {
  Tensor a = Tensor::from_vector({2}, {1, 2}), b = Tensor::from_vector({2}, {3, 4});
  a.set_requires_grad(true);  // b needs no gradient, so its edge is null
  Tensor y = ops::add(a, b);
  const Node& node = *y.grad_fn();
  EXPECT_TRUE(node.needs_input_grad(0));
  EXPECT_FALSE(node.needs_input_grad(1));
  EXPECT_FALSE(node.needs_input_grad(2));  // past the last input
}
