// The cost of INQ's own work per step — partition, quantize and freeze (InqSgd::begin_step), and
// the section 8 verification — on the full ResNet-20 and LeNet-5 weights, to compare with an
// epoch of training (issue 3: together under 1% of an epoch). Single-threaded code; INQ_THREADS
// only matters for the rest of the process.
// And the BatchNorm re-estimation after the last step (train/evaluate.h reestimate_batchnorm): forward passes of
// ResNet-20 with only BatchNorm in training mode, per batch of 128 Fashion-MNIST-sized images; it
// does use INQ_THREADS.
#include <benchmark/benchmark.h>

#include "bench_common.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "train/trainer.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "inq/inq_sgd.h"
#include "models/registry.h"

namespace {

// All 4 steps of the 5-bit schedule ({0.5, 0.75, 0.875, 1}) on a freshly initialized model, then
// the verification of every quantized weight; the reported time is for the whole schedule.
void inq_schedule(benchmark::State& state, const std::string& arch, const std::string& strategy) {
  for (auto _ : state) {
    state.PauseTiming();
    inq::seed_all(0);
    auto model = inq::create_model(arch, {.num_classes = 10, .in_channels = 1});
    inq::InqSgd sgd(inq::make_param_groups(model->named_parameters(), 5e-4), {.lr = 0.01, .momentum = 0.9},
                    {.bits = 5, .portions = {}, .strategy = inq::parse_partition_strategy(strategy), .seed = 1});
    state.ResumeTiming();
    for (int k = 1; k <= sgd.num_steps(); ++k) sgd.begin_step(k);
    benchmark::DoNotOptimize(sgd.verify());
  }
  // Steps per second: invert for the time of one step (partition + quantize + freeze, plus a
  // quarter of the final verification).
  state.counters["steps_per_s"] =
      benchmark::Counter(4.0 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// reestimate_batchnorm over `kBatches` batches of 128 random 1x28x28 images from an in-memory
// dataset (the loader's cost is a copy); the rate counter is batches per second.
void bn_reestimation(benchmark::State& state) {
  constexpr int64_t kBatch = 128, kBatches = 4;
  inq::seed_all(0);
  auto model = inq::create_model("resnet20", {.num_classes = 10, .in_channels = 1});
  inq::Generator gen(7);
  std::vector<float> pixels(static_cast<size_t>(kBatch * kBatches * 28 * 28));
  for (float& p : pixels) p = gen.uniform() * 2.0f - 1.0f;
  inq::TensorDataset data(inq::Tensor::from_vector({kBatch * kBatches, 1, 28, 28}, pixels),
                          std::vector<int64_t>(static_cast<size_t>(kBatch * kBatches), 0), 10);
  inq::DataLoader loader(data, {.batch_size = kBatch});
  for (auto _ : state) benchmark::DoNotOptimize(inq::reestimate_batchnorm(*model, loader, 0, kBatches));
  state.counters["batches_per_s"] =
      benchmark::Counter(static_cast<double>(kBatches * state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(bn_reestimation)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(inq_schedule, resnet20_magnitude, std::string("resnet20"), std::string("magnitude"))
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(inq_schedule, resnet20_random, std::string("resnet20"), std::string("random"))
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(inq_schedule, lenet5_magnitude, std::string("lenet5"), std::string("magnitude"))
    ->Unit(benchmark::kMillisecond)->UseRealTime();

int main(int argc, char** argv) {
  inq::bench::setup(argv);
  return inq::bench::run(argc, argv);
}
