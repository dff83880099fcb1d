#include "apps/commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "apps/checkpoint.h"
#include "apps/datasets.h"
#include "apps/trainer.h"
#include "data/image.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/threading.h"
#include "models/registry.h"

namespace inq {

namespace {

// Flags shared by commands that read a dataset.
void add_data_flags(CLI::App* cmd, TrainConfig& c, bool training) {
  add_dataset_flags(cmd, c, training);
  cmd->add_option("-j,--workers", c.workers, "Background data-loading threads")->check(CLI::Range(0, 64));
  cmd->add_option("--threads", c.threads, "Compute threads for OpenMP and OpenBLAS (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--test-limit", c.test_limit, "Evaluate only the first N test examples (0 = all)")
      ->check(CLI::NonNegativeNumber);
}

}  // namespace

void add_dataset_flags(CLI::App* cmd, TrainConfig& c, bool training) {
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
  if (training) {
    cmd->add_option("--skip-bad-images", c.skip_bad_images,
                    "imagefolder training: skip (log, count, replace by the next image) up to N files that fail to "
                    "decode, then stop; 0 = stop at the first. Evaluation never skips")
        ->check(CLI::NonNegativeNumber);
  }
}

void resolve_dataset(const CLI::App& cmd, TrainConfig& c, const char* eval_batch_flag) {
  if (cmd.count("--dataset") == 0) c.dataset = infer_dataset(c.data_dir);
  // The default evaluation batch of 500 is 300 MB of 3x224x224 floats, and the loader prefetches
  // several batches: image folders evaluate 50 at a time unless told otherwise.
  if (c.dataset == "imagefolder" && (eval_batch_flag == nullptr || cmd.count(eval_batch_flag) == 0))
    c.eval_batch_size = kImageFolderEvalBatchSize;
}

void apply_recipe_defaults(const CLI::App& cmd, TrainConfig& c) {
  const TrainRecipe recipe = recipe_for(c.arch);
  if (cmd.count("--epochs") == 0) c.epochs = recipe.epochs;
  if (cmd.count("--batch-size") == 0) c.batch_size = recipe.batch_size;
  if (cmd.count("--lr") == 0) c.lr = recipe.lr;
  if (cmd.count("--no-augment") + cmd.count("--augment") == 0) c.augment = recipe.augment;
}

// A resumed run continues with the configuration saved in its checkpoint, so it cannot silently
// diverge from the run it continues. Only flags that do not change the result may differ (and
// --epochs, to extend a run); anything else given on the command line is an error.
TrainConfig resume_config(const CLI::App& cmd, const TrainConfig& given) {
  const CheckpointContents saved = read_checkpoint_info(read_safetensors(given.resume));
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
  c.resume = given.resume;
  // Not every command has every flag (quantize has no --epochs, train no --bn-batches).
  const auto given_flag = [&cmd](const char* name) {
    const CLI::Option* opt = cmd.get_option_no_throw(name);
    return opt != nullptr && opt->count() > 0;
  };
  if (given_flag("--epochs")) c.epochs = given.epochs;
  if (given_flag("--threads")) c.threads = given.threads;
  if (given_flag("--workers")) c.workers = given.workers;
  if (given_flag("--print-freq")) c.print_freq = given.print_freq;
  if (given_flag("--data")) c.data_dir = given.data_dir;
  if (given_flag("--out")) c.out = given.out;
  if (given_flag("--skip-bad-images")) c.skip_bad_images = given.skip_bad_images;
  if (given_flag("--bn-batches")) c.bn_batches = given.bn_batches;
  if (given_flag("--final-epochs")) c.final_epochs = given.final_epochs;
  return c;
}

void register_train_command(CLI::App& app) {
  auto config = std::make_shared<TrainConfig>();
  TrainConfig& c = *config;
  CLI::App* cmd = app.add_subcommand("train", "Train a model from scratch (or resume a run)");
  cmd->add_option("-a,--arch", c.arch, "Model architecture")->check(CLI::IsMember(available_models()));
  add_data_flags(cmd, c, /*training=*/true);
  cmd->add_option("--epochs", c.epochs, "Number of epochs (default: the arch's recipe)")->check(CLI::PositiveNumber);
  cmd->add_option("-b,--batch-size", c.batch_size, "Mini-batch size (default: the arch's recipe)")->check(CLI::PositiveNumber);
  cmd->add_option("--eval-batch-size", c.eval_batch_size, "Evaluation batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--lr", c.lr, "Initial learning rate (default: the arch's recipe)")->check(CLI::PositiveNumber);
  cmd->add_option("--momentum", c.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--wd,--weight-decay", c.weight_decay, "Weight decay")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--nesterov", c.nesterov, "Nesterov momentum");
  cmd->add_flag("--decay-norm-and-bias", c.decay_norm_and_bias,
                "Apply weight decay to BatchNorm and bias parameters too (default: weights only)");
  cmd->add_option("--schedule", c.schedule, "Learning-rate schedule (per iteration)")
      ->check(CLI::IsMember({"cosine", "step", "multistep", "constant"}));
  cmd->add_option("--step-size", c.step_size, "step schedule: epochs between decays")->check(CLI::PositiveNumber);
  cmd->add_option("--milestones", c.milestones, "multistep schedule: epochs at which to decay");
  cmd->add_option("--gamma", c.gamma, "Decay factor of step/multistep")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup-epochs", c.warmup_epochs, "Linear warm-up length in epochs")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", c.seed, "Random seed (initialization, data order, augmentation)");
  cmd->add_option("-p,--print-freq", c.print_freq, "Batches between progress lines")->check(CLI::PositiveNumber);
  cmd->add_flag("!--no-augment", c.augment, "Disable random crop and flip (default: the arch's recipe)");
  cmd->add_flag("--augment", c.augment,
                "Enable random crop (zero pad 2; cifar10 pad 4; imagefolder RandomResizedCrop) and horizontal flip");
  cmd->add_option("--train-limit", c.train_limit, "Use only the first N training examples (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-o,--out", c.out, "Run folder (default runs/<arch>-<seed>)");
  cmd->add_option("--resume", c.resume, "Checkpoint to resume from (e.g. RUN/last.safetensors)")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--force", c.force, "Reuse a run folder that already holds a run");
  cmd->callback([config, cmd] {
    if (!config->resume.empty()) {
      *config = resume_config(*cmd, *config);
    } else {
      apply_recipe_defaults(*cmd, *config);
      resolve_dataset(*cmd, *config, "--eval-batch-size");
    }
    TrainConfig& cfg = *config;
    if (cfg.out.empty()) cfg.out = fmt::format("runs/{}-{}", cfg.arch, cfg.seed);
    set_num_threads(cfg.threads);
    Trainer trainer(cfg);
    trainer.fit();
  });
}

void register_eval_command(CLI::App& app) {
  auto config = std::make_shared<TrainConfig>();
  auto weights = std::make_shared<std::string>();
  auto results = std::make_shared<std::string>("runs/eval_results.csv");
  TrainConfig& c = *config;
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate weights or a checkpoint on the test set");
  cmd->add_option("-a,--arch", c.arch, "Model architecture")->check(CLI::IsMember(available_models()))->required();
  cmd->add_option("--weights", *weights, "Checkpoint or weights file (safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  add_data_flags(cmd, c, /*training=*/false);
  cmd->add_option("-b,--batch-size", c.eval_batch_size, "Evaluation batch size")->check(CLI::PositiveNumber);
  cmd->add_option("--results", *results, "CSV file to append a results row to");
  cmd->callback([config, weights, results, cmd] {
    resolve_dataset(*cmd, *config, "--batch-size");
    set_num_threads(config->threads);
    run_eval_command(*config, *weights, *results);
  });
}

}  // namespace inq
