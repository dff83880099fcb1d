#pragma once
// One entry point for the commands that only run a model forward (`inq eval`, `inq run`,
// `inq bench-model`, and the embeddable API in examples/): build the architecture and load a weights
// file for inference. A packed model (inq/packed_model.h) runs from its b-bit codes
// (inq/packed_inference.h): the model is built without filling its float weights, and the quantized
// Conv2d / Linear weights are never decoded into a float tensor. Any other file (a plain weights file,
// a checkpoint) loads as load_model_weights loads it. Either way the float convolutions are then
// frozen (layers/inference_prep.h): the model is for inference only, its conv weights are no longer
// parameters, and Winograd layers keep their transformed filters.
#include <memory>
#include <string>

#include "inq/packed_inference.h"
#include "layers/module.h"
#include "models/registry.h"
#include "train/checkpoint.h"

namespace inq {

struct InferenceModel {
  std::shared_ptr<Module> model;  // in eval mode
  bool packed = false;            // running from codes
  PackedInferenceSummary packed_summary;  // when packed
};

// Throws inq::Error naming `weights` (through the loaders' messages) for any file it cannot load,
// and applies `checks` (arch, NaN / Inf) as load_model_weights does.
InferenceModel load_inference_model(const std::string& arch, const ModelOptions& options, const std::string& weights,
                                    const WeightChecks& checks = {});

}  // namespace inq
