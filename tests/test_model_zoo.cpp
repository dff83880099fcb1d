// The ImageNet model zoo (alexnet, vgg16, googlenet, resnet18/34/50): parameter and buffer counts,
// names and shapes against torchvision 0.14, output shapes for several input sizes, class and
// channel counts, GoogLeNet's auxiliary heads and input transform, and the input-size errors.
// (Numerical agreement with torchvision is tests/parity/test_torchvision_parity.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/ops.h"
#include "framework/random.h"
#include "gradcheck.h"
#include "layers/loss.h"
#include "models/googlenet.h"
#include "models/registry.h"

using namespace inq;

namespace {

int64_t parameter_count(const Module& m) {
  int64_t n = 0;
  for (const auto& p : m.named_parameters()) n += p.tensor.numel();
  return n;
}

Shape shape_of(const Module& m, const std::string& name) {
  for (const auto& t : m.state_dict())
    if (t.name == name) return t.tensor.shape();
  ADD_FAILURE() << "no tensor named " << name;
  return {};
}

Tensor eval_forward(Module& m, const Shape& input_shape) {
  Generator gen(7);
  m.eval();
  NoGradGuard no_grad;
  return m.forward(test::random_tensor(input_shape, gen));
}

std::vector<float> eval_logits(Module& m, const Tensor& x) {
  m.eval();
  NoGradGuard no_grad;
  return m.forward(x).to_vector();
}

std::string forward_error(Module& m, const Shape& input_shape) {
  try {
    eval_forward(m, input_shape);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const ModelOptions kImageNet{.num_classes = 1000, .in_channels = 3};

// What torchvision 0.14 reports for a model with 1000 classes and 3 input channels: the sum of
// numel over named_parameters(), the numbers of parameter and buffer tensors, and a few names with
// their shapes. Then this framework's input limits.
struct Expected {
  std::string arch;
  int64_t params = 0, param_tensors = 0, buffers = 0;
  std::vector<std::pair<std::string, Shape>> shapes;
  std::string first_conv;        // its weight has the input channels in dim 1
  int64_t min_size = 1;          // smallest H and W
  std::vector<Shape> inputs;     // batches with 3 channels that must give (N, 1000)
};

// One test per architecture, each building the model twice (the ImageNet configuration, then 7
// classes from 1 channel): construction dominates the time (VGG-16 draws 138M initial weights).
void check_architecture(const Expected& e) {
  SCOPED_TRACE(e.arch);
  auto m = create_model(e.arch, kImageNet);
  EXPECT_EQ(parameter_count(*m), e.params);
  EXPECT_EQ(static_cast<int64_t>(m->named_parameters().size()), e.param_tensors);
  EXPECT_EQ(static_cast<int64_t>(m->named_buffers().size()), e.buffers);
  for (const auto& [name, shape] : e.shapes) EXPECT_EQ(shape_of(*m, name), shape) << name;
  // Inputs of several sizes, square or not, reach the classifier through the adaptive pools.
  for (const auto& in : e.inputs) EXPECT_EQ(eval_forward(*m, in).shape(), (Shape{in[0], 1000}));
  if (e.min_size > 1) {
    const std::string too_small = forward_error(*m, {1, 3, e.min_size - 1, e.min_size});
    EXPECT_NE(too_small.find("Given " + e.arch + " input of shape [1, 3, " + std::to_string(e.min_size - 1)),
              std::string::npos)
        << too_small;
    EXPECT_NE(too_small.find("at least " + std::to_string(e.min_size)), std::string::npos) << too_small;
    EXPECT_NE(forward_error(*m, {1, 3, e.min_size, e.min_size - 1}), "");
  }
  EXPECT_EQ(eval_forward(*m, {1, 3, e.min_size, e.min_size}).shape(), (Shape{1, 1000}));
  const std::string channels = forward_error(*m, {1, 1, 64, 64});
  EXPECT_NE(channels.find("expected 3 channels (the model's in_channels), but got 1 instead"), std::string::npos)
      << channels;
  const std::string rank = forward_error(*m, {3, 64, 64});
  EXPECT_NE(rank.find("expected a 4-d (N, 3, H, W) batch, but got 3 dims"), std::string::npos) << rank;
  m.reset();

  auto gray = create_model(e.arch, {.num_classes = 7, .in_channels = 1});
  EXPECT_EQ(shape_of(*gray, e.first_conv)[1], 1);
  EXPECT_EQ(eval_forward(*gray, {2, 1, std::max<int64_t>(e.min_size, 40), std::max<int64_t>(e.min_size, 45)}).shape(),
            (Shape{2, 7}));
}

}  // namespace

TEST(ModelZoo, RegistryListsEveryModel) {
  const auto names = available_models();
  for (const char* arch : {"alexnet", "vgg16", "googlenet", "resnet18", "resnet34", "resnet50", "lenet5", "lenet5-caffe", "resnet20"})
    EXPECT_NE(std::find(names.begin(), names.end(), arch), names.end()) << arch;
  try {
    create_model("resnet101");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected one of: alexnet, googlenet"), std::string::npos) << e.what();
  }
}

// Caffe's LeNet, the LeNet-5 of Deep Compression and DNS: 431,080 parameters (431K in both papers).
TEST(ModelZoo, LeNet5Caffe) {
  auto m = create_model("lenet5-caffe");
  int64_t total = 0;
  std::map<std::string, Shape> shapes;
  for (const auto& p : m->named_parameters()) {
    total += p.tensor.numel();
    shapes[p.name] = p.tensor.shape();
  }
  EXPECT_EQ(total, 431080);
  EXPECT_EQ(shapes.size(), 8u);
  EXPECT_EQ(shapes.at("features.0.weight"), (Shape{20, 1, 5, 5}));
  EXPECT_EQ(shapes.at("features.2.weight"), (Shape{50, 20, 5, 5}));
  EXPECT_EQ(shapes.at("classifier.0.weight"), (Shape{500, 800}));
  EXPECT_EQ(shapes.at("classifier.2.weight"), (Shape{10, 500}));
  EXPECT_EQ(shapes.at("classifier.2.bias"), (Shape{10}));
  EXPECT_EQ(eval_forward(*m, {3, 1, 28, 28}).shape(), (Shape{3, 10}));
  EXPECT_EQ(input_size_rule("lenet5-caffe").size, 28);
  EXPECT_TRUE(input_size_rule("lenet5-caffe").exact);
}

TEST(ModelZoo, AlexNet) {
  check_architecture({.arch = "alexnet",
                      .params = 61100840,
                      .param_tensors = 16,
                      .buffers = 0,
                      .shapes = {{"features.0.weight", {64, 3, 11, 11}},
                                 {"features.3.weight", {192, 64, 5, 5}},
                                 {"features.10.bias", {256}},
                                 {"classifier.1.weight", {4096, 9216}},
                                 {"classifier.4.weight", {4096, 4096}},
                                 {"classifier.6.bias", {1000}}},
                      .first_conv = "features.0.weight",
                      .min_size = 63,
                      .inputs = {{2, 3, 100, 80}, {1, 3, 224, 224}}});
  // The full list, in torchvision's order (dropout and pooling hold no tensors but keep their indices).
  auto m = create_model("alexnet", {.num_classes = 2, .in_channels = 3});
  std::vector<std::string> names;
  for (const auto& t : m->state_dict()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                       "features.6.weight", "features.6.bias", "features.8.weight", "features.8.bias",
                       "features.10.weight", "features.10.bias", "classifier.1.weight", "classifier.1.bias",
                       "classifier.4.weight", "classifier.4.bias", "classifier.6.weight", "classifier.6.bias"}));
}

