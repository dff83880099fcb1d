#pragma once
// Command-line flags of the configuration sections (train/train_config.h): one function per
// section adds that section's flags, so `inq train` and `inq quantize` build theirs from the same
// pieces and a field gets its flag, help text and range check in one place.
#include <CLI/CLI.hpp>

#include <string>

#include "train/train_config.h"

namespace inq {

// --arch, --weights, --seed, --threads, --print-freq, --out, --resume, --force; with `epochs` also
// --epochs. The help texts name what differs between the commands.
struct RunFlagTexts {
  const char* weights;  // what --weights is for
  const char* seed;     // what --seed seeds
  const char* out;      // the default run folder
};
void add_run_flags(CLI::App* cmd, RunConfig& c, const RunFlagTexts& texts, bool epochs);

// A seed's check (--seed, reproduce's --seeds): a decimal integer in [0, 2^64-1]. CLI11 alone
// clamps 18446744073709551616 to 2^64-1 without a word; this refuses it, naming the range (CLI11
// puts the flag's name in front).
CLI::Validator seed_in_range();

// --dataset, --data, --num-classes, --image-size, --resize-size, --workers, --test-limit; with
// `training` also --skip-bad-images, --batch-size, --eval-batch-size, --augment / --no-augment and
// --train-limit.
void add_data_flags(CLI::App* cmd, DataConfig& c, bool training);

// --lr, --momentum, --wd, --nesterov, --decay-norm-and-bias.
void add_optimizer_flags(CLI::App* cmd, OptimizerConfig& c, const char* lr_help);

// --schedule, --step-size, --milestones, --gamma, --warmup-epochs. `phase` says what a cosine
// schedule spans (the run, or one INQ step's re-training).
void add_schedule_flags(CLI::App* cmd, ScheduleConfig& c, const char* phase);

// --bits, --portions, --preset, --strategy, --epochs-per-step, --bn-batches, --final-epochs, --exclude.
void add_inq_flags(CLI::App* cmd, InqConfig& c, std::string& preset);

inline constexpr int64_t kImageFolderEvalBatchSize = 50;
// Without --dataset, the dataset is inferred from --data (data/datasets.h). An image folder
// evaluates in batches of kImageFolderEvalBatchSize unless `eval_batch_flag` (the command's flag
// for the evaluation batch size, or nullptr when it has none) was given.
void resolve_dataset(const CLI::App& cmd, DataConfig& c, const char* eval_batch_flag);

// Flags the user did not give take the architecture's recipe: epochs, batch size, lr, augmentation.
void apply_recipe_defaults(const CLI::App& cmd, TrainConfig& c);

// The configuration of a resumed run: the checkpoint's, with only result-neutral flags (and
// --epochs, --bn-batches, --final-epochs) taken from the command line; any other flag given is an
// error.
TrainConfig resume_config(const CLI::App& cmd, const TrainConfig& given);

}  // namespace inq
