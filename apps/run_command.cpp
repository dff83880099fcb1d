#include "apps/run_command.h"

#include <memory>

#include "framework/threading.h"
#include "train/run_model.h"

namespace inq {

void register_run_command(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  auto threads = std::make_shared<int>(0);
  CLI::App* cmd = app.add_subcommand("run", "One eval-mode forward pass on a stored batch; writes the logits");
  cmd->add_option("-a,--arch", options->arch, "Model architecture")->required();
  cmd->add_option("--weights", options->weights, "Weights or checkpoint (safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--input", options->input, "safetensors file with 'input', an (N, C, H, W) float32 batch")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--output", options->output, "safetensors file to write 'output', the (N, classes) logits, to")
      ->required();
  cmd->add_option("--num-classes", options->num_classes, "Classes of the model the weights belong to")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--transform-input", options->transform_input,
                "googlenet: re-normalize the input as torchvision's pretrained GoogLeNet does");
  cmd->add_flag("--allow-non-finite", options->allow_non_finite,
                "Run weights holding NaN or Inf (with a warning) instead of refusing them");
  cmd->add_option("--threads", *threads, "Compute threads for OpenMP and OpenBLAS (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->callback([options, threads] {
    set_num_threads(*threads);
    run_model_on_file(*options);
  });
}

}  // namespace inq
