#pragma once
// Subcommands of the `inq` tool. Each registers its flags on the CLI11 app and runs from the
// subcommand's callback.
#include <CLI/CLI.hpp>


namespace inq {

void register_train_command(CLI::App& app);
void register_eval_command(CLI::App& app);
void register_quantize_command(CLI::App& app);
// `inq prune`: DNS or magnitude pruning with re-training (apps/prune_command.cpp).
void register_prune_command(CLI::App& app);
void register_reproduce_command(CLI::App& app);
// `verify` sets *exit_status (0 valid, 3 invalid weights).
void register_verify_command(CLI::App& app, int* exit_status);
// `inq pack` / `inq unpack`: a finished INQ checkpoint to and from its packed form (train/inq_files.h).
void register_pack_command(CLI::App& app);
void register_unpack_command(CLI::App& app);

// `verify-data` sets *exit_status (0 every image decodes, 3 some do not; see verify_data.h).
void register_verify_data_command(CLI::App& app, int* exit_status);

}  // namespace inq
