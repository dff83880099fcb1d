#include "train/run_model.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "train/inference_model.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"
#include "framework/threading.h"
#include "models/registry.h"

namespace inq {

namespace {

// The batch in `file`, checked before any model is built so that a wrong file fails fast.
Tensor input_batch(const SafetensorsFile& file) {
  const StoredTensor* input = file.find("input");
  if (!input) {
    std::vector<std::string> names;
    for (const auto& [name, t] : file.tensors) names.push_back(name);
    throw Error(fmt::format(
        "Given --input '{}', expected a tensor named 'input' (an N, C, H, W float32 batch), but the file holds "
        "only: {}",
        file.source, names.empty() ? "no tensors" : fmt::format("{}", fmt::join(names, ", "))));
  }
  INQ_CHECK(input->dtype == StoredDtype::F32, "Given --input '{}', expected 'input' to be F32, but got {} instead",
            file.source, stored_dtype_name(input->dtype));
  INQ_CHECK(input->shape.size() == 4,
            "Given --input '{}', expected 'input' of rank 4 (N, C, H, W), but got shape {} instead", file.source,
            shape_str(input->shape));
  for (int64_t d : input->shape)
    INQ_CHECK(d > 0, "Given --input '{}', expected 'input' with no empty dim, but got shape {} instead",
              file.source, shape_str(input->shape));
  return input->f32;
}

}  // namespace

void run_model_on_file(const RunOptions& options) {
  const auto known = available_models();
  INQ_CHECK(std::find(known.begin(), known.end(), options.arch) != known.end(), "Given --arch '{}', expected one of: {}",
            options.arch, fmt::join(known, ", "));
  check_output_is_not_input("--output", options.output, {{"--weights", options.weights}, {"--input", options.input}});
  const Tensor x = input_batch(read_safetensors(options.input));
  const int64_t channels = x.size(1);
  INQ_CHECK(!options.transform_input || options.arch == "googlenet",
            "Given --transform-input with --arch '{}', expected --arch googlenet (the only model with it)",
            options.arch);
  check_input_size(options.arch, x.size(2), x.size(3), fmt::format("--input '{}'", options.input));
  std::shared_ptr<Module> model;
  try {
    // A packed model runs from its codes (train/inference_model.h).
    model = load_inference_model(options.arch,
                                 inference_options({.num_classes = options.num_classes,
                                                    .in_channels = channels,
                                                    .transform_input = options.transform_input}),
                                 options.weights, {.allow_non_finite = options.allow_non_finite, .arch = options.arch})
                .model;
  } catch (const Error& e) {
    // The model's shape came from the input and the flag; say so, since a channel or class count that
    // does not match the weights shows up only as mismatched tensors here. Other errors (a bad
    // file, missing names) have nothing to do with it.
    if (std::string(e.what()).find("size mismatch for ") == std::string::npos) throw;
    throw Error(fmt::format("{}\n(the {} model was built for {} input channels, from --input's shape {}, and {} "
                            "classes, from --num-classes)",
                            e.what(), options.arch, channels, shape_str(x.shape()), options.num_classes));
  }
  model->eval();
  NoGradGuard no_grad;
  const Tensor logits = model->forward(x);
  write_safetensors(options.output, {{"output", logits}}, {{"arch", options.arch}, {"weights", options.weights}});
}

}  // namespace inq
