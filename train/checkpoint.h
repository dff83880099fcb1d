#pragma once
// Training checkpoints as safetensors files (docs/FORMATS_AND_RELIABILITY.md "Checkpoints and resume"):
//   tensors  "model.<dotted name>"                 weights and buffers
//            "optimizer.<param>.momentum_buffer"   optimizer state, one record per parameter
//   metadata "format" = "inq-checkpoint", "format_version", "arch",
//            "training_state" (JSON: epoch, iteration, best_acc1, generator state, timings),
//            "config" (the resolved TrainConfig as JSON),
//            "inq_state" (INQ runs: codebooks, steps, partition generator; the masks are the
//            optimizer's "<param>.inq_mask" tensors)
//            "prune_state" (pruning runs: method, thresholds, DNS's generator; the masks are the
//            optimizer's "<param>.prune_mask" tensors, DNS's dense weights "<param>.dns_weight")
// A plain weights file (no "format" key, unprefixed names, e.g. converted torchvision weights)
// can be loaded into a model by the same entry point.
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "train/train_config.h"
#include "framework/safetensors.h"
#include "inq/codebook.h"
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
  std::string prune_state;        // PruneSgd::prune_metadata(), empty when the run does not prune
};

void save_checkpoint(const std::string& path, const Module& model, const Optimizer* optimizer,
                     const CheckpointContents& contents);

// Reads and validates a checkpoint's metadata (format, version, config) without touching a model.
CheckpointContents read_checkpoint_info(const SafetensorsFile& file);

// The training loop's position: a checkpoint's "training_state" metadata.
struct TrainingProgress {
  int64_t epoch = 0;      // completed epochs
  int64_t iteration = 0;  // completed optimizer steps
  double best_acc1 = -1.0;
  std::string generator;  // Generator::state() of the default generator
  double train_seconds = 0.0;
  int64_t train_images = 0;
  int64_t phase_start_iteration = 0;
  double fp32_acc1 = -1.0;
  nlohmann::json inq_steps = nlohmann::json::array();  // INQ: per-step portions and accuracies
};

nlohmann::json to_json(const TrainingProgress& progress);
// Reads the training_state of a checkpoint (read_checkpoint_info) named `source`, whose INQ state (if
// any) has begun `inq_steps_begun` steps. Throws inq::Error when a key is missing, has the wrong JSON
// type or does not fit its C++ type, a counter is negative or phase_start_iteration > iteration, or
// inq_steps is not one object per INQ step begun.
TrainingProgress read_training_progress(const CheckpointContents& contents, const std::string& source,
                                        int inq_steps_begun);

// What `inq verify` checks in an INQ checkpoint: every tensor the inq_state metadata names, read
// from "model.<name>", with the entries its mask ("optimizer.<name>.inq_mask") still marks as float
// set to 0 (only frozen entries are quantized before the schedule ends), and its codebook.
struct QuantizedTensors {
  NamedTensorList tensors;
  std::map<std::string, Codebook> codebooks;
  int64_t float_entries = 0;  // entries still trained in float (set to 0 in `tensors`); 0 once INQ finished
};
// Throws inq::Error naming the file when the metadata or a tensor it names is missing or malformed.
QuantizedTensors read_quantized_tensors(const SafetensorsFile& file, const CheckpointContents& contents);

// What `inq verify` checks in a pruned checkpoint (a pruning run's, or an INQ run's that started
// from one): every "model.<name>" weight is exactly 0 wherever "optimizer.<name>.prune_mask" is 0.
struct PrunedPositions {
  int64_t tensors = 0, pruned = 0;   // masks found, and their pruned entries
  std::vector<std::pair<std::string, int64_t>> nonzero;  // (tensor, flat index) of pruned non-zeros
};
// Throws inq::Error naming the file when a mask has no weight of its shape.
PrunedPositions read_pruned_positions(const SafetensorsFile& file);

// Loads model weights from a checkpoint, a packed model (inq/packed_model.h) or a plain weights
// file, strictly (every missing, unexpected or mis-shaped name is reported in one error), except for
// the names `optional` accepts (models/registry.h optional_weight_names): those may be absent from
// the file (the model keeps its values; a one-line note on stderr says so) or from the model.
// Every command that loads weights goes through here, so the one rule on NaN and Inf lives here
// too: a loaded tensor with a non-finite value is refused, naming the file, the first offending
// tensor and flat index and the count, unless checks.allow_non_finite (eval and run's
// --allow-non-finite; then a one-line warning on stderr). checks.arch, when not empty, must be the
// arch a packed model records (inq eval / inq run's --arch); other files record none.
struct WeightChecks {
  bool allow_non_finite = false;
  std::string arch;
};
void load_model_weights(const SafetensorsFile& file, Module& model, const NamePredicate& optional = {},
                        const WeightChecks& checks = {});

// The NaN / Inf rule of load_model_weights on tensors already loaded from `source`: throws naming the
// file, the first offending tensor and index and the count, or warns on stderr when allowed.
void check_loaded_weights_finite(const NamedTensorList& destination, const std::string& source,
                                 bool allow_non_finite);

// The model records of a checkpoint ("model." prefix removed), as a plain weights file holds them;
// the optimizer state and metadata are left out.
SafetensorsFile checkpoint_model_tensors(const SafetensorsFile& file);

// The optimizer records of a checkpoint ("optimizer." prefix removed).
NamedTensorList optimizer_state_tensors(const SafetensorsFile& file);
// Loads the optimizer records of a checkpoint.
void load_optimizer_state(const SafetensorsFile& file, Optimizer& optimizer);

}  // namespace inq