TEST(ModelZoo, Vgg16) {
  check_architecture({.arch = "vgg16",
                      .params = 138357544,
                      .param_tensors = 32,
                      .buffers = 0,
                      .shapes = {{"features.0.weight", {64, 3, 3, 3}},
                                 {"features.5.weight", {128, 64, 3, 3}},
                                 {"features.28.weight", {512, 512, 3, 3}},
                                 {"classifier.0.weight", {4096, 25088}},
                                 {"classifier.6.bias", {1000}}},
                      .first_conv = "features.0.weight",
                      .min_size = 32,
                      .inputs = {{2, 3, 48, 40}}});
}

TEST(ModelZoo, GoogLeNet) {
  check_architecture({.arch = "googlenet",
                      .params = 13004888,
                      .param_tensors = 187,
                      .buffers = 177,
                      .shapes = {{"conv1.conv.weight", {64, 3, 7, 7}},
                                 {"inception3a.branch3.1.conv.weight", {32, 16, 3, 3}},
                                 {"inception4e.branch4.1.bn.running_mean", {128}},
                                 {"aux1.fc1.weight", {1024, 2048}},
                                 {"aux2.conv.conv.weight", {128, 528, 1, 1}},
                                 {"conv1.bn.num_batches_tracked", {}},
                                 {"fc.weight", {1000, 1024}}},
                      .first_conv = "conv1.conv.weight",
                      .min_size = 15,
                      .inputs = {{2, 3, 40, 57}}});
  auto plain = create_model("googlenet", {.num_classes = 1000, .in_channels = 3, .aux_logits = false});
  EXPECT_EQ(parameter_count(*plain), 6624904);
  EXPECT_EQ(plain->named_parameters().size(), 173u);
  EXPECT_EQ(plain->named_buffers().size(), 171u);
}

