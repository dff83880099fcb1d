// `inq`: the command-line tool. Thin over the libraries: it parses flags (named like PyTorch's
// ImageNet example where they overlap), builds a config, and hands it to the library. Any
// inq::Error becomes one "inq: error: ..." line on stderr and exit status 1; bad flags exit 2.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "apps/commands.h"
#include "apps/run_command.h"
#include "framework/error.h"
#include "framework/threading.h"

int main(int argc, char** argv) {
  inq::use_short_openmp_spin(argv);  // see framework/threading.h
  CLI::App app{"inq: train, evaluate and quantize CNNs with Incremental Network Quantization"};
  app.require_subcommand(1);
  inq::register_train_command(app);
  inq::register_eval_command(app);
  inq::register_quantize_command(app);
  inq::register_reproduce_command(app);
  inq::register_run_command(app);
  inq::register_pack_command(app);
  inq::register_unpack_command(app);
  int exit_status = 0;
  inq::register_verify_command(app, &exit_status);
  inq::register_verify_data_command(app, &exit_status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  } catch (const inq::Error& e) {
    std::fprintf(stderr, "inq: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "inq: error: %s\n", e.what());
    return 1;
  }
  return exit_status;
}
