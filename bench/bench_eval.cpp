// Evaluation throughput: one eval-mode forward pass (no autograd graph) of a paper-scale model on a
// fixed random batch of 3x224x224 images, in images per second, under Google Benchmark. The same
// pass for every paper model, one per process and side by side with PyTorch, is what
// `make bench-compare` runs (bench/bench_model.cpp).
// Threads: INQ_THREADS (default: all cores) sets OpenMP and OpenBLAS.
#include <benchmark/benchmark.h>

#include "bench_common.h"
#include "bench_workloads.h"

#include <string>

namespace {

void eval_forward(benchmark::State& state, const std::string& arch) {
  const int64_t batch = state.range(0);
  inq::bench::EvalForward pass(arch, {.batch = batch, .channels = 3, .size = state.range(1), .classes = 1000});
  for (auto _ : state) benchmark::DoNotOptimize(pass.run());
  state.counters["images_per_s"] =
      benchmark::Counter(static_cast<double>(batch) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(eval_forward, resnet18, std::string("resnet18"))
    ->Args({32, 224})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

int main(int argc, char** argv) {
  inq::bench::setup(argv);
  return inq::bench::run(argc, argv);
}
