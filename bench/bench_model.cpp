// One workload, one process: the program `make bench-compare` (bench/bench_compare.py) runs for
// this framework, with bench/pytorch_model.py as its PyTorch twin (same flags, same output line).
// One process per measurement keeps each one's peak resident memory its own and lets the driver
// alternate the two frameworks round by round.
//
//   bench_model --mode train|eval --arch resnet20 --batch 128 --channels 1 --size 28 --classes 10
//               --threads 2 --warmup 1 --min-time 2 [--min-steps 1]
//
// Runs `warmup` untimed steps (first-touch page faults, BLAS buffers), then timed steps until both
// `min-time` seconds and `min-steps` steps have passed, and prints one line:
//   result framework=inq mode=train arch=resnet20 batch=128 threads=2 steps=9 seconds=2.07
//          images_per_s=556.3 peak_rss_kb=181234
// (peak_rss_kb: getrusage's ru_maxrss for the whole process, set-up and warm-up included.)
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>

#include "bench_workloads.h"
#include "framework/allocator.h"
#include "framework/threading.h"
#include "framework/workspace.h"

namespace {

struct Args {
  std::string mode = "train", arch = "resnet20";
  inq::bench::WorkloadShape shape;
  int threads = 0, warmup = 1, min_steps = 1;
  double min_time = 2.0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw std::runtime_error("flag " + flag + " needs a value");
    const std::string v = argv[++i];
    if (flag == "--mode") a.mode = v;
    else if (flag == "--arch") a.arch = v;
    else if (flag == "--batch") a.shape.batch = std::stoll(v);
    else if (flag == "--channels") a.shape.channels = std::stoll(v);
    else if (flag == "--size") a.shape.size = std::stoll(v);
    else if (flag == "--classes") a.shape.classes = std::stoll(v);
    else if (flag == "--threads") a.threads = std::stoi(v);
    else if (flag == "--warmup") a.warmup = std::stoi(v);
    else if (flag == "--min-steps") a.min_steps = std::stoi(v);
    else if (flag == "--min-time") a.min_time = std::stod(v);
    else throw std::runtime_error("unknown flag " + flag);
  }
  if (a.mode != "train" && a.mode != "eval") throw std::runtime_error("--mode must be train or eval");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  // Same OpenMP spin policy as every other program of this project (framework/threading.h).
  const char* policy = inq::apply_runtime_policy(argv);
  Args a;
  try {
    a = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: %s\n", e.what());
    return 2;
  }
  inq::set_num_threads(a.threads);

  std::function<float()> step;
  std::unique_ptr<inq::bench::TrainStep> train;
  std::unique_ptr<inq::bench::EvalForward> eval;
  if (a.mode == "train") {
    train = std::make_unique<inq::bench::TrainStep>(a.arch, a.shape);
    step = [&] { return train->run(); };
  } else {
    eval = std::make_unique<inq::bench::EvalForward>(a.arch, a.shape);
    step = [&] { return eval->run(); };
  }

  volatile float sink = 0;
  for (int i = 0; i < a.warmup; ++i) sink = step();
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  int steps = 0;
  double elapsed = 0;
  while (steps < a.min_steps || elapsed < a.min_time) {
    sink = step();
    ++steps;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  (void)sink;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("# openmp spin policy %s, blas %s, kernels %s\n", policy, inq::blas_config(), inq::blas_core());
  // Where the resident memory goes: tensors live at the worst moment, and live + idle in the
  // allocator's cache (the rest of peak_rss_kb is code, libraries, workspaces and the heap).
  const inq::AllocatorStats memory = inq::allocator_stats();
  std::printf("# tensor memory: peak live %.1f MiB, peak live + cached %.1f MiB; kernel workspaces: peak %.1f MiB\n",
              static_cast<double>(memory.peak_live_bytes) / (1 << 20),
              static_cast<double>(memory.peak_held_bytes) / (1 << 20),
              static_cast<double>(inq::peak_workspace_bytes()) / (1 << 20));
  std::printf(
      "result framework=inq mode=%s arch=%s batch=%lld threads=%d steps=%d seconds=%.3f images_per_s=%.2f "
      "peak_rss_kb=%ld\n",
      a.mode.c_str(), a.arch.c_str(), static_cast<long long>(a.shape.batch), inq::get_num_threads(), steps,
      elapsed, static_cast<double>(a.shape.batch) * steps / elapsed, usage.ru_maxrss);
  return 0;
}