TEST(ModelZoo, ResNet18) {
  check_architecture({.arch = "resnet18",
                      .params = 11689512,
                      .param_tensors = 62,
                      .buffers = 60,
                      .shapes = {{"conv1.weight", {64, 3, 7, 7}},
                                 {"layer1.1.conv2.weight", {64, 64, 3, 3}},
                                 {"layer3.0.downsample.0.weight", {256, 128, 1, 1}},
                                 {"layer3.0.downsample.1.running_var", {256}},
                                 {"fc.weight", {1000, 512}}},
                      .first_conv = "conv1.weight",
                      .min_size = 1,
                      .inputs = {{2, 3, 33, 20}}});
}

TEST(ModelZoo, ResNet34) {
  check_architecture({.arch = "resnet34",
                      .params = 21797672,
                      .param_tensors = 110,
                      .buffers = 108,
                      .shapes = {{"layer2.3.conv2.weight", {128, 128, 3, 3}},
                                 {"layer3.5.bn2.bias", {256}},
                                 {"layer4.0.downsample.0.weight", {512, 256, 1, 1}},
                                 {"fc.weight", {1000, 512}}},
                      .first_conv = "conv1.weight",
                      .min_size = 1,
                      .inputs = {{2, 3, 17, 17}}});
}

TEST(ModelZoo, ResNet50) {
  check_architecture({.arch = "resnet50",
                      .params = 25557032,
                      .param_tensors = 161,
                      .buffers = 159,
                      .shapes = {{"layer1.0.downsample.0.weight", {256, 64, 1, 1}},
                                 {"layer2.0.conv2.weight", {128, 128, 3, 3}},
                                 {"layer2.0.downsample.0.weight", {512, 256, 1, 1}},
                                 {"layer4.2.conv3.weight", {2048, 512, 1, 1}},
                                 {"layer4.2.bn3.running_var", {2048}},
                                 {"fc.weight", {1000, 2048}}},
                      .first_conv = "conv1.weight",
                      .min_size = 1,
                      .inputs = {{2, 3, 40, 29}}});
}

