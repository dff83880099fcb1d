#include "models/googlenet.h"

#include "framework/error.h"
#include "framework/ops.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/concat.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/pooling.h"
#include "models/image_input.h"

namespace inq {

namespace {

// Smallest H (and W): conv1 (7/2, pad 3) turns 15 into 8, the ceil-mode 3/2 pools turn 8 into 4,
// 2 and 1; at 14 the third pool would get a 1x1 input and produce nothing (torchvision's min_size).
constexpr int64_t kGoogLeNetMinSize = 15;

// conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU; children "conv" and "bn".
class BasicConv2d : public Module {
 public:
  BasicConv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0) {
    conv_ = register_module("conv", std::make_shared<Conv2d>(Conv2dOptions{.in_channels = in, .out_channels = out,
                                                                           .kernel_size = kernel, .stride = stride,
                                                                           .padding = padding, .bias = false}));
    bn_ = register_module("bn", std::make_shared<BatchNorm2d>(BatchNorm2dOptions{.num_features = out, .eps = 1e-3}));
  }
  Tensor forward(const Tensor& x) override { return bn_->forward_relu(conv_->forward(x)); }
  std::string type_name() const override { return "BasicConv2d"; }
  std::vector<std::pair<std::string, std::string>> conv_batchnorm_pairs() const override { return {{"conv", "bn"}}; }

 private:
  std::shared_ptr<Conv2d> conv_;
  std::shared_ptr<BatchNorm2d> bn_;
};

std::shared_ptr<MaxPool2d> ceil_max_pool(int64_t kernel, int64_t stride, int64_t padding = 0) {
  return std::make_shared<MaxPool2d>(
      MaxPool2dOptions{.kernel_size = kernel, .stride = stride, .padding = padding, .ceil_mode = true});
}

// Four branches concatenated along channels: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 (the paper's 5x5, a 3x3
// in torchvision); 3x3/1 max-pool -> 1x1. Output channels ch1x1 + ch3x3 + ch5x5 + pool_proj.
class Inception : public Module {
 public:
  Inception(int64_t in, int64_t ch1x1, int64_t ch3x3red, int64_t ch3x3, int64_t ch5x5red, int64_t ch5x5,
            int64_t pool_proj) {
    branch1_ = register_module("branch1", std::make_shared<BasicConv2d>(in, ch1x1, 1));
    branch2_ = register_module("branch2", std::make_shared<Sequential>());
    branch2_->add(std::make_shared<BasicConv2d>(in, ch3x3red, 1))
        .add(std::make_shared<BasicConv2d>(ch3x3red, ch3x3, 3, 1, 1));
    branch3_ = register_module("branch3", std::make_shared<Sequential>());
    branch3_->add(std::make_shared<BasicConv2d>(in, ch5x5red, 1))
        .add(std::make_shared<BasicConv2d>(ch5x5red, ch5x5, 3, 1, 1));
    branch4_ = register_module("branch4", std::make_shared<Sequential>());
    branch4_->add(ceil_max_pool(3, 1, 1)).add(std::make_shared<BasicConv2d>(in, pool_proj, 1));
  }
  Tensor forward(const Tensor& x) override {
    return concat_channels({branch1_->forward(x), branch2_->forward(x), branch3_->forward(x), branch4_->forward(x)});
  }
  std::string type_name() const override { return "Inception"; }

 private:
  std::shared_ptr<BasicConv2d> branch1_;
  std::shared_ptr<Sequential> branch2_, branch3_, branch4_;
};

// Auxiliary classifier: adaptive 4x4 average pool, BasicConv2d 1x1 (128), FC 2048 -> 1024, ReLU,
// dropout 0.7, FC classes. Children "conv", "fc1", "fc2", "dropout" (registered in torchvision's order).
class InceptionAux : public Module {
 public:
  InceptionAux(int64_t in, int64_t num_classes) {
    conv_ = register_module("conv", std::make_shared<BasicConv2d>(in, 128, 1));
    fc1_ = register_module("fc1", std::make_shared<Linear>(LinearOptions{.in_features = 2048, .out_features = 1024}));
    fc2_ = register_module(
        "fc2", std::make_shared<Linear>(LinearOptions{.in_features = 1024, .out_features = num_classes}));
    dropout_ = register_module("dropout", std::make_shared<Dropout>(0.7));
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = conv_->forward(adaptive_avg_pool2d(x, 4, 4));
    y = relu(fc1_->forward(flatten(y, 1)));
    return fc2_->forward(dropout_->forward(y));
  }
  std::string type_name() const override { return "InceptionAux"; }

 private:
  std::shared_ptr<BasicConv2d> conv_;
  std::shared_ptr<Linear> fc1_, fc2_;
  std::shared_ptr<Dropout> dropout_;
};

}  // namespace

