// `inq quantize` and `inq verify`: INQ from the command line (docs/INQ_SPEC.md).
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include "train/checkpoint.h"
#include "apps/commands.h"
#include "apps/config_flags.h"
#include "apps/distributed_launch.h"
#include "train/inq_files.h"
#include "train/pack_plain.h"
#include "train/reproduce.h"
#include "train/trainer.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/threading.h"
#include "inq/codebook.h"
#include "inq/inq_state.h"
#include "inq/partition.h"
#include "models/registry.h"

namespace inq {

void register_quantize_command(CLI::App& app) {
  auto config = std::make_shared<TrainConfig>();
  auto preset = std::make_shared<std::string>();
  auto distributed = std::make_shared<bool>(false);
  TrainConfig& c = *config;
  // Re-training defaults from docs/REPRODUCTION.md section 1: lr 0.01, cosine per step, 2 epochs per step.
  c.optim.lr = 0.01;
  c.inq.bits = 5;
  CLI::App* cmd = app.add_subcommand("quantize", "Run the INQ schedule on pre-trained weights");
  add_run_flags(cmd, c.run,
                RunFlagTexts{.weights = "Pre-trained FP32 checkpoint or weights file to quantize",
                             .seed = "Random seed (data order, augmentation, random partition)",
                             .out = "Run folder (default runs/<arch>-inq<bits>-<strategy>-<seed>)"},
                /*epochs=*/false);
  add_inq_flags(cmd, c.inq, *preset);
  add_data_flags(cmd, c.data, /*training=*/true);
  add_optimizer_flags(cmd, c.optim, "Re-training learning rate (restarts at each step; default 0.01)");
  add_schedule_flags(cmd, c.schedule, "each step's re-training");
  add_distributed_flag(cmd, *distributed);
  cmd->callback([config, preset, distributed, cmd] {
    TrainConfig& cfg = *config;
    if (!cfg.run.resume.empty()) {
      const std::string resume = cfg.run.resume;
      cfg = resume_config(*cmd, cfg);
      // The configuration comes from the checkpoint: one of plain training has nothing to quantize.
      INQ_CHECK(cfg.inq.enabled(),
                "Given --resume '{}', expected a checkpoint of an INQ run, but it is {}; start INQ from it with "
                "--weights {}",
                resume, cfg.prune.enabled() ? "a pruning run" : "plain training", resume);
    } else {
      INQ_CHECK(cmd->count("--arch") > 0, "Given quantize without --arch, expected the model architecture");
      INQ_CHECK(!cfg.run.weights.empty(),
                "Given quantize without --weights, expected the pre-trained model to quantize");
      INQ_CHECK(preset->empty() || cfg.inq.portions.empty(), "Given both --preset and --portions, expected one");
      if (!preset->empty()) cfg.inq.portions = portion_preset(*preset);
      if (cmd->count("--no-augment") + cmd->count("--augment") == 0) cfg.data.augment = recipe_for(cfg.run.arch).augment;
      resolve_dataset(*cmd, cfg.data, "--eval-batch-size");
    }
    if (cfg.run.out.empty())
      cfg.run.out = fmt::format("runs/{}-inq{}-{}-{}", cfg.run.arch, cfg.inq.bits, cfg.inq.strategy, cfg.run.seed);
    auto hooks = distributed_hooks(cfg, *distributed);
    set_num_threads(cfg.run.threads);
    Trainer trainer(cfg, std::move(hooks));
    trainer.fit();
  });
}

void register_verify_command(CLI::App& app, int* exit_status) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "verify", "Check that every quantized weight of an INQ checkpoint or packed model is 0 or +-2^k in its codebook "
                "(exit 0: all valid, 3: some are not, 1: unreadable file)");
  cmd->add_option("checkpoint", *path, "INQ checkpoint or packed model (safetensors)")->required()->check(CLI::ExistingFile);
  cmd->callback([path, exit_status] { *exit_status = verify_checkpoint(*path, stdout); });
}

