#include "apps/config_flags.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "data/datasets.h"
#include "data/image.h"
#include "framework/config_fields.h"
#include "framework/error.h"
#include "framework/error_context.h"
#include "inq/partition.h"
#include "models/registry.h"
#include "train/checkpoint.h"

namespace inq {

CLI::Validator seed_in_range() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [stop, ec] = std::from_chars(text.data(), end, value);
        if (!text.empty() && ec == std::errc() && stop == end) return "";
        return fmt::format("given seed '{}', expected an integer in [0, 18446744073709551615] (0 to 2^64-1){}", text,
                           ec == std::errc::result_out_of_range ? ", but it is too large" : "");
      },
      "SEED in [0, 2^64-1]", "seed_in_range");
}

namespace {

// Whether the command has the flag `name` and the user gave it (not every command has every flag).
bool flag_given(const CLI::App& cmd, const char* name) {
  const CLI::Option* opt = cmd.get_option_no_throw(name);
  return opt != nullptr && opt->count() > 0;
}

}  // namespace

void add_run_flags(CLI::App* cmd, RunConfig& c, const RunFlagTexts& texts, bool epochs) {
  cmd->add_option("-a,--arch", c.arch, "Model architecture (not with --resume)")
      ->check(CLI::IsMember(available_models()));
  cmd->add_option("--weights", c.weights, texts.weights)->check(CLI::ExistingFile);
  if (epochs)
    cmd->add_option("--epochs", c.epochs, "Number of epochs (default: the arch's recipe)")
        ->check(CLI::Range(int64_t{1}, kMaxEpochs));
  cmd->add_option("--seed", c.seed, texts.seed)->check(seed_in_range());
  cmd->add_option("--threads", c.threads, "Compute threads for OpenMP and OpenBLAS (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("-p,--print-freq", c.print_freq, "Batches between progress lines")->check(CLI::PositiveNumber);
  cmd->add_option("-o,--out", c.out, texts.out);
  cmd->add_option("--resume", c.resume, "Checkpoint of the run to continue (e.g. RUN/last.safetensors)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--force", c.force, "Reuse a run folder that already holds a run");
  cmd->add_flag("--sync-bn", c.sync_bn,
                "Data-parallel runs: BatchNorm batch statistics over every rank's batch (SyncBatchNorm); without it "
                "each rank normalizes with its own batch's (no effect in one process)");
}

void add_data_flags(CLI::App* cmd, DataConfig& c, bool training) {
  cmd->add_option("--dataset", c.dataset, "Dataset (default: inferred from --data: IDX files -> fashion-mnist, "
                                          "CIFAR-10 batches -> cifar10, any other folder -> imagefolder)")
      ->check(CLI::IsMember(dataset_names()));
  cmd->add_option("--data", c.data_dir,
                  "Dataset directory: IDX files (plain or gzipped); CIFAR-10 .bin batches; or an image folder with "
                  "train/ and val/ (<split>/<class>/<image>)" +
                      std::string(training ? "" : ", or a validation folder itself"));
  cmd->add_option("--num-classes", c.num_classes, "Classes of the model's output (default: the dataset's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--image-size", c.image_size, "imagefolder: input size (center or random-resized crop)")
      ->check(CLI::Range(int64_t{1}, kMaxImageSide));
  cmd->add_option("--resize-size", c.resize_size, "imagefolder evaluation: shorter side before the center crop")
      ->check(CLI::Range(int64_t{1}, kMaxImageSide));
  cmd->add_option("-j,--workers", c.workers, "Background data-loading threads")->check(CLI::Range(0, 64));
  cmd->add_option("--test-limit", c.test_limit, "Evaluate only the first N test examples (0 = all)")
      ->check(CLI::NonNegativeNumber);
  if (!training) return;
  cmd->add_option("--skip-bad-images", c.skip_bad_images,
                  "imagefolder training: skip (log, count, replace by the next image) up to N files that fail to "
                  "decode, then stop; 0 = stop at the first. Evaluation never skips")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-b,--batch-size", c.batch_size, "Mini-batch size (default: the arch's recipe)")
      ->check(CLI::Range(int64_t{1}, kMaxBatchSize));
  cmd->add_option("--eval-batch-size", c.eval_batch_size, "Evaluation batch size")
      ->check(CLI::Range(int64_t{1}, kMaxBatchSize));
  cmd->add_flag("!--no-augment", c.augment, "Disable random crop and flip (default: the arch's recipe)");
  cmd->add_flag("--augment", c.augment,
                "Enable random crop (zero pad 2; cifar10 pad 4; imagefolder RandomResizedCrop) and horizontal flip");
  cmd->add_option("--train-limit", c.train_limit, "Use only the first N training examples (0 = all)")
      ->check(CLI::NonNegativeNumber);
}

void add_optimizer_flags(CLI::App* cmd, OptimizerConfig& c, const char* lr_help) {
  cmd->add_option("--lr", c.lr, lr_help)->check(CLI::PositiveNumber);
  cmd->add_option("--momentum", c.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--wd,--weight-decay", c.weight_decay, "Weight decay")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--nesterov", c.nesterov, "Nesterov momentum");
  cmd->add_flag("--decay-norm-and-bias", c.decay_norm_and_bias,
                "Apply weight decay to BatchNorm and bias parameters too (default: weights only)");
}

void add_schedule_flags(CLI::App* cmd, ScheduleConfig& c, const char* phase) {
  cmd->add_option("--schedule", c.kind,
                  fmt::format("Learning-rate schedule, per iteration; cosine decays to 0 over {}", phase))
      ->check(CLI::IsMember({"cosine", "step", "multistep", "constant"}));
  cmd->add_option("--step-size", c.step_size, "step schedule: epochs between decays")
      ->check(CLI::Range(int64_t{1}, kMaxEpochs));
  cmd->add_option("--milestones", c.milestones, "multistep schedule: epochs at which to decay")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, kMaxEpochs));
  cmd->add_option("--gamma", c.gamma, "Decay factor of step/multistep")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup-epochs", c.warmup_epochs, "Linear warm-up length in epochs")
      ->check(CLI::NonNegativeNumber);
}

