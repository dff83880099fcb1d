#pragma once
// GoogLeNet (Szegedy et al. 2015, Inception v1) as torchvision builds it: BasicConv2d (conv without
// bias, BatchNorm eps 1e-3, ReLU) everywhere, ceil-mode max-pools, nine Inception blocks whose
// "5x5" branch is a 3x3 conv (as in torchvision), adaptive 1x1 average pool, dropout 0.2, FC 1024.
// Optional auxiliary classifiers aux1 (after inception4a) and aux2 (after inception4d): adaptive 4x4
// average pool, BasicConv2d 1x1 to 128, FC 2048->1024, ReLU, dropout 0.7, FC classes. They run in
// training mode only, through forward_with_aux. Names are torchvision's (inception3a.branch2.1.conv.weight,
// aux1.fc1.weight, ...), so its state_dicts load by name.
//   x (N, C, H, W) with H, W >= 15 -> logits (N, classes)
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"
#include "models/registry.h"

namespace inq {

// What one forward pass produces. aux1 / aux2 are (N, classes) in training mode on a model with aux
// heads, undefined otherwise (as torchvision's GoogLeNetOutputs, whose fields are named the other way
// round: its aux_logits1 holds aux2's output).
struct GoogLeNetOutputs {
  Tensor logits;
  Tensor aux1, aux2;
};

class GoogLeNet : public Module {
 public:
  // Uses num_classes, in_channels, aux_logits and transform_input (which needs in_channels == 3).
  explicit GoogLeNet(const ModelOptions& options);

  // Main logits only; never runs the auxiliary heads.
  Tensor forward(const Tensor& x) override;
  // Main logits plus, in training mode with aux heads, the auxiliary logits.
  GoogLeNetOutputs forward_with_aux(const Tensor& x);
  std::string type_name() const override { return "GoogLeNet"; }
  bool has_aux_heads() const { return aux1_ != nullptr; }

 private:
  GoogLeNetOutputs run(const Tensor& x, bool with_aux);

  int64_t in_channels_;
  bool transform_input_;
  std::shared_ptr<Module> conv1_, maxpool1_, conv2_, conv3_, maxpool2_;
  std::shared_ptr<Module> inception3a_, inception3b_, maxpool3_;
  std::shared_ptr<Module> inception4a_, inception4b_, inception4c_, inception4d_, inception4e_, maxpool4_;
  std::shared_ptr<Module> inception5a_, inception5b_;
  std::shared_ptr<Module> aux1_, aux2_;  // null without aux heads
  std::shared_ptr<Module> avgpool_, dropout_, fc_;
};

// Whether a state-dict name belongs to the auxiliary classifiers (aux1.*, aux2.*), which only
// training uses: the one place that says which of GoogLeNet's weights a file may have or lack
// (torchvision's googlenet(aux_logits=False) state_dicts have none). models/registry.h
// optional_weight_names hands it to the weight loaders.
bool is_googlenet_aux_name(const std::string& name);

// The weight of each auxiliary loss in GoogLeNet's training loss.
inline constexpr float kGoogLeNetAuxLossWeight = 0.3f;

// GoogLeNet's training loss (Szegedy et al. 2015, section 5: the auxiliary losses are added with
// weight 0.3), summed in this order:
//   cross_entropy(logits) + aux_weight * cross_entropy(aux1) + aux_weight * cross_entropy(aux2)
// An undefined aux output (eval mode, or a model without aux heads) contributes nothing.
Tensor googlenet_loss(const GoogLeNetOutputs& outputs, const std::vector<int64_t>& targets,
                      float aux_weight = kGoogLeNetAuxLossWeight);

}  // namespace inq
