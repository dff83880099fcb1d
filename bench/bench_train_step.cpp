// One training step (forward, softmax cross-entropy, backward, SGD with momentum and weight
// decay) of the small models on a fixed random batch, in images per second. Its twin,
// bench/pytorch_train_step.py, runs the same architectures and step in PyTorch, so the two can be
// compared side by side on one machine (bench/compare_pytorch.sh).
// Threads: INQ_THREADS (default: all cores) sets OpenMP and OpenBLAS.
#include <benchmark/benchmark.h>

#include "bench_common.h"

#include <cstdlib>
#include <string>

#include "framework/random.h"
#include "framework/threading.h"
#include "layers/loss.h"
#include "models/registry.h"
#include "optim/sgd.h"

namespace {

void train_step(benchmark::State& state, const std::string& arch) {
  const int64_t batch = state.range(0);
  inq::seed_all(0);
  auto model = inq::create_model(arch, {.num_classes = 10, .in_channels = 1});
  inq::Sgd sgd(inq::make_param_groups(model->named_parameters(), 5e-4),
               {.lr = 0.01, .momentum = 0.9, .dampening = 0, .nesterov = false});
  inq::Generator gen(1);
  inq::Tensor x = inq::Tensor::empty({batch, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(gen.normal());
  std::vector<int64_t> y(static_cast<size_t>(batch));
  for (auto& label : y) label = static_cast<int64_t>(gen.uniform_int(10));
  model->train();
  for (auto _ : state) {
    inq::Tensor loss = inq::cross_entropy(model->forward(x), y);
    model->zero_grad();
    loss.backward();
    sgd.step();
    benchmark::DoNotOptimize(loss.data());
  }
  state.counters["images_per_s"] =
      benchmark::Counter(static_cast<double>(batch) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(train_step, lenet5, std::string("lenet5"))->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(train_step, resnet20, std::string("resnet20"))->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  inq::bench::setup(argv);
  return inq::bench::run(argc, argv);
}