void add_inq_flags(CLI::App* cmd, InqConfig& c, std::string& preset) {
  cmd->add_option("--bits", c.bits, "Bit-width b (>= 2): codebook {0, +-2^n2 .. +-2^n1}")->check(CLI::Range(2, 10));
  cmd->add_option("--portions", c.portions, "Accumulated portions, e.g. 0.5,0.75,0.875,1 (default: by --bits)")
      ->delimiter(',');
  cmd->add_option("--preset", preset, "Named portion schedule")->check(CLI::IsMember(portion_preset_names()));
  cmd->add_option("--strategy", c.strategy, "Partition strategy")->check(CLI::IsMember({"magnitude", "random"}));
  cmd->add_option("--epochs-per-step", c.epochs_per_step, "Re-training epochs after each step but the last")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--bn-batches", c.bn_batches,
                  "Training batches to re-estimate BatchNorm statistics over after the last step (0 = none)")
      ->check(CLI::Range(int64_t{0}, kMaxBnBatches));
  cmd->add_option("--final-epochs", c.final_epochs,
                  "After the last step, epochs re-training only the float parameters (BatchNorm, biases)")
      ->check(CLI::Range(int64_t{0}, kMaxEpochs));
  cmd->add_option("--exclude", c.exclude, "Weight names (globs) to leave in float");
}

void resolve_dataset(const CLI::App& cmd, DataConfig& c, const char* eval_batch_flag) {
  if (cmd.count("--dataset") == 0) c.dataset = infer_dataset(c.data_dir);
  // The default evaluation batch of 500 is 300 MB of 3x224x224 floats, and the loader prefetches
  // several batches: image folders evaluate 50 at a time unless told otherwise.
  if (c.dataset == "imagefolder" && (eval_batch_flag == nullptr || cmd.count(eval_batch_flag) == 0))
    c.eval_batch_size = kImageFolderEvalBatchSize;
}

