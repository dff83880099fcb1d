// Parity with PyTorch for the paper models (alexnet, vgg16, googlenet, resnet18, resnet50).
// tests/parity/torchvision_parity.py builds each torchvision model with a fixed seed and writes its
// state_dict, an input batch, the eval-mode logits, a training pass's loss and gradients (whole
// model and layer by layer), and the weights after SGD (fixture directory INQ_PARITY_FIXTURE_DIR,
// filled by the ctest fixture "parity_fixtures"). Here the same weights are loaded strictly by name
// into this framework's model and every one of those numbers is recomputed and compared.
//
// Each comparison is "max |actual - expected| <= tolerance * scale" over a whole tensor, the scale
// taken from the expected tensor, so one criterion fits tensors of any magnitude:
//   eval logits             scale max(1, max|logits|)   tolerance 1e-4
//   training loss           scale max(1, |loss|)        tolerance 1e-4 (training_forward's, GoogLeNet's
//                           with 0.3 x each aux loss as torchvision's reference training)
//   BN buffers after train  scale max|expected|         tolerance 1e-4 (num_batches_tracked exact)
//   per layer (every Conv2d, BatchNorm2d, Linear), given PyTorch's input to the layer and the
//   gradient at its output: the layer's input gradient and each of its parameter gradients
//                           scale max|expected|         tolerance 1e-4
//   whole-model gradients (input and every parameter)
//     without BatchNorm     ||actual - expected||_2 <= 0.01 ||expected||_2 per tensor
//     with BatchNorm        ||actual - expected||_2 <= 0.1 ||expected||_2 over all of them
//   weights after SGD from PyTorch's gradients
//                           scale max|expected update| tolerance 1e-5, plus 4 float ulps of
//                           max|weight| (the rounding of the stored weights themselves)
// Why the whole-model gradients of the BatchNorm models get a norm criterion: float32 forward
// passes that differ by ~1e-6 (any two implementations, or PyTorch on two machines) put a few ReLU
// inputs on different sides of zero in these deep networks, and each such flip changes the
// gradients of all earlier layers by up to ~20% of their largest entry; PyTorch's own float32
// gradients of ResNet-50 differ that much from its float64 ones (measured: median 1.4%, worst 20%
// per tensor, 1.3% in norm). Per layer there is no ReLU, so there the comparison is tight; the norm
// criterion on the whole model catches wiring errors (a detached branch, a missing aux loss), which
// are O(1). AlexNet and VGG-16 are shallow enough for a tight bound per tensor, but in norm too: a
// single flip moves a few thousand entries of a tensor by up to ~1% of its largest (VGG-16 at this
// seed has one at the ReLU after features.26 since its 256-channel 16x16 layers run F(2x2): ~2,200
// entries of features.26.weight at 8x a max-abs bound of 1e-3, while no tensor's relative norm
// exceeded 0.0013), and a wiring error is O(1) in norm all the same.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/safetensors.h"
#include "framework/state_dict.h"
#include "models/googlenet.h"
#include "models/registry.h"
#include "models/training_loss.h"
#include "optim/sgd.h"
#include "tests/app_testing.h"

using namespace inq;

namespace {

constexpr double kLogitsTolerance = 1e-4;
constexpr double kLossTolerance = 1e-4;
constexpr double kRunningStatTolerance = 1e-4;
constexpr double kLayerGradTolerance = 1e-4;
constexpr double kModelGradTolerance = 1e-2;      // models without BatchNorm, per tensor, in norm
constexpr double kModelGradNormTolerance = 0.1;   // models with BatchNorm, over all gradients
constexpr double kUpdateTolerance = 1e-5;

std::string fixture(const std::string& arch, const std::string& file) {
  return std::string(INQ_PARITY_FIXTURE_DIR) + "/" + arch + "/" + file;
}

std::string metadata(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) throw Error(fmt::format("Given fixture '{}', expected metadata '{}'", f.source, key));
  return it->second;
}

const StoredTensor& stored(const SafetensorsFile& f, const std::string& name) {
  const StoredTensor* t = f.find(name);
  if (!t) throw Error(fmt::format("Given fixture '{}', expected a tensor named '{}'", f.source, name));
  return *t;
}

// Values of an F32 or I64 entry as floats (num_batches_tracked is I64).
std::vector<float> values_of(const StoredTensor& t) {
  if (t.dtype == StoredDtype::F32) return t.f32.to_vector();
  return std::vector<float>(t.i64.begin(), t.i64.end());
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, std::fabs(static_cast<double>(x)));
  return m;
}

