#pragma once
// `inq reproduce`: the small-scale experiments of docs/REPRODUCTION.md section 1 in one command.
//   1. FP32 baseline per seed (or given weights)
//   2. bit-width sweep: INQ at each --bits with the magnitude partition
//   3. partition strategy: magnitude vs random at 5 bits
//   4. one-shot quantization of all weights at each bit-width, no re-training (BatchNorm
//      statistics re-estimated, as after INQ's last step)
//   5. accuracy after quantizing and after re-training at every step (from each INQ run)
// Every experiment runs in its own run folder under --out; a finished one is read back, an
// interrupted one is resumed from its last checkpoint, so re-running the command continues.
// Writes results.json (rows, one per table row), results.md (the paper's layout),
// histogram.json (one layer's weights before and after INQ) and, with matplotlib, PNG figures.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/train_config.h"

namespace inq {

struct ReproduceOptions {
  std::string arch = "resnet20";
  std::string out;                      // default runs/reproduce-<arch>
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::vector<uint64_t> seeds = {1};
  std::vector<int> bits = {5, 4, 3, 2};
  bool random_partition = true;         // magnitude vs random at 5 bits
  std::string fp32_weights;             // skip FP32 training and start from these (one seed)
  int64_t fp32_epochs = 0;              // 0: the arch's recipe
  int64_t epochs_per_step = 2;
  int64_t bn_batches = 200;             // BatchNorm re-estimation after the last step and one-shot
  int64_t train_limit = 0, test_limit = 0;
  int threads = 0, workers = 2;
  bool plots = true;                    // run tools/plot_results.py when python3 + matplotlib exist
  // The pruning experiment instead (train/reproduce_prune.cpp): FP32, magnitude pruning, DNS,
  // 5-bit INQ, and pruning + INQ at each of `sparsities` (DNS + INQ also at `prune_bits`).
  bool prune = false;
  std::vector<double> sparsities = {0.9};
  std::vector<int> prune_bits = {4, 3};
  // Which row groups besides FP32 and DNS pruning to run: "dns-inq5" (DNS + 5-bit INQ), "inq5"
  // (5-bit INQ alone), "magnitude" (magnitude pruning, and + 5-bit INQ), "dns-bits" (DNS + INQ
  // at prune_bits). A run whose checkpoints are gone can add its missing rows without redoing the rest.
  std::vector<std::string> prune_rows = {"dns-inq5", "inq5", "magnitude", "dns-bits"};
  int64_t prune_epochs = 0;             // re-training epochs after pruning; 0: the FP32 epochs
};

// The line printed for a one-shot row: its accuracy and, when BatchNorm statistics were
// re-estimated over bn_batches_used > 0 batches, the accuracy before that.
std::string one_shot_summary(int bits, uint64_t seed, double acc1_quantized, double acc1, int64_t bn_batches_used);
// Runs (or continues) every experiment and writes the summaries; returns the path of results.md.
std::string run_reproduce(const ReproduceOptions& options);
// The pruning experiment (options.prune): writes prune_results.json, prune_results.md and, with
// matplotlib, prune_accuracy_vs_compression.png under the output folder; returns the .md path.
std::string run_reproduce_prune(const ReproduceOptions& options);

// Runs tools/<script> on the folder `out` with Debian's python3; when it fails (no matplotlib), says
// on stderr that the `what` ("figures", "figure") were skipped. Both experiments draw this way.
void run_plot_script(const std::string& script, const std::string& out, const std::string& what);

// Runs the configured training, INQ or pruning run to the end, resuming it if an earlier
// invocation was interrupted (or reading it back when it finished), and returns its results.json.
nlohmann::json run_or_continue(TrainConfig config);

}  // namespace inq