TEST(ModelZoo, GoogLeNetAuxHeadsRunInTrainingModeOnly) {
  Generator gen(11);
  auto model = std::make_shared<GoogLeNet>(ModelOptions{.num_classes = 5, .in_channels = 3});
  ASSERT_TRUE(model->has_aux_heads());
  const Tensor x = test::random_tensor({2, 3, 40, 40}, gen);
  model->train();
  GoogLeNetOutputs out = model->forward_with_aux(x);
  EXPECT_EQ(out.logits.shape(), (Shape{2, 5}));
  EXPECT_EQ(out.aux1.shape(), (Shape{2, 5}));
  EXPECT_EQ(out.aux2.shape(), (Shape{2, 5}));
  // forward() is the main classifier only, in either mode.
  EXPECT_EQ(model->forward(x).shape(), (Shape{2, 5}));
  model->eval();
  out = model->forward_with_aux(x);
  EXPECT_FALSE(out.aux1.defined());
  EXPECT_FALSE(out.aux2.defined());

  auto plain = std::make_shared<GoogLeNet>(ModelOptions{.num_classes = 5, .in_channels = 3, .aux_logits = false});
  EXPECT_FALSE(plain->has_aux_heads());
  plain->train();
  EXPECT_FALSE(plain->forward_with_aux(x).aux1.defined());
}

// The training loss is main + 0.3 aux1 + 0.3 aux2, and its gradient reaches the aux heads' weights.
TEST(ModelZoo, GoogLeNetLossWeightsTheAuxiliaryLosses) {
  Generator gen(12);
  auto model = std::make_shared<GoogLeNet>(ModelOptions{.num_classes = 4, .in_channels = 3});
  model->train();
  const Tensor x = test::random_tensor({2, 3, 32, 32}, gen);
  const std::vector<int64_t> targets = {1, 3};
  GoogLeNetOutputs out = model->forward_with_aux(x);
  const double expected = cross_entropy(out.logits, targets).item() + 0.3 * cross_entropy(out.aux1, targets).item() +
                          0.3 * cross_entropy(out.aux2, targets).item();
  Tensor loss = googlenet_loss(out, targets);
  EXPECT_NEAR(loss.item(), expected, 1e-5);
  loss.backward();
  for (const auto& p : model->named_parameters()) EXPECT_TRUE(p.tensor.grad().defined()) << p.name;

  GoogLeNetOutputs main_only{.logits = out.logits, .aux1 = Tensor(), .aux2 = Tensor()};
  EXPECT_FLOAT_EQ(googlenet_loss(main_only, targets).item(), cross_entropy(out.logits, targets).item());
}

// transform_input re-normalizes channel c as x * std_c / 0.5 + (mean_c - 0.5) / 0.5 before conv1.
TEST(ModelZoo, GoogLeNetTransformInputRenormalizesChannels) {
  Generator gen(13);
  auto transformed = std::make_shared<GoogLeNet>(
      ModelOptions{.num_classes = 3, .in_channels = 3, .aux_logits = false, .transform_input = true});
  auto plain = std::make_shared<GoogLeNet>(ModelOptions{.num_classes = 3, .in_channels = 3, .aux_logits = false});
  const auto from = transformed->state_dict();
  auto to = plain->state_dict();
  for (size_t i = 0; i < from.size(); ++i) to[i].tensor.copy_from(from[i].tensor);

  const Tensor x = test::random_tensor({2, 3, 20, 20}, gen);
  Tensor x_renormalized = x.clone();
  const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < 400; ++i) {
        float& v = x_renormalized.data()[(n * 3 + c) * 400 + i];
        v = v * (std[c] / 0.5f) + (mean[c] - 0.5f) / 0.5f;
      }
  const std::vector<float> a = eval_logits(*transformed, x), b = eval_logits(*plain, x_renormalized);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * std::max(1.0f, std::fabs(b[i]))) << i;

  EXPECT_THROW(GoogLeNet(ModelOptions{.num_classes = 3, .in_channels = 1, .transform_input = true}), Error);
}