double l2_norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

// ||a - b||_2, infinite when a holds a NaN.
double l2_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::isnan(s) ? INFINITY : std::sqrt(s);
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(d)) return INFINITY;
    m = std::max(m, d);
  }
  return m;
}

// diff / allowed, with 0 / 0 = 0 (an exact count compared exactly) and anything else over 0 infinite.
double ratio(double diff, double allowed) {
  if (allowed > 0) return diff / allowed;
  return diff > 0 ? INFINITY : 0.0;
}

// Tracks the worst comparison of one kind (the largest diff / allowed ratio) for the summary.
struct Worst {
  // in_norm: the comparison is ||actual - expected||_2, else max |actual - expected|.
  explicit Worst(std::string what, bool in_norm = false) : kind(std::move(what)), norm(in_norm) {}

  std::string kind;
  bool norm;
  std::string name;
  double diff = 0, allowed = 0;
  int compared = 0;

  // Compares, records, and fails the test with the tensor's name when out of tolerance.
  void check(const std::string& tensor, const std::vector<float>& actual, const std::vector<float>& expected,
             double allowed_diff) {
    ASSERT_EQ(actual.size(), expected.size()) << kind << " " << tensor;
    const double d = norm ? l2_diff(actual, expected) : max_abs_diff(actual, expected);
    EXPECT_LE(d, allowed_diff) << kind << " of " << tensor << ": " << (norm ? "||diff||" : "max |diff|") << " " << d
                               << " above the allowed " << allowed_diff;
    ++compared;
    if (compared == 1 || ratio(d, allowed_diff) > ratio(diff, allowed)) {
      name = tensor;
      diff = d;
      allowed = allowed_diff;
    }
  }
  void print(const std::string& arch) const {
    std::printf("[parity] %-9s %-18s worst of %3d: %-40s %s %.3g (allowed %.3g, ratio %.3f)\n", arch.c_str(),
                kind.c_str(), compared, name.c_str(), norm ? "||diff||" : "max|diff|", diff, allowed,
                ratio(diff, allowed));
  }
};

void dropout_off(Module& m) {
  if (m.type_name() == "Dropout") m.eval();
  for (auto& [name, child] : m.children()) dropout_off(*child);
}

NamedTensorList destination_of(const Module& m) {
  NamedTensorList out;
  for (auto& t : m.state_dict()) out.emplace_back(t.name, t.tensor);
  return out;
}

// The module at a dotted path below `root` ("layer1.0.conv1"), or nullptr.
Module* find_module(Module& root, const std::string& path) {
  Module* m = &root;
  size_t begin = 0;
  while (m && begin <= path.size()) {
    const size_t end = std::min(path.find('.', begin), path.size());
    const std::string part = path.substr(begin, end - begin);
    Module* next = nullptr;
    for (auto& [name, child] : m->children())
      if (name == part) next = child.get();
    m = next;
    begin = end + 1;
  }
  return m;
}

// The layers recorded in layers.safetensors, in file order (from their "<layer>.input" entries).
std::vector<std::string> recorded_layers(const SafetensorsFile& f) {
  std::vector<std::string> layers;
  const std::string suffix = ".input";
  for (const auto& [name, t] : f.tensors)
    if (name.ends_with(suffix)) layers.push_back(name.substr(0, name.size() - suffix.size()));
  return layers;
}

class TorchvisionParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TorchvisionParity, EvalLogitsTrainingGradientsAndSgdStepMatchPyTorch) {
  const std::string arch = GetParam();
  const SafetensorsFile io = read_safetensors(fixture(arch, "io.safetensors"));
  ASSERT_EQ(metadata(io, "arch"), arch);
  const ModelOptions options{.num_classes = std::stoll(metadata(io, "num_classes")),
                             .in_channels = 3,
                             .aux_logits = metadata(io, "aux_logits") == "1",
                             .transform_input = metadata(io, "transform_input") == "1"};
  auto model = create_model(arch, options);
  // Strict: every name and shape of torchvision's state_dict must be ours, and nothing more.
  load_state_dict(destination_of(*model), read_safetensors(fixture(arch, "weights.safetensors")), /*strict=*/true);
  const bool has_batch_norm = !model->named_buffers().empty();

  const Tensor input = stored(io, "input").f32;
  const std::vector<int64_t> targets = stored(io, "target").i64;

