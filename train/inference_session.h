#pragma once
// The embeddable inference API (README "Using packed models from C++", examples/packed_inference.cpp):
// load a model by architecture name from a packed model (it runs from its b-bit codes) or a float
// weights file, run batches, read the logits. Every failure (a missing or corrupt file, a file of
// another architecture, an input of the wrong shape) throws inq::Error (framework/error.h, a
// std::runtime_error) whose message names the file or the shape, as the `inq` commands print them.
//
//   inq::InferenceSession session("alexnet", "alexnet-5bit.safetensors", {.threads = 2});
//   std::vector<float> logits = session.run(images.data(), {1, 3, 224, 224});  // 1 x 1000
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

struct InferenceSessionOptions {
  int64_t num_classes = 0;  // 0: 1000 for the ImageNet models, 10 for lenet5 and resnet20
  int64_t in_channels = 0;  // 0: 1 for lenet5, 3 for the others
  int threads = 0;          // compute threads (OpenMP and OpenBLAS); 0: all cores
};

class InferenceSession {
 public:
  InferenceSession(const std::string& arch, const std::string& weights, const InferenceSessionOptions& options = {});

  // Logits (N, classes) of a batch of N images (N, C, H, W).
  Tensor run(const Tensor& images);
  // The same on a row-major float buffer of shape `shape` (N, C, H, W); returns N * classes floats.
  std::vector<float> run(const float* images, const Shape& shape);

  // Process-wide, as every thread setting of this project (framework/threading.h).
  void set_threads(int threads);
  const std::string& arch() const { return arch_; }
  bool packed() const { return packed_; }          // running from b-bit codes
  int64_t code_bytes() const { return code_bytes_; }  // the codes held in memory (0 for a float file)
  int64_t num_classes() const { return num_classes_; }

 private:
  std::string arch_, weights_;
  std::shared_ptr<Module> model_;
  bool packed_ = false;
  int64_t code_bytes_ = 0;
  int64_t in_channels_ = 0, num_classes_ = 0;
};

}  // namespace inq
