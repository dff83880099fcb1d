#pragma once
// Subcommands of the `inq` tool. Each registers its flags on the CLI11 app and runs from the
// subcommand's callback.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "apps/train_config.h"

namespace inq {

void register_train_command(CLI::App& app);
void register_eval_command(CLI::App& app);
void register_quantize_command(CLI::App& app);
void register_reproduce_command(CLI::App& app);
// `verify` sets *exit_status (0 valid, 3 invalid weights).
void register_verify_command(CLI::App& app, int* exit_status);
// `inq pack` / `inq unpack`: a finished INQ checkpoint to and from its packed form (apps/packed_model.h).
void register_pack_command(CLI::App& app);
void register_unpack_command(CLI::App& app);

// Prints the verification of an INQ checkpoint to `out`; returns the exit status (0 or 3).
int verify_checkpoint(const std::string& path, std::FILE* out);

// `verify-data` sets *exit_status (0 every image decodes, 3 some do not; see verify_data.h).
void register_verify_data_command(CLI::App& app, int* exit_status);

// --dataset, --data, --num-classes, --image-size, --resize-size and, when training,
// --skip-bad-images.
void add_dataset_flags(CLI::App* cmd, TrainConfig& c, bool training);
inline constexpr int64_t kImageFolderEvalBatchSize = 50;
// Without --dataset, the dataset is inferred from --data (apps/datasets.h). An image folder
// evaluates in batches of kImageFolderEvalBatchSize unless `eval_batch_flag` (the command's flag
// for the evaluation batch size, or nullptr when it has none) was given.
void resolve_dataset(const CLI::App& cmd, TrainConfig& c, const char* eval_batch_flag);

// Flags the user did not give take the architecture's recipe (train).
void apply_recipe_defaults(const CLI::App& cmd, TrainConfig& c);
// The configuration of a resumed run: the checkpoint's, with only result-neutral flags (and
// --epochs) taken from the command line; any other flag given is an error.
TrainConfig resume_config(const CLI::App& cmd, const TrainConfig& given);

}  // namespace inq
