// `inq prune`: Dynamic Network Surgery or magnitude pruning of pre-trained weights, with
// re-training (docs/INQ_SPEC.md section 6, docs/CLI.md). The run folder is a Trainer's: config.json,
// summary.csv, results.json (with a "prune" part), last/final.safetensors and prune_report.txt.
#include <fmt/format.h>

#include <memory>

#include "apps/commands.h"
#include "apps/config_flags.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/threading.h"
#include "train/trainer.h"

namespace inq {

void register_prune_command(CLI::App& app) {
  auto config = std::make_shared<TrainConfig>();
  TrainConfig& c = *config;
  // Re-training after pruning fine-tunes a trained model: lr 0.01 as INQ's re-training.
  c.optim.lr = 0.01;
  CLI::App* cmd = app.add_subcommand(
      "prune", "Prune pre-trained weights (Dynamic Network Surgery or magnitude) and re-train them");
  add_run_flags(cmd, c.run,
                RunFlagTexts{.weights = "Pre-trained FP32 checkpoint or weights file to prune",
                             .seed = "Random seed (data order, augmentation, DNS's mask-update draws)",
                             .out = "Run folder (default runs/<arch>-<method>-<sparsity or rate>-<seed>)"},
                /*epochs=*/true);
  PruneConfig& p = c.prune;
  cmd->add_option("--method", p.method, "dns (Dynamic Network Surgery, masks updated while training) or magnitude "
                                        "(Han et al.: the smallest weights, mask fixed while re-training)")
      ->check(CLI::IsMember({"dns", "magnitude"}));
  cmd->add_option("--sparsity", p.sparsity, "Fraction of the weights to prune, in [0, 1) (magnitude: exact; dns: "
                                            "sets each layer's rate c so that the first mask prunes this much)")
      ->check(CLI::Range(0.0, 0.999999));
  cmd->add_option("--scope", p.scope, "The sparsity holds per layer, or over all pruned weights together")
      ->check(CLI::IsMember({"layer", "global"}));
  cmd->add_option("--rate", p.rate, "dns without --sparsity: the rate c of t = max(mu + c * sigma, 0), every layer")
      ->check(CLI::Range(-100.0, 100.0));
  cmd->add_option("--dns-gamma", p.gamma, "dns: masks update with probability (1 + gamma * iter)^(-power)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--dns-power", p.power, "dns: the power of that probability")->check(CLI::NonNegativeNumber);
  cmd->add_option("--dns-stop-iteration", p.stop_iteration,
                  "dns: no mask update from this training iteration on (0: updates until the end)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--exclude", p.exclude, "Weight names (globs) to leave unpruned (biases never are)");
  cmd->add_option("--layer-sparsity", p.layer_sparsity,
                  "NAME=FRACTION (NAME a glob; repeatable): this layer's target instead of --sparsity (layer scope), "
                  "e.g. 'classifier.0.weight=0.98'");
  add_data_flags(cmd, c.data, /*training=*/true);
  add_optimizer_flags(cmd, c.optim, "Re-training learning rate (default 0.01)");
  add_schedule_flags(cmd, c.schedule, "the re-training");
  cmd->callback([config, cmd] {
    TrainConfig& cfg = *config;
    if (!cfg.run.resume.empty()) {
      const std::string resume = cfg.run.resume;
      cfg = resume_config(*cmd, cfg);
      INQ_CHECK(cfg.prune.enabled(), "Given --resume '{}', expected a checkpoint of a pruning run, but it is not one; "
                "start pruning from it with --weights {}", resume, resume);
    } else {
      INQ_CHECK(cmd->count("--arch") > 0, "Given prune without --arch, expected the model architecture");
      INQ_CHECK(!cfg.run.weights.empty(), "Given prune without --weights, expected the pre-trained model to prune");
      INQ_CHECK(cmd->count("--method") > 0, "Given prune without --method, expected --method dns or --method "
                "magnitude");
      const bool sparsity = cmd->count("--sparsity") > 0, rate = cmd->count("--rate") > 0;
      const bool dns = cfg.prune.method == "dns";
      INQ_CHECK(dns || sparsity, "Given --method magnitude without --sparsity, expected the fraction to prune");
      INQ_CHECK(dns || !rate, "Given --rate with --method magnitude, expected --rate only with --method dns");
      INQ_CHECK(!(sparsity && rate), "Given both --sparsity and --rate, expected one: --sparsity chooses the rates");
      INQ_CHECK(!dns || sparsity || rate, "Given --method dns without --sparsity or --rate, expected one of them");
      INQ_CHECK(cmd->count("--layer-sparsity") == 0 || (sparsity && cfg.prune.scope == "layer"),
                "Given --layer-sparsity, expected it with --sparsity (the other layers' target) and --scope layer");
      for (const auto& entry : cfg.prune.layer_sparsity) {
        try {
          parse_layer_sparsity(entry);
        } catch (const Error& e) {
          throw Error(fmt::format("Given --layer-sparsity '{}': {}", entry, e.what()));
        }
      }
      for (const char* flag : {"--dns-gamma", "--dns-power", "--dns-stop-iteration"})
        INQ_CHECK(dns || cmd->count(flag) == 0, "Given {} with --method magnitude, expected it only with --method dns",
                  flag);
      // The recipe's epochs, batch and augmentation; the learning rate stays the re-training one.
      const double lr = cfg.optim.lr, warmup = cfg.schedule.warmup_epochs;
      apply_recipe_defaults(*cmd, cfg);
      if (cmd->count("--lr") == 0) cfg.optim.lr = lr;
      if (cmd->count("--warmup-epochs") == 0) cfg.schedule.warmup_epochs = warmup;
      resolve_dataset(*cmd, cfg.data, "--eval-batch-size");
    }
    if (cfg.run.out.empty())
      cfg.run.out = fmt::format("runs/{}-{}-{}-{}", cfg.run.arch, cfg.prune.method,
                                cfg.prune.sparsity >= 0 ? fmt::format("s{}", cfg.prune.sparsity)
                                                        : fmt::format("c{}", cfg.prune.rate),
                                cfg.run.seed);
    set_num_threads(cfg.run.threads);
    Trainer trainer(cfg);
    trainer.fit();
    if (trainer.writes_run_folder()) std::fputs(read_file(trainer.run_file("prune_report.txt")).c_str(), stdout);
  });
}

}  // namespace inq
