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

// Prints the verification of an INQ checkpoint to `out`; returns the exit status (0 or 3).
int verify_checkpoint(const std::string& path, std::FILE* out);

// Flags the user did not give take the architecture's recipe (train).
void apply_recipe_defaults(const CLI::App& cmd, TrainConfig& c);
// The configuration of a resumed run: the checkpoint's, with only result-neutral flags (and
// --epochs) taken from the command line; any other flag given is an error.
TrainConfig resume_config(const CLI::App& cmd, const TrainConfig& given);

}  // namespace inq
