#pragma once
// `inq run` (train/run_model.h): flags and the call.
#include <CLI/CLI.hpp>

namespace inq {

void register_run_command(CLI::App& app);

}  // namespace inq
