#pragma once
// Weight partition (docs/INQ_SPEC.md section 4): which still-float weights of a tensor join the frozen
// (quantized) group at step k of a schedule of accumulated portions sigma_1 < ... < sigma_K = 1.
// At step k a tensor of N weights has exactly frozen_target(sigma_k, N) = floor(sigma_k * N) frozen
// weights; the new ones are chosen among the still-float weights only, so the frozen set only grows.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "framework/random.h"
#include "framework/tensor.h"

namespace inq {

// Throws inq::Error unless the portions are non-empty, finite, strictly increasing, in (0, 1] and end
// at exactly 1.
void validate_portions(std::span<const double> portions);

// floor(sigma * n) for sigma in (0, 1] and n >= 0, without floating error: sigma is read as the
// shortest decimal that converts back to it (what was written: 0.7, not the double just below 0.7),
// and the product is floored in integers. sigma = 1 gives exactly n. (0.7 * 90 is 62.99999999999999
// in double; frozen_target(0.7, 90) is 63.)
int64_t frozen_target(double sigma, int64_t n);

enum class PartitionStrategy {
  Magnitude,  // "magnitude" (pruning-inspired, the default): largest |w| first, ties by lower flat index
  Random,     // "random": a uniform random subset of the needed size
};

const char* partition_strategy_name(PartitionStrategy strategy);
// "magnitude" or "random"; anything else throws, listing both.
PartitionStrategy parse_partition_strategy(const std::string& name);

// Chooses `count` flat indices among the entries with trainable[i] != 0 (the still-float weights;
// `trainable` has w's shape and holds 0 for frozen entries) and returns them ascending.
//   Magnitude: the `count` largest |w[i]|, ties broken by the lower index.
//   Random:    a uniform random subset of size `count` (partial Fisher-Yates over the still-float
//              indices in ascending order, drawing from `generator`; the generator is not used by
//              Magnitude).
// Throws, naming `name`, when count is negative or exceeds the number of still-float entries, when the
// shapes differ, or (Magnitude) when a still-float weight is NaN or Inf.
std::vector<int64_t> choose_partition(const Tensor& w, const Tensor& trainable, int64_t count,
                                      PartitionStrategy strategy, Generator& generator,
                                      const std::string& name);

// The paper's schedules by name (section 4): "alexnet" {0.3, 0.6, 0.8, 1}; "vgg16", "resnet18",
// "resnet50" {0.5, 0.75, 0.875, 1}; "googlenet" {0.2, 0.4, 0.6, 0.8, 1}; "resnet18-4bit",
// "resnet18-3bit", "resnet18-2bit" (the bit-width table); and the small-scale defaults per bit-width of
// docs/REPRODUCTION.md section 1: "5bit" {0.5, 0.75, 0.875, 1}, "4bit" / "3bit" / "2bit" as the ResNet-18
// schedules of the same width. Unknown names throw, listing the known ones.
std::vector<double> portion_preset(const std::string& name);
std::vector<std::string> portion_preset_names();
// The small-scale default for a bit-width: portion_preset("<bits>bit") for bits 2..5; other widths
// throw (give the portions explicitly).
std::vector<double> default_portions(int bits);

}  // namespace inq