  // 1. Eval mode: BatchNorm with the stored running statistics, dropout off.
  model->eval();
  {
    SCOPED_TRACE("eval");
    NoGradGuard no_grad;
    const std::vector<float> expected = stored(io, "eval_logits").f32.to_vector();
    Worst logits("eval logits");
    logits.check("logits", model->forward(input).to_vector(), expected,
                 kLogitsTolerance * std::max(1.0, max_abs(expected)));
    logits.print(arch);
  }

  // 2. One training pass through the whole model: BatchNorm with batch statistics, dropout off on
  // both sides.
  model->train();
  dropout_off(*model);
  Tensor x = input.clone();
  x.set_requires_grad(true);
  // The training loop's loss (models/training_loss.h); torchvision's reference training weights each
  // GoogLeNet aux loss as the fixture did.
  if (arch == "googlenet") {
    EXPECT_EQ(std::stof(metadata(io, "aux_weight")), kGoogLeNetAuxLossWeight);
  }
  Tensor loss = training_forward(*model, x, targets).loss;
  loss.backward();
  const SafetensorsFile after = read_safetensors(fixture(arch, "after_sgd.safetensors"));
  const SafetensorsFile grads = read_safetensors(fixture(arch, "grads.safetensors"));
  ASSERT_EQ(grads.tensors.size(), model->named_parameters().size());
  {
    SCOPED_TRACE("training pass");
    const std::vector<float> expected_loss = stored(io, "train_loss").f32.to_vector();
    Worst loss_check("training loss");
    loss_check.check("loss", loss.to_vector(), expected_loss, kLossTolerance * std::max(1.0, max_abs(expected_loss)));
    loss_check.print(arch);

    Worst buffers("BN buffers");
    for (const auto& b : model->named_buffers()) {
      const std::vector<float> expected = values_of(stored(after, b.name));
      // num_batches_tracked counts exactly; running statistics carry the batch statistics' rounding.
      const bool is_count = b.name.ends_with("num_batches_tracked");
      buffers.check(b.name, b.tensor.to_vector(), expected, is_count ? 0.0 : kRunningStatTolerance * max_abs(expected));
    }
    if (buffers.compared > 0) buffers.print(arch);

    // Whole-model gradients: per tensor without BatchNorm; in norm over all tensors with it.
    std::vector<std::pair<std::string, Tensor>> actual{{"input", x.grad()}};
    for (const auto& p : model->named_parameters()) {
      ASSERT_TRUE(p.tensor.grad().defined()) << p.name << " got no gradient";
      actual.emplace_back(p.name, p.tensor.grad());
    }
    Worst model_grads("model gradients", /*in_norm=*/true);
    double diff_squares = 0, expected_squares = 0;
    for (const auto& [name, grad] : actual) {
      const std::vector<float> a = grad.to_vector();
      const std::vector<float> e = stored(name == "input" ? io : grads, name == "input" ? "input_grad" : name)
                                       .f32.to_vector();
      ASSERT_EQ(a.size(), e.size()) << name;
      for (size_t i = 0; i < a.size(); ++i) {
        diff_squares += (static_cast<double>(a[i]) - e[i]) * (static_cast<double>(a[i]) - e[i]);
        expected_squares += static_cast<double>(e[i]) * e[i];
      }
      if (!has_batch_norm) model_grads.check(name, a, e, kModelGradTolerance * l2_norm(e));
    }
    const double relative_norm = std::sqrt(diff_squares / expected_squares);
    if (has_batch_norm) {
      EXPECT_LE(relative_norm, kModelGradNormTolerance) << "whole-model gradients of " << arch;
    } else {
      model_grads.print(arch);
    }
    std::printf("[parity] %-9s %-18s ||diff|| / ||expected|| over all %zu gradients: %.3g%s\n", arch.c_str(),
                "model gradients", actual.size(), relative_norm,
                has_batch_norm ? fmt::format(" (allowed {})", kModelGradNormTolerance).c_str() : "");
  }