void apply_recipe_defaults(const CLI::App& cmd, TrainConfig& c) {
  const TrainRecipe recipe = recipe_for(c.run.arch);
  if (!flag_given(cmd, "--epochs") && cmd.get_option_no_throw("--epochs") != nullptr) c.run.epochs = recipe.epochs;
  if (!flag_given(cmd, "--batch-size")) c.data.batch_size = recipe.batch_size;
  if (!flag_given(cmd, "--lr")) c.optim.lr = recipe.lr;
  if (!flag_given(cmd, "--lr") && !flag_given(cmd, "--warmup-epochs")) c.schedule.warmup_epochs = recipe.warmup_epochs;
  if (!flag_given(cmd, "--no-augment") && !flag_given(cmd, "--augment")) c.data.augment = recipe.augment;
}

// A resumed run continues with the configuration saved in its checkpoint, so it cannot silently
// diverge from the run it continues. Only flags that do not change the result may differ (and
// --epochs, to extend a run); anything else given on the command line is an error.
TrainConfig resume_config(const CLI::App& cmd, const TrainConfig& given) {
  CheckpointContents saved;
  try {
    saved = read_checkpoint_info(read_safetensors(given.run.resume));
  } catch (const Error& e) {
    throw with_file_context(e, "--resume", given.run.resume);
  }
  // The architecture comes from the checkpoint, not from a flag: a bad one is the file's.
  const auto known = available_models();
  INQ_CHECK(std::find(known.begin(), known.end(), saved.arch) != known.end() && saved.arch == saved.config.run.arch,
            "Given --resume '{}', expected its 'arch' metadata to name one of: {}, the same as its stored "
            "configuration, but the metadata says '{}' and the configuration '{}'",
            given.run.resume, fmt::join(known, ", "), saved.arch, saved.config.run.arch);
  TrainConfig c = saved.config;
  // --skip-bad-images only matters when a file fails to decode, which is when a run stopped on
  // one needs to be resumed.
  // --bn-batches and --final-epochs (quantize) only act after INQ's last step, so a finished run
  // may be resumed to change them.
  const std::vector<std::string> changeable = {"--resume", "--epochs", "--threads", "--workers",
                                               "--print-freq", "--out", "--data", "--skip-bad-images",
                                               "--force", "--bn-batches", "--final-epochs"};
  for (const CLI::Option* opt : cmd.get_options()) {
    if (opt->count() == 0 || opt->get_name() == "--help") continue;
    const std::string name = opt->get_name();
    INQ_CHECK(std::find(changeable.begin(), changeable.end(), name) != changeable.end(),
              "Given --resume, expected only {} besides it (the rest comes from the checkpoint), but got {}",
              fmt::join(changeable.begin() + 1, changeable.end(), ", "), name);
  }
  c.run.resume = given.run.resume;
  // Not every command has every flag (quantize has no --epochs, train no --bn-batches).
  if (flag_given(cmd, "--epochs")) c.run.epochs = given.run.epochs;
  if (flag_given(cmd, "--threads")) c.run.threads = given.run.threads;
  if (flag_given(cmd, "--workers")) c.data.workers = given.data.workers;
  if (flag_given(cmd, "--print-freq")) c.run.print_freq = given.run.print_freq;
  if (flag_given(cmd, "--data")) c.data.data_dir = given.data.data_dir;
  // Without --out the run continues in the folder that holds the checkpoint, not in the folder
  // its configuration names: a run folder that was moved or copied continues where it lies, and
  // resuming a copy never writes into the original's files.
  if (flag_given(cmd, "--out")) {
    c.run.out = given.run.out;
  } else {
    const std::filesystem::path folder = std::filesystem::path(given.run.resume).parent_path();
    c.run.out = folder.empty() ? std::string(".") : folder.string();
  }
  if (flag_given(cmd, "--skip-bad-images")) c.data.skip_bad_images = given.data.skip_bad_images;
  if (flag_given(cmd, "--bn-batches")) c.inq.bn_batches = given.inq.bn_batches;
  if (flag_given(cmd, "--final-epochs")) c.inq.final_epochs = given.inq.final_epochs;
  return c;
}

}  // namespace inq
