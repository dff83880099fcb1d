// Writes a plain weights file of one architecture whose Conv2d and Linear weights are quantized
// one-shot to b bits (the INQ codebook of each tensor, inq/quantizer.h), from the model's own random
// initialization. For speed and memory benchmarks only: the values are not trained, but the tensors
// have the real sizes, so the packed file has the real size and the kernels do the real work.
// bench/compare_packed_inference.sh packs the result with `inq pack --bits b`.
//
//   build/make_quantized_weights <arch> <bits> <out.safetensors> [num_classes]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "framework/error.h"
#include "framework/random.h"
#include "framework/safetensors.h"
#include "inq/codebook.h"
#include "inq/quantizer.h"
#include "models/registry.h"

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: %s <arch> <bits> <out.safetensors> [num_classes]\n", argv[0]);
    return 2;
  }
  try {
    const std::string arch = argv[1];
    const int bits = std::atoi(argv[2]);
    const bool small = arch == "lenet5" || arch == "resnet20";
    const int64_t classes = argc == 5 ? std::atoll(argv[4]) : small ? 10 : 1000;
    inq::default_generator().seed(0);
    auto model = inq::create_model(
        arch, inq::inference_options({.num_classes = classes, .in_channels = arch == "lenet5" ? 1 : 3}));
    std::vector<std::pair<std::string, inq::Tensor>> tensors;
    for (auto& p : model->named_parameters()) {
      if (p.role == inq::ParamRole::Weight && p.tensor.dim() >= 2) {
        const inq::Codebook cb = inq::make_codebook(p.tensor, bits, p.name);
        inq::quantize_tensor_(p.tensor, cb, p.name);
      }
    }
    for (const auto& t : model->state_dict()) tensors.emplace_back(t.name, t.tensor);
    inq::write_safetensors(argv[3], tensors);
    std::printf("%s: %s with %d-bit one-shot quantized conv and linear weights\n", argv[3], arch.c_str(), bits);
    return 0;
  } catch (const inq::Error& e) {
    std::fprintf(stderr, "make_quantized_weights: error: %s\n", e.what());
    return 1;
  }
}
