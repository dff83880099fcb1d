// `inq`: the command-line tool. Thin over the libraries: it parses flags (named like PyTorch's
// ImageNet example where they overlap), builds a config, and hands it to the library. Any
// inq::Error becomes one "inq: error: ..." line on stderr and exit status 1; bad flags exit 2.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "apps/bench_model_command.h"
#include "apps/commands.h"
#include "apps/distributed_launch.h"
#include "dist/mpi_communicator.h"
#include "apps/run_command.h"
#include "framework/error.h"
#include "framework/threading.h"

namespace {

// Levenshtein distance, for suggesting the subcommand a typo meant.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// CLI11 answers an unknown first word with "A subcommand is required": say which word, and the
// closest subcommand when one is near (at most 2 edits, or a prefix of it). Returns the message,
// or "" when `word` is a subcommand.
std::string unknown_subcommand_message(const CLI::App& app, const std::string& word) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  if (std::find(names.begin(), names.end(), word) != names.end()) return "";
  std::string best;
  size_t best_distance = 3;
  for (const std::string& name : names) {
    const size_t d = name.rfind(word, 0) == 0 ? 1 : edit_distance(word, name);
    if (d < best_distance) best = name, best_distance = d;
  }
  std::string message = "unknown subcommand '" + word + "'";
  if (!best.empty()) return message + "; did you mean '" + best + "'?";
  message += "; expected one of:";
  for (const std::string& name : names) message += " " + name;
  return message;
}

}  // namespace

int main(int argc, char** argv) {
  inq::apply_runtime_policy(argv);  // see framework/threading.h
  CLI::App app{"inq: train, evaluate and quantize CNNs with Incremental Network Quantization"};
  app.require_subcommand(1);
  inq::register_train_command(app);
  inq::register_eval_command(app);
  inq::register_quantize_command(app);
  inq::register_prune_command(app);
  inq::register_reproduce_command(app);
  inq::register_run_command(app);
  inq::register_bench_model_command(app);
  inq::register_pack_command(app);
  inq::register_unpack_command(app);
  int exit_status = 0;
  inq::register_verify_command(app, &exit_status);
  inq::register_verify_data_command(app, &exit_status);
  if (argc > 1 && argv[1][0] != '-') {
    if (const std::string message = unknown_subcommand_message(app, argv[1]); !message.empty()) {
      std::fprintf(stderr, "inq: error: %s\nRun with --help for more information.\n", message.c_str());
      return 2;
    }
  }
  // Only train and quantize know how to share work between ranks; any other command started N
  // times by mpirun would do its work N times over (and append N rows to a results file).
  if (argc > 1 && argv[1][0] != '-' && inq::launched_world_size() > 1 && std::string(argv[1]) != "train" &&
      std::string(argv[1]) != "quantize") {
    std::fprintf(stderr, "inq: error: '%s' runs in one process, but a launcher started %d; only train and quantize "
                 "run data-parallel (docs/DISTRIBUTED.md)\n", argv[1], inq::launched_world_size());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const std::exception& e) {
    // In a data-parallel run the message names the rank, and the whole job stops with it: the
    // other ranks would otherwise wait in their next collective for ever.
    std::fprintf(stderr, "inq: error: %s%s\n", inq::error_origin().c_str(), e.what());
    std::fflush(stderr);
    inq::abort_other_ranks(1);
    return 1;
  }
  return exit_status;
}
