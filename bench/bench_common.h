#pragma once
// Set-up shared by the benchmark programs: the OpenMP spin policy (framework/threading.h), the
// thread count from INQ_THREADS (default: all cores), and the context every report states.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "framework/threading.h"

namespace inq::bench {

// Call first in main (it may re-execute the program once).
inline void setup(char** argv) {
  const char* policy = apply_runtime_policy(argv);
  benchmark::AddCustomContext("openmp_spin_policy", policy);
  if (const char* spin = std::getenv("GOMP_SPINCOUNT")) benchmark::AddCustomContext("GOMP_SPINCOUNT", spin);
  const char* threads = std::getenv("INQ_THREADS");
  set_num_threads(threads ? std::atoi(threads) : 0);
  benchmark::AddCustomContext("inq_threads", std::to_string(get_num_threads()));
  benchmark::AddCustomContext("blas_config", blas_config());
  benchmark::AddCustomContext("blas_core", blas_core());
}

// Google Benchmark's own main, after setup and registration.
inline int run(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace inq::bench
