#pragma once
// The INQ section of a run's configuration (`inq quantize`): bits > 0 turns a run into an INQ
// schedule over its initial weights (docs/INQ_SPEC.md). Its keys in config.json and checkpoints
// are the names given to `visit` below (flat, beside the other sections' keys:
// framework/config_fields.h); apps/ adds its command-line flags.
#include <cstdint>
#include <string>
#include <vector>

#include "inq/inq_state.h"

namespace inq {

struct InqConfig {
  int bits = 0;                      // 0: not an INQ run
  std::vector<double> portions;      // accumulated portions; empty = the default for bits
  std::string strategy = "magnitude";
  int64_t epochs_per_step = 2;       // re-training epochs after each step but the last
  // After the last step: training batches over which BatchNorm's running statistics are
  // re-estimated for the final weights (0 = keep the statistics of the weights before the step).
  int64_t bn_batches = 200;
  // After the last step: epochs that re-train only what INQ never quantizes (BatchNorm, biases,
  // --exclude'd weights), every quantized weight frozen; 0 = none (docs/INQ_SPEC.md section 5).
  int64_t final_epochs = 0;
  std::vector<std::string> exclude;  // weight names (globs) left in float

  bool enabled() const { return bits > 0; }
  // The InqSgd options of this section; `seed` seeds the random partition.
  InqOptions options(uint64_t seed) const;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& v) {
    v("inq_bits", s.bits), v("inq_portions", s.portions), v("inq_strategy", s.strategy);
    v("epochs_per_step", s.epochs_per_step), v("bn_batches", s.bn_batches), v("inq_exclude", s.exclude);
    v("final_epochs", s.final_epochs);
  }
  void validate() const;
};

inline constexpr int64_t kMaxBnBatches = int64_t{1} << 30;

}  // namespace inq