  // 3. Layer by layer: each Conv2d, BatchNorm2d and Linear gets PyTorch's input to it and the
  // gradient at its output; its input gradient and parameter gradients must match tightly.
  {
    SCOPED_TRACE("per layer");
    const SafetensorsFile layers = read_safetensors(fixture(arch, "layers.safetensors"));
    const std::vector<std::string> names = recorded_layers(layers);
    int64_t params_seen = 0;
    Worst input_grads("layer input grads"), param_grads("layer param grads");
    for (const std::string& name : names) {
      Module* layer = find_module(*model, name);
      ASSERT_NE(layer, nullptr) << "no layer named " << name;
      layer->zero_grad();
      Tensor layer_input = stored(layers, name + ".input").f32.clone();
      layer_input.set_requires_grad(true);
      layer->forward(layer_input).backward(stored(layers, name + ".grad_output").f32);
      const std::vector<float> expected_input_grad = stored(layers, name + ".input_grad").f32.to_vector();
      input_grads.check(name, layer_input.grad().to_vector(), expected_input_grad,
                        kLayerGradTolerance * max_abs(expected_input_grad));
      for (const auto& p : layer->named_parameters()) {
        const std::string full = name + "." + p.name;
        const std::vector<float> expected = stored(grads, full).f32.to_vector();
        param_grads.check(full, p.tensor.grad().to_vector(), expected, kLayerGradTolerance * max_abs(expected));
        ++params_seen;
      }
    }
    // Every parameter belongs to exactly one recorded layer, so each one was compared here.
    EXPECT_EQ(params_seen, static_cast<int64_t>(model->named_parameters().size()));
    input_grads.print(arch);
    param_grads.print(arch);
  }

  // 4. SGD steps from PyTorch's gradients (so only the optimizer is compared). Both sides split the
  // parameters as make_param_groups' defaults do: weight decay on conv and linear weights only, none
  // on biases or BatchNorm parameters.
  {
    SCOPED_TRACE("sgd");
    for (auto p : model->named_parameters()) p.tensor.set_grad(stored(grads, p.name).f32.clone());
    const double lr = std::stod(metadata(io, "lr")), momentum = std::stod(metadata(io, "momentum"));
    const double weight_decay = std::stod(metadata(io, "weight_decay"));
    const int steps = std::stoi(metadata(io, "sgd_steps"));
    std::vector<std::vector<float>> before;
    for (const auto& p : model->named_parameters()) before.push_back(p.tensor.to_vector());
    Sgd sgd(make_param_groups(model->named_parameters(), weight_decay), SgdOptions{.lr = lr, .momentum = momentum});
    for (int s = 0; s < steps; ++s) sgd.step();

    Worst weights("weights after SGD");
    const auto params = model->named_parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      const std::vector<float> expected = stored(after, params[i].name).f32.to_vector();
      std::vector<float> expected_update(expected.size());
      for (size_t j = 0; j < expected.size(); ++j) expected_update[j] = expected[j] - before[i][j];
      const double rounding = 4 * std::ldexp(max_abs(expected), -23);
      weights.check(params[i].name, params[i].tensor.to_vector(), expected,
                    kUpdateTolerance * max_abs(expected_update) + rounding);
    }
    weights.print(arch);
  }
}

INSTANTIATE_TEST_SUITE_P(PaperModels, TorchvisionParity,
                         ::testing::Values("alexnet", "vgg16", "googlenet", "resnet18", "resnet50"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// `inq run` on the stored batch reproduces torchvision's eval logits: the command end to end (weights
// loading, eval mode, output file) on real models, GoogLeNet with its input transform.
TEST(InqRunCommand, ReproducesTorchvisionEvalLogits) {
  for (const std::string arch : {"resnet18", "googlenet"}) {
    SCOPED_TRACE(arch);
    const SafetensorsFile io = read_safetensors(fixture(arch, "io.safetensors"));
    const std::string output = test::temp_path("run_parity_" + arch) + ".safetensors";
    std::string log;
    const int status = test::run_cli(
        fmt::format("run --arch {} --weights {} --input {} --output {} --num-classes {}{}", arch,
                    fixture(arch, "weights.safetensors"), fixture(arch, "io.safetensors"), output,
                    metadata(io, "num_classes"), metadata(io, "transform_input") == "1" ? " --transform-input" : ""),
        &log);
    ASSERT_EQ(status, 0) << log;
    const SafetensorsFile result = read_safetensors(output);
    std::filesystem::remove(output);
    const std::vector<float> expected = stored(io, "eval_logits").f32.to_vector();
    Worst logits("inq run logits");
    logits.check("output", stored(result, "output").f32.to_vector(), expected,
                 kLogitsTolerance * std::max(1.0, max_abs(expected)));
    logits.print(arch);
    EXPECT_EQ(stored(result, "output").shape, stored(io, "eval_logits").shape);
  }
}

}  // namespace
