#pragma once
// `inq run`: one eval-mode forward pass of a model on a stored batch, the logits written to a file.
// For checking this framework against others (e.g. torchvision with the same weights) and for
// using trained weights outside the training driver.
#include <cstdint>
#include <string>

namespace inq {

struct RunOptions {
  std::string arch;
  std::string weights;  // plain weights file or checkpoint (safetensors)
  std::string input;    // safetensors holding "input": an (N, C, H, W) F32 batch; other tensors are ignored
  std::string output;   // safetensors written atomically with "output": the (N, num_classes) logits
  // The model is built with this many classes and with C input channels (from the input's shape);
  // the weights must match both.
  int64_t num_classes = 1000;
  // GoogLeNet only: the input re-normalization torchvision's pretrained GoogLeNet weights expect.
  bool transform_input = false;
  // Load weights holding NaN or Inf (with a warning) instead of refusing them (load_model_weights).
  bool allow_non_finite = false;
};

// Throws inq::Error naming the file and what is wrong for: an unknown arch, a missing or non-F32
// "input", a rank other than 4 or an empty dim, weights that do not fit the model (channel count
// or class count included), inputs the model cannot take (e.g. too small), non-finite weights
// (unless allow_non_finite), a packed model of another arch, and an output that is --weights or
// --input (it would destroy the input).
void run_model_on_file(const RunOptions& options);

}  // namespace inq
