// One training step (forward, softmax cross-entropy, backward, SGD with momentum and weight
// decay) of the small models on a fixed random batch, in images per second, under Google Benchmark
// (repetitions, aggregates, perf-friendly steady loops). The same step, one model per process and
// side by side with PyTorch, is what `make bench-compare` runs (bench/bench_model.cpp).
// Threads: INQ_THREADS (default: all cores) sets OpenMP and OpenBLAS.
#include <benchmark/benchmark.h>

#include "bench_common.h"
#include "bench_workloads.h"

#include <string>

namespace {

void train_step(benchmark::State& state, const std::string& arch) {
  inq::bench::TrainStep step(arch, {.batch = state.range(0), .channels = 1, .size = 28, .classes = 10});
  for (auto _ : state) benchmark::DoNotOptimize(step.run());
  state.counters["images_per_s"] =
      benchmark::Counter(static_cast<double>(state.range(0)) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(train_step, lenet5, std::string("lenet5"))->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(train_step, resnet20, std::string("resnet20"))->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  inq::bench::setup(argv);
  return inq::bench::run(argc, argv);
}
