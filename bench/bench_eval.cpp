// Evaluation throughput: one eval-mode forward pass (no autograd graph) of a paper-scale model on a
// fixed random batch of 3x224x224 images, in images per second. Its twin, bench/pytorch_eval.py,
// runs torchvision's model of the same name the same way, and bench/compare_eval_pytorch.sh runs the
// two alternately on one machine (issue 4: ResNet-18, 224x224, batch 32, 2 threads).
// Threads: INQ_THREADS (default: all cores) sets OpenMP and OpenBLAS.
#include <benchmark/benchmark.h>

#include "bench_common.h"

#include <string>

#include "framework/autograd.h"
#include "framework/random.h"
#include "models/registry.h"

namespace {

void eval_forward(benchmark::State& state, const std::string& arch) {
  const int64_t batch = state.range(0);
  const int64_t size = state.range(1);
  inq::seed_all(0);
  auto model = inq::create_model(arch, {.num_classes = 1000, .in_channels = 3});
  model->eval();
  inq::Generator gen(1);
  inq::Tensor x = inq::Tensor::empty({batch, 3, size, size});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(gen.normal());
  inq::NoGradGuard no_grad;
  for (auto _ : state) {
    inq::Tensor logits = model->forward(x);
    benchmark::DoNotOptimize(logits.data());
  }
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