void register_pack_command(CLI::App& app) {
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto bits = std::make_shared<int>(0);
  auto arch = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "pack", "Write a finished INQ checkpoint, or with --bits a plain weights file quantized elsewhere, as a packed "
              "model: b-bit codes per quantized weight, dense or sparse, whichever is smaller (docs/INQ_SPEC.md "
              "section 7)");
  cmd->add_option("checkpoint", *in, "Finished INQ checkpoint (final.safetensors), or a plain weights file with --bits")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", *out, "Packed model to write (safetensors)")->required();
  cmd->add_option("--bits", *bits,
                  "Plain weights file: every conv and linear weight is 0 or +-2^k in the b-bit codebook its max |w| "
                  "implies")
      ->check(CLI::Range(2, max_codebook_bits()));
  cmd->add_option("-a,--arch", *arch, "Plain weights file (with --bits): the architecture it belongs to");
  auto options = std::make_shared<PackOptions>();
  cmd->add_flag("--entropy", options->entropy_coding,
                "Also consider Huffman-coding each tensor's codes (and gaps), keeping whichever layout is smallest");
  auto dense = std::make_shared<bool>(false);
  cmd->add_flag("--dense", *dense,
                "Store every quantized tensor densely (b bits per weight), never as gaps or a bitmap");
  cmd->callback([in, out, bits, arch, cmd, options, dense] {
    options->sparse = !*dense;
    const bool plain = cmd->count("--bits") > 0;
    INQ_CHECK(plain || arch->empty(),
              "Given --arch '{}' without --bits, expected --arch only with --bits (a checkpoint records its arch)", *arch);
    INQ_CHECK(!plain || !arch->empty(), "Given --bits {} for '{}', expected --arch too (a plain weights file does not "
              "record its architecture)", *bits, *in);
    const PackSummary s =
        plain ? pack_plain_weights(*in, *bits, *arch, *out, *options) : pack_checkpoint(*in, *out, *options);
    fmt::print("{}: {} quantized tensors ({} weights) in {} bytes as stored, {:.2f}x smaller than float32 ({} bytes); "
               "{} stored sparsely, {} Huffman-coded\n",
               *out, s.quantized_tensors, s.quantized_weights, s.code_bytes,
               static_cast<double>(s.code_float_bytes) / static_cast<double>(std::max<int64_t>(s.code_bytes, 1)),
               s.code_float_bytes, s.sparse_tensors, s.entropy_tensors);
    fmt::print("{}: whole file {} bytes vs {} bytes as a float weights file ({:.2f}x)\n", *out, s.file_bytes,
               s.float_file_bytes, static_cast<double>(s.float_file_bytes) / static_cast<double>(s.file_bytes));
  });
}

void register_unpack_command(CLI::App& app) {
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("unpack", "Decode a packed model into a float weights file (bit for bit)");
  cmd->add_option("packed", *in, "Packed model (from inq pack)")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", *out, "Weights file to write (safetensors)")->required();
  cmd->callback([in, out] {
    check_output_is_not_input("-o/--output", *out, {{"packed", *in}});
    const UnpackedModel m = unpack_model(read_safetensors(*in));
    write_safetensors(*out, m.weights.tensors, m.weights.metadata);
    fmt::print("{}: {} ({} tensors, {} of them unpacked: {} weights)\n", *out, m.arch, m.weights.tensors.size(),
               m.codebooks.size(), m.quantized_weights);
  });
}

