// The unit tests' main: the same start-up as the `inq` tool (framework/threading.h), so that a test
// comparing an in-process run with one of the tool's (tests/app_testing.h run_cli) compares two runs
// on the same OpenBLAS kernels: where the tool replaces OpenBLAS's fallback kernels, the test
// process re-executes itself with the same OPENBLAS_CORETYPE, which the tool then inherits.
#include <gtest/gtest.h>

#include "framework/threading.h"

int main(int argc, char** argv) {
  inq::apply_runtime_policy(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
