#include "apps/commands.h"

#include <fmt/format.h>

#include <memory>

#include "apps/config_flags.h"
#include "apps/distributed_launch.h"
#include "data/verify_data.h"
#include "framework/error.h"
#include "framework/threading.h"
#include "models/registry.h"
#include "train/evaluate.h"
#include "train/trainer.h"

namespace inq {

void register_train_command(CLI::App& app) {
  auto config = std::make_shared<TrainConfig>();
  auto distributed = std::make_shared<bool>(false);
  TrainConfig& c = *config;
  CLI::App* cmd = app.add_subcommand("train", "Train a model from scratch or from --weights (or resume a run)");
  add_run_flags(cmd, c.run,
                RunFlagTexts{.weights = "Initial weights (checkpoint or weights file) to fine-tune from",
                             .seed = "Random seed (initialization, data order, augmentation)",
                             .out = "Run folder (default runs/<arch>-<seed>)"},
                /*epochs=*/true);
  add_data_flags(cmd, c.data, /*training=*/true);
  add_optimizer_flags(cmd, c.optim, "Initial learning rate (default: the arch's recipe)");
  add_schedule_flags(cmd, c.schedule, "the whole run");
  add_distributed_flag(cmd, *distributed);
  cmd->callback([config, distributed, cmd] {
    if (!config->run.resume.empty()) {
      *config = resume_config(*cmd, *config);
      INQ_CHECK(!config->inq.enabled(),
                "Given --resume '{}', expected the checkpoint of plain training to continue with train, but it is of "
                "an INQ run (continue it with inq quantize --resume)",
                config->run.resume);
      INQ_CHECK(!config->prune.enabled(),
                "Given --resume '{}', expected the checkpoint of plain training to continue with train, but it is of "
                "a pruning run (continue it with inq prune --resume)",
                config->run.resume);
    } else {
      apply_recipe_defaults(*cmd, *config);
      resolve_dataset(*cmd, config->data, "--eval-batch-size");
    }
    TrainConfig& cfg = *config;
    if (cfg.run.out.empty()) cfg.run.out = fmt::format("runs/{}-{}", cfg.run.arch, cfg.run.seed);
    auto hooks = distributed_hooks(cfg, *distributed);
    set_num_threads(cfg.run.threads);
    Trainer trainer(cfg, std::move(hooks));
    trainer.fit();
  });
}

void register_eval_command(CLI::App& app) {
  auto config = std::make_shared<TrainConfig>();
  auto weights = std::make_shared<std::string>();
  auto results = std::make_shared<std::string>("runs/eval_results.csv");
  auto allow_non_finite = std::make_shared<bool>(false);
  TrainConfig& c = *config;
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate weights or a checkpoint on the test set");
  cmd->add_option("-a,--arch", c.run.arch, "Model architecture")->check(CLI::IsMember(available_models()))->required();
  cmd->add_option("--weights", *weights, "Checkpoint, packed model or weights file (safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  add_data_flags(cmd, c.data, /*training=*/false);
  cmd->add_option("--threads", c.run.threads, "Compute threads for OpenMP and OpenBLAS (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-b,--batch-size", c.data.eval_batch_size, "Evaluation batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--results", *results, "CSV file to append a results row to (empty: none)");
  cmd->add_flag("--allow-non-finite", *allow_non_finite,
                "Evaluate weights holding NaN or Inf (with a warning) instead of refusing them");
  cmd->callback([config, weights, results, allow_non_finite, cmd] {
    resolve_dataset(*cmd, config->data, "--batch-size");
    set_num_threads(config->run.threads);
    const EvalResult r = evaluate_weights(*config, *weights, *allow_non_finite);
    fmt::print(" * Acc@1 {:.3f} Acc@5 {:.3f}\n", 100.0 * r.acc1, 100.0 * r.acc5);
    if (!results->empty()) append_eval_row(*results, *config, *weights, r);
  });
}

void register_verify_data_command(CLI::App& app, int* exit_status) {
  auto dir = std::make_shared<std::string>();
  auto threads = std::make_shared<int>(0);
  CLI::App* cmd = app.add_subcommand(
      "verify-data",
      "Decode every image of an image folder (DIR/train and DIR/val, or DIR itself) and list the files that fail. "
      "Exit status: 0 all decode, 3 some do not, 1 DIR is not a readable image folder, 2 bad flags");
  cmd->add_option("dir", *dir, "Dataset root with train/ and val/, or an image folder (<class>/<image>)")->required();
  cmd->add_option("-j,--workers", *threads, "Decoding threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->callback([dir, threads, exit_status] {
    const VerifyDataReport report = verify_image_data(*dir, *threads, stderr);
    *exit_status = print_verify_data_report(report, stdout);
  });
}

}  // namespace inq