void register_reproduce_command(CLI::App& app) {
  auto o = std::make_shared<ReproduceOptions>();
  auto quick = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "reproduce", "Run the small-scale INQ experiments of docs/REPRODUCTION.md section 1 (continues an earlier run)");
  cmd->add_flag("--quick", *quick, "lenet5, 1 epoch per step, 5 and 3 bits: the pipeline in a few minutes");
  cmd->add_option("-a,--arch", o->arch, "Model architecture")->check(CLI::IsMember(available_models()));
  cmd->add_option("-o,--out", o->out, "Folder for every run and the summaries (default runs/reproduce-<arch>)");
  cmd->add_option("--data", o->data_dir, "Dataset directory");
  cmd->add_option("--seeds", o->seeds, "Seeds (one FP32 baseline and INQ runs per seed)")
      ->delimiter(',')
      ->check(seed_in_range());
  cmd->add_option("--bits", o->bits, "Bit-widths of the sweep")->delimiter(',')->check(CLI::Range(2, 10));
  cmd->add_flag("!--no-random", o->random_partition, "Skip the random-partition run at 5 bits");
  cmd->add_option("--fp32-weights", o->fp32_weights, "Start from these FP32 weights instead of training them")
      ->check(CLI::ExistingFile);
  cmd->add_option("--fp32-epochs", o->fp32_epochs, "FP32 training epochs (default: the arch's recipe)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--epochs-per-step", o->epochs_per_step, "INQ re-training epochs per step")->check(CLI::PositiveNumber);
  cmd->add_option("--bn-batches", o->bn_batches,
                  "Training batches to re-estimate BatchNorm statistics over after INQ's last step and one-shot")
      ->check(CLI::Range(int64_t{0}, kMaxBnBatches));
  cmd->add_option("--train-limit", o->train_limit, "Use only the first N training examples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--test-limit", o->test_limit, "Evaluate only the first N test examples")->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o->threads, "Compute threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("-j,--workers", o->workers, "Background data-loading threads")->check(CLI::Range(0, 64));
  cmd->add_flag("!--no-plots", o->plots, "Do not draw the PNG figures");
  cmd->add_flag("--prune", o->prune,
                "The pruning experiment instead (docs/INQ_SPEC.md section 6): FP32, magnitude pruning, DNS, 5-bit INQ, "
                "pruning + 5-bit INQ, DNS + INQ at --prune-bits; sizes measured on packed files");
  cmd->add_option("--sparsities", o->sparsities, "--prune: sparsity targets, one point of each curve per value")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 0.999999));
  cmd->add_option("--prune-bits", o->prune_bits, "--prune: the bit-widths of DNS + INQ besides 5")
      ->delimiter(',')
      ->check(CLI::Range(2, 10));
  cmd->add_option("--prune-rows", o->prune_rows,
                  "--prune: the row groups besides FP32 and DNS: dns-inq5, inq5, magnitude, dns-bits (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"dns-inq5", "inq5", "magnitude", "dns-bits"}));
  cmd->add_option("--prune-epochs", o->prune_epochs, "--prune: re-training epochs after pruning (default: the FP32 "
                                                     "epochs)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o, quick, cmd] {
    for (const char* flag : {"--sparsities", "--prune-bits", "--prune-rows", "--prune-epochs"})
      INQ_CHECK(o->prune || cmd->count(flag) == 0, "Given {} without --prune, expected it only with --prune", flag);
    if (*quick && o->prune) {
      // Caffe's LeNet on a fifth of the training set: every row of the experiment in minutes.
      if (cmd->count("--arch") == 0) o->arch = "lenet5-caffe";
      if (cmd->count("--fp32-epochs") == 0) o->fp32_epochs = 2;
      if (cmd->count("--prune-epochs") == 0) o->prune_epochs = 1;
      if (cmd->count("--epochs-per-step") == 0) o->epochs_per_step = 1;
      if (cmd->count("--train-limit") == 0) o->train_limit = 12000;
      if (cmd->count("--test-limit") == 0) o->test_limit = 2000;
      if (cmd->count("--out") == 0) o->out = "runs/reproduce-prune-quick";
    } else if (*quick) {
      if (cmd->count("--arch") == 0) o->arch = "lenet5";
      if (cmd->count("--epochs-per-step") == 0) o->epochs_per_step = 1;
      if (cmd->count("--bits") == 0) o->bits = {5, 3};
    }
    const std::string md = run_reproduce(*o);
    std::fputs(read_file(md).c_str(), stdout);
  });
}

}  // namespace inq
