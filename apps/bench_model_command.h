#pragma once
// `inq bench-model` (train/bench_model.h): flags and the report.
#include <CLI/CLI.hpp>

namespace inq {

void register_bench_model_command(CLI::App& app);

}  // namespace inq
