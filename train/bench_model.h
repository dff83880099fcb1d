#pragma once
// `inq bench-model`: inference speed and memory of one architecture and weights file, the way the
// packed-inference benchmarks (bench/compare_packed_inference.sh) measure it: the model is loaded as
// `inq eval` / `inq run` load it (a packed file runs from its codes, train/inference_model.h), a
// fixed random batch goes through `warmup` forward passes, then `rounds` timed ones; the median
// pass gives images per second. The peak resident memory is the process's (getrusage ru_maxrss).
#include <cstdint>
#include <string>

namespace inq {

struct BenchModelOptions {
  std::string arch;
  std::string weights;
  int64_t batch = 1;
  int64_t rounds = 20;
  int64_t warmup = 3;
  int64_t num_classes = 0;   // 0: 1000 for the ImageNet models, 10 for lenet5 and resnet20
  int64_t image_size = 0;    // 0: 224 for the ImageNet models, 32 for resnet20, 28 for lenet5
};

struct BenchModelResult {
  bool packed = false;
  int packed_layers = 0;
  int64_t code_bytes = 0;
  double median_seconds = 0;  // one forward pass of the batch
  double images_per_second = 0;
  double peak_rss_mib = 0;
};

// Throws inq::Error naming the flag (--arch, --weights, --batch, ...) for bad input.
BenchModelResult bench_model(const BenchModelOptions& options);

// The process's peak resident memory so far, in MiB.
double peak_resident_mib();

}  // namespace inq
