#pragma once
// Subcommands of the `inq` tool. Each registers its flags on the CLI11 app and runs from the
// subcommand's callback.
#include <CLI/CLI.hpp>

namespace inq {

void register_train_command(CLI::App& app);
void register_eval_command(CLI::App& app);

}  // namespace inq
