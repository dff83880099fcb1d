#pragma once
// Training checkpoints as safetensors files (FORMATS_AND_RELIABILITY.md "Checkpoints"):
//   tensors  "model.<dotted name>"                 weights and buffers
//            "optimizer.<param>.momentum_buffer"   optimizer state, one record per parameter
//   metadata "format" = "inq-checkpoint", "format_version", "arch",
//            "training_state" (JSON: epoch, iteration, best_acc1, generator state, timings),
//            "config" (the resolved TrainConfig as JSON),
//            "inq_state" (INQ runs: codebooks, steps, partition generator; the masks are the
//            optimizer's "<param>.inq_mask" tensors)
// A plain weights file (no "format" key, unprefixed names, e.g. converted torchvision weights)
// can be loaded into a model by the same entry point.
#include <nlohmann/json.hpp>
#include <string>

#include "apps/train_config.h"
#include "framework/safetensors.h"
#include "layers/module.h"
#include "optim/optimizer.h"

namespace inq {

inline constexpr const char* kCheckpointFormat = "inq-checkpoint";
inline constexpr int kCheckpointVersion = 1;

struct CheckpointContents {
  std::string arch;
  TrainConfig config;
  nlohmann::json training_state;  // epoch, iteration, best_acc1, generator, ...
  std::string inq_state;          // InqSgd::inq_metadata(), empty when the run is not INQ
};

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const CheckpointContents& contents);

// Reads and validates a checkpoint's metadata (format, version, config) without touching a model.
CheckpointContents read_checkpoint_info(const SafetensorsFile& file);

// Loads model weights from a checkpoint or a plain weights file, strictly (every missing,
// unexpected or mis-shaped name is reported in one error).
void load_model_weights(const SafetensorsFile& file, Module& model);

// The optimizer records of a checkpoint ("optimizer." prefix removed).
NamedTensorList optimizer_state_tensors(const SafetensorsFile& file);
// Loads the optimizer records of a checkpoint.
void load_optimizer_state(const SafetensorsFile& file, Optimizer& optimizer);

}  // namespace inq