GoogLeNet::GoogLeNet(const ModelOptions& options)
    : in_channels_(options.in_channels), transform_input_(options.transform_input) {
  INQ_CHECK(!options.transform_input || options.in_channels == 3,
            "Given googlenet with transform_input and in_channels {}, expected in_channels 3 (the transform "
            "re-normalizes RGB)",
            options.in_channels);
  conv1_ = register_module("conv1", std::make_shared<BasicConv2d>(options.in_channels, 64, 7, 2, 3));
  maxpool1_ = register_module("maxpool1", ceil_max_pool(3, 2));
  conv2_ = register_module("conv2", std::make_shared<BasicConv2d>(64, 64, 1));
  conv3_ = register_module("conv3", std::make_shared<BasicConv2d>(64, 192, 3, 1, 1));
  maxpool2_ = register_module("maxpool2", ceil_max_pool(3, 2));
  inception3a_ = register_module("inception3a", std::make_shared<Inception>(192, 64, 96, 128, 16, 32, 32));
  inception3b_ = register_module("inception3b", std::make_shared<Inception>(256, 128, 128, 192, 32, 96, 64));
  maxpool3_ = register_module("maxpool3", ceil_max_pool(3, 2));
  inception4a_ = register_module("inception4a", std::make_shared<Inception>(480, 192, 96, 208, 16, 48, 64));
  inception4b_ = register_module("inception4b", std::make_shared<Inception>(512, 160, 112, 224, 24, 64, 64));
  inception4c_ = register_module("inception4c", std::make_shared<Inception>(512, 128, 128, 256, 24, 64, 64));
  inception4d_ = register_module("inception4d", std::make_shared<Inception>(512, 112, 144, 288, 32, 64, 64));
  inception4e_ = register_module("inception4e", std::make_shared<Inception>(528, 256, 160, 320, 32, 128, 128));
  maxpool4_ = register_module("maxpool4", ceil_max_pool(2, 2));
  inception5a_ = register_module("inception5a", std::make_shared<Inception>(832, 256, 160, 320, 32, 128, 128));
  inception5b_ = register_module("inception5b", std::make_shared<Inception>(832, 384, 192, 384, 48, 128, 128));
  if (options.aux_logits) {
    aux1_ = register_module("aux1", std::make_shared<InceptionAux>(512, options.num_classes));
    aux2_ = register_module("aux2", std::make_shared<InceptionAux>(528, options.num_classes));
  }
  avgpool_ = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(AdaptiveAvgPool2dOptions{}));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(0.2));
  fc_ = register_module("fc", std::make_shared<Linear>(LinearOptions{.in_features = 1024,
                                                                       .out_features = options.num_classes}));
  // torchvision's init: conv and FC weights from N(0, 0.01) truncated to [-2, 2]; BatchNorm 1 and 0
  // (already so); FC biases keep the default.
  for (auto& p : named_parameters())
    if (p.role == ParamRole::Weight) trunc_normal_(p.tensor, 0.0, 0.01, -2.0, 2.0);
}

Tensor GoogLeNet::forward(const Tensor& x) { return run(x, /*with_aux=*/false).logits; }

GoogLeNetOutputs GoogLeNet::forward_with_aux(const Tensor& x) { return run(x, /*with_aux=*/true); }

GoogLeNetOutputs GoogLeNet::run(const Tensor& x, bool with_aux) {
  check_image_batch("googlenet", x, in_channels_, kGoogLeNetMinSize);
  const bool aux = with_aux && is_training() && has_aux_heads();
  GoogLeNetOutputs out;
  Tensor y = x;
  if (transform_input_) {
    // torchvision's weights expect inputs normalized with the ImageNet mean and std; this maps those
    // to the (x - 0.5) / 0.5 normalization its original Inception port was trained with.
    // Coefficients computed in double and rounded once, as torchvision's Python scalars are.
    y = ops::affine_channels(
        y, {float(0.229 / 0.5), float(0.224 / 0.5), float(0.225 / 0.5)},
        {float((0.485 - 0.5) / 0.5), float((0.456 - 0.5) / 0.5), float((0.406 - 0.5) / 0.5)});
  }
  y = maxpool1_->forward(conv1_->forward(y));
  y = maxpool2_->forward(conv3_->forward(conv2_->forward(y)));
  y = maxpool3_->forward(inception3b_->forward(inception3a_->forward(y)));
  y = inception4a_->forward(y);
  if (aux) out.aux1 = aux1_->forward(y);
  y = inception4d_->forward(inception4c_->forward(inception4b_->forward(y)));
  if (aux) out.aux2 = aux2_->forward(y);
  y = maxpool4_->forward(inception4e_->forward(y));
  y = inception5b_->forward(inception5a_->forward(y));
  y = flatten(avgpool_->forward(y), 1);
  out.logits = fc_->forward(dropout_->forward(y));
  return out;
}

std::shared_ptr<Module> googlenet(const ModelOptions& options) { return std::make_shared<GoogLeNet>(options); }

bool is_googlenet_aux_name(const std::string& name) { return name.starts_with("aux1.") || name.starts_with("aux2."); }

Tensor googlenet_loss(const GoogLeNetOutputs& outputs, const std::vector<int64_t>& targets, float aux_weight) {
  Tensor loss = cross_entropy(outputs.logits, targets);
  if (outputs.aux1.defined()) loss = ops::add(loss, ops::scale(cross_entropy(outputs.aux1, targets), aux_weight));
  if (outputs.aux2.defined()) loss = ops::add(loss, ops::scale(cross_entropy(outputs.aux2, targets), aux_weight));
  return loss;
}

}  // namespace inq
