// `inq`: the command-line tool. Thin over the libraries: it parses flags (named like PyTorch's
// ImageNet example where they overlap), builds a config, and hands it to the library. Any
// inq::Error becomes one "inq: error: ..." line on stderr and exit status 1; bad flags exit 2.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "apps/commands.h"
#include "framework/error.h"

// libgomp reads its spin policy from the environment when it is loaded, before main. Its default
// busy-waits long after each parallel region, which on a 2-core machine steals the cores from
// OpenBLAS and the data-loading threads (measured on LeNet-5 training with 2 threads: 1092 images/s
// by default, 6379 with GOMP_SPINCOUNT=10000). So unless the user chose a policy, set a short spin
// and re-execute once.
static void use_short_openmp_spin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  setenv("GOMP_SPINCOUNT", "10000", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run with the default policy
}

int main(int argc, char** argv) {
  use_short_openmp_spin(argv);
  CLI::App app{"inq: train, evaluate and quantize CNNs with Incremental Network Quantization"};
  app.require_subcommand(1);
  inq::register_train_command(app);
  inq::register_eval_command(app);
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
  return 0;
}
