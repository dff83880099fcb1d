#pragma once
// The training loss of any model of the zoo, for the training loop: one entry point, so the loop
// does not need to know which models have extra training-only outputs.
#include <cstdint>
#include <vector>

#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

struct TrainingOutput {
  Tensor logits;  // the main classifier's (N, classes) logits: what accuracy is counted on
  Tensor loss;    // scalar, to call backward() on
};

// One forward pass of `model` (in the mode it is in) and its training loss against `labels`:
// - a GoogLeNet with aux heads, in training mode: googlenet_loss, i.e.
//     cross_entropy(logits) + 0.3 * cross_entropy(aux1) + 0.3 * cross_entropy(aux2)
//   (Szegedy et al. 2015 section 5; torchvision's reference training adds them the same way);
// - otherwise (every other model, a GoogLeNet without aux heads or in eval mode):
//     cross_entropy(model.forward(images), labels).
TrainingOutput training_forward(Module& model, const Tensor& images, const std::vector<int64_t>& labels);

}  // namespace inq
