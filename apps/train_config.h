#pragma once
// The resolved configuration of a training run: every flag of `inq train` after defaults are
// applied. It is written to the run folder as config.json and stored in every checkpoint.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace inq {

struct TrainConfig {
  std::string arch = "lenet5";
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | cifar10 | imagefolder
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int64_t num_classes = 0;            // the model's classes; 0 = the dataset's
  int64_t image_size = 224;           // imagefolder: the crop fed to the model (image_size^2)
  int64_t resize_size = 256;          // imagefolder evaluation: shorter side before the center crop
  int64_t skip_bad_images = 0;        // imagefolder training: skip up to N undecodable files (0 = stop)
  int64_t epochs = 5;
  int64_t batch_size = 128;
  int64_t eval_batch_size = 500;
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
  bool decay_norm_and_bias = false;   // PyTorch's default applies decay to all; the paper's recipe too
  std::string schedule = "cosine";    // cosine | step | multistep | constant (per iteration)
  int64_t step_size = 0;              // step: in epochs
  std::vector<int64_t> milestones;    // multistep: in epochs
  double gamma = 0.1;
  double warmup_epochs = 0.0;
  uint64_t seed = 1;
  int workers = 2;                    // background data threads
  int threads = 0;                    // compute threads (OpenMP + OpenBLAS); 0 = all cores
  int64_t print_freq = 100;           // batches between progress lines
  bool augment = true;                // random crop (pad 2; CIFAR-10 pad 4; imagefolder RandomResizedCrop) + flip
  int64_t train_limit = 0;            // use only the first N training examples (0 = all)
  int64_t test_limit = 0;             // evaluate only the first N test examples (0 = all)
  std::string weights;                // initial weights (checkpoint or weights file); empty = fresh init
  // INQ (inq quantize): bits > 0 turns the run into an INQ schedule over the initial weights.
  int inq_bits = 0;
  std::vector<double> inq_portions;   // accumulated portions; empty = the default for inq_bits
  std::string inq_strategy = "magnitude";
  int64_t epochs_per_step = 2;        // re-training epochs after each step but the last
  // After the last step: training batches over which BatchNorm's running statistics are
  // re-estimated for the final weights (0 = keep the statistics of the weights before the step).
  int64_t bn_batches = 200;
  // After the last step: epochs that re-train only what INQ never quantizes (BatchNorm, biases,
  // --exclude'd weights), every quantized weight frozen; 0 = none (INQ_SPEC.md section 5).
  int64_t final_epochs = 0;
  std::vector<std::string> inq_exclude;  // weight names (globs) left in float
  std::string out;                    // run folder
  std::string resume;                 // checkpoint to resume from
  bool force = false;                 // allow reusing a non-empty run folder
};

// The recipe an architecture trains with when the user does not say otherwise: epochs, batch
// size, learning rate and augmentation. lenet5 (the quick demo): 5 epochs, batch 64, lr 0.05, no
// augmentation (measured: 90.1% after 5 epochs; with crop+flip it under-fits, 88.2%). resnet20:
// REPRODUCTION.md section 1 (15 epochs, batch 128, lr 0.1 cosine, crop+flip).
struct TrainRecipe {
  int64_t epochs;
  int64_t batch_size;
  double lr;
  bool augment;
};
TrainRecipe recipe_for(const std::string& arch);

nlohmann::json to_json(const TrainConfig& c);
// Reads a config written by to_json; unknown keys and out-of-range values are errors (missing keys
// keep their defaults).
TrainConfig train_config_from_json(const nlohmann::json& j);

// Throws inq::Error naming the first field outside its range. The command-line flags have the same
// lower bounds; the upper bounds (kMaxEpochs, kMaxBatchSize) keep the iteration arithmetic
// (epochs x batches per epoch, milestones x batches per epoch) far from int64 overflow, so a config
// read back from a crafted checkpoint or config.json cannot reach it.
void validate_train_config(const TrainConfig& c);
inline constexpr int64_t kMaxEpochs = 1'000'000;
inline constexpr int64_t kMaxBatchSize = int64_t{1} << 20;
inline constexpr int64_t kMaxBnBatches = int64_t{1} << 30;

}  // namespace inq
