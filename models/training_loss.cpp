#include "models/training_loss.h"

#include "layers/loss.h"
#include "models/googlenet.h"

namespace inq {

TrainingOutput training_forward(Module& model, const Tensor& images, const std::vector<int64_t>& labels) {
  if (auto* googlenet = dynamic_cast<GoogLeNet*>(&model)) {
    // forward_with_aux leaves the aux outputs undefined in eval mode or without aux heads, and
    // googlenet_loss then adds nothing to the main cross entropy.
    const GoogLeNetOutputs out = googlenet->forward_with_aux(images);
    return {out.logits, googlenet_loss(out, labels)};
  }
  Tensor logits = model.forward(images);
  Tensor loss = cross_entropy(logits, labels);
  return {logits, loss};
}

}  // namespace inq
