// training_forward (models/training_loss.h), the training loop's loss: GoogLeNet with aux heads in
// training mode adds 0.3 x each auxiliary loss (as torchvision's reference training does), every
// other case is the plain cross entropy of the main logits.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "framework/autograd.h"
#include "framework/random.h"
#include "gradcheck.h"
#include "layers/loss.h"
#include "models/googlenet.h"
#include "models/registry.h"
#include "models/training_loss.h"

using namespace inq;

namespace {

constexpr uint64_t kDropoutSeed = 41;  // dropout (0.2 main, 0.7 aux) draws from the default generator

bool any_nonzero(const Tensor& t) {
  for (float v : t.to_vector())
    if (v != 0.0f) return true;
  return false;
}

}  // namespace

TEST(TrainingForward, GoogLeNetWithAuxHeadsAddsPointThreeOfEachAuxLossAndTrainsTheHeads) {
  Generator gen(31);
  auto model = std::make_shared<GoogLeNet>(ModelOptions{.num_classes = 3, .in_channels = 3});
  ASSERT_TRUE(model->has_aux_heads());
  model->train();
  const Tensor x = test::random_tensor({3, 3, 17, 17}, gen);
  const std::vector<int64_t> labels = {2, 0, 1};

  // The reference: googlenet_loss on forward_with_aux, same mode, same dropout draws.
  seed_all(kDropoutSeed);
  const GoogLeNetOutputs ref = model->forward_with_aux(x);
  ASSERT_TRUE(ref.aux1.defined() && ref.aux2.defined());
  const float ref_loss = googlenet_loss(ref, labels).item();
  const double main = cross_entropy(ref.logits, labels).item();
  const double aux1 = cross_entropy(ref.aux1, labels).item(), aux2 = cross_entropy(ref.aux2, labels).item();
  model->zero_grad();

  seed_all(kDropoutSeed);
  TrainingOutput out = training_forward(*model, x, labels);
  EXPECT_EQ(out.logits.to_vector(), ref.logits.to_vector());  // the main logits, for the accuracy
  EXPECT_EQ(out.loss.item(), ref_loss);
  EXPECT_NEAR(out.loss.item(), main + 0.3 * (aux1 + aux2), 1e-5);
  // The aux losses are not negligible here, so leaving them out would show.
  EXPECT_GT(0.3 * (aux1 + aux2), 0.1);

  out.loss.backward();
  int aux_params = 0;
  for (const auto& p : model->named_parameters()) {
    if (!is_googlenet_aux_name(p.name)) continue;
    ++aux_params;
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    EXPECT_TRUE(any_nonzero(p.tensor.grad())) << p.name << " got an all-zero gradient";
  }
  EXPECT_EQ(aux_params, 14);  // per head: conv, bn weight and bias, fc1 and fc2 weight and bias
}

TEST(TrainingForward, GoogLeNetInEvalModeOrWithoutAuxHeadsIsTheMainCrossEntropy) {
  Generator gen(32);
  const Tensor x = test::random_tensor({2, 3, 15, 15}, gen);
  const std::vector<int64_t> labels = {1, 0};

  auto with_aux = std::make_shared<GoogLeNet>(ModelOptions{.num_classes = 2, .in_channels = 3});
  with_aux->eval();
  NoGradGuard no_grad;
  TrainingOutput out = training_forward(*with_aux, x, labels);
  EXPECT_EQ(out.loss.item(), cross_entropy(with_aux->forward(x), labels).item());

  auto plain = std::make_shared<GoogLeNet>(ModelOptions{.num_classes = 2, .in_channels = 3, .aux_logits = false});
  plain->train();
  seed_all(kDropoutSeed);
  out = training_forward(*plain, x, labels);
  seed_all(kDropoutSeed);
  const Tensor logits = plain->forward(x);
  EXPECT_EQ(out.logits.to_vector(), logits.to_vector());
  EXPECT_EQ(out.loss.item(), cross_entropy(logits, labels).item());
}

TEST(TrainingForward, OtherModelsTrainOnExactlyTheCrossEntropyOfTheirLogits) {
  Generator gen(33);
  for (const std::string arch : {"lenet5", "resnet20"}) {
    SCOPED_TRACE(arch);
    auto model = create_model(arch, {.num_classes = 10, .in_channels = 1});
    model->train();
    const Tensor x = test::random_tensor({4, 1, 28, 28}, gen);
    const std::vector<int64_t> labels = {3, 9, 0, 5};
    seed_all(kDropoutSeed);
    TrainingOutput out = training_forward(*model, x, labels);
    seed_all(kDropoutSeed);
    const Tensor logits = model->forward(x);
    EXPECT_EQ(out.logits.to_vector(), logits.to_vector());
    EXPECT_EQ(out.loss.item(), cross_entropy(logits, labels).item());
    out.loss.backward();
    for (const auto& p : model->named_parameters()) EXPECT_TRUE(p.tensor.grad().defined()) << p.name;
  }
}
