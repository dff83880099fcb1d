// The physical limit of inference from packed weights at batch 1: a fully-connected layer is a GEMV
// whose time is the time to stream its weights from memory. This program measures
//   1. the machine's memory read bandwidth (STREAM-style: the sum of a 1 GiB array, AVX-512 loads
//      where available, threads splitting it statically; best of 10 passes), and
//   2. for each fully-connected layer (caches evicted before every timed pass) of AlexNet and VGG-16 at 5 and 4 bits, batch 1, the median time of
//      PackedMatrix::matmul_transposed and the GB/s of code bytes it streamed, next to float32 sgemm on
//      the same shape (4 bytes per weight),
// and prints them as one markdown table with each rate as a fraction of the measured bandwidth;
//   3. a second table for float32 models: the same layers at batches 1..32, OpenBLAS sgemm against
//      layers/linear.h's linear_forward (which takes its own dot-product path at batches 2..16), in
//      ms and GB/s of weight bytes (4 per weight) streamed.
// Weights are random (speed does not depend on their values). Threads: INQ_THREADS (default 2).
//
//   INQ_THREADS=2 build/bench_packed_gemv [repetitions]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "framework/gemm.h"
#include "framework/tensor.h"
#include "framework/threading.h"
#include "inq/packed.h"
#include "inq/packed_matrix.h"
#include "layers/linear.h"

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Reading this much between repetitions evicts the previous repetition's weights from every cache
// level, so each timed pass streams them from memory as a model's forward pass does (the layers of a
// model together do not fit in the last-level cache).
constexpr int64_t kEvictFloats = int64_t{1} << 27;  // 512 MiB

float evict_caches(const float* buffer) {
  float s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s)
  for (int64_t i = 0; i < kEvictFloats; i += 16) s += buffer[i];
  return s;
}

template <class F>
double median_seconds(int repetitions, const float* evict, F&& f) {
  f();  // warm-up
  std::vector<double> t;
  volatile float sink = 0;
  for (int i = 0; i < repetitions; ++i) {
    sink = sink + evict_caches(evict);
    const double t0 = now();
    f();
    t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Read bandwidth in GB/s (1e9 bytes/s): the best of `passes` sums of a 1 GiB float array.
double read_bandwidth(int passes) {
  const int64_t n = int64_t{1} << 28;  // 1 GiB of floats: far beyond any cache
  std::shared_ptr<float> a = inq::allocate_floats(n);
  float* p = a.get();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = 1.0f;  // touch every page first (and on the thread that will read it)
  double best = 1e30;
  volatile float sink = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const double t0 = now();
    float total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t i = 0; i < n; i += 64) {
      // 4 independent 16-float sums per 256 bytes, so the loop is bound by loads, not by adds.
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
      for (int j = 0; j < 16; ++j) {
        s0 += p[i + j];
        s1 += p[i + 16 + j];
        s2 += p[i + 32 + j];
        s3 += p[i + 48 + j];
      }
      total += s0 + s1 + s2 + s3;
    }
    best = std::min(best, now() - t0);
    sink = sink + total;
  }
  return static_cast<double>(n) * sizeof(float) / best / 1e9;
}

struct Layer {
  const char* model;
  const char* name;
  int64_t in, out;
};

}  // namespace

int main(int argc, char** argv) {
  inq::apply_runtime_policy(argv);  // see framework/threading.h: else idle threads sleep between layers
  const int repetitions = argc > 1 ? std::atoi(argv[1]) : 20;
  const char* env = std::getenv("INQ_THREADS");
  inq::set_num_threads(env ? std::atoi(env) : 2);
  const int threads = inq::get_num_threads();
  const double bandwidth = read_bandwidth(10);
  std::printf("# memory read bandwidth (STREAM-style sum of 1 GiB, best of 10): %.1f GB/s, %d threads\n", bandwidth,
              threads);
  std::printf("# packed kernels vectorized (AVX-512 F+BW+VBMI): %s\n", inq::packed_kernels_vectorized() ? "yes" : "no");
  const std::vector<Layer> layers = {
      {"alexnet", "classifier.1", 9216, 4096}, {"alexnet", "classifier.4", 4096, 4096},
      {"alexnet", "classifier.6", 4096, 1000}, {"vgg16", "classifier.0", 25088, 4096},
      {"vgg16", "classifier.3", 4096, 4096},   {"vgg16", "classifier.6", 4096, 1000},
  };
  std::printf("| model | layer | in x out | bits | packed ms | packed GB/s | %% of bandwidth | fp32 ms | fp32 GB/s | "
              "speed-up |\n|---|---|---|---|---|---|---|---|---|---|\n");
  std::mt19937 rng(1);
  std::shared_ptr<float> evict = inq::allocate_floats(kEvictFloats);
  std::fill_n(evict.get(), kEvictFloats, 1.0f);
  for (const Layer& l : layers) {
    std::vector<float> x(static_cast<size_t>(l.in)), y(static_cast<size_t>(l.out)), bias(y.size(), 0.5f);
    for (auto& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    // float32 baseline: y = x W^T by sgemm (OpenBLAS), 4 bytes per weight streamed.
    std::vector<float> w(static_cast<size_t>(l.in * l.out));
    for (auto& v : w) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    const double fp32 = median_seconds(repetitions, evict.get(), [&] {
      inq::sgemm(false, true, 1, l.out, l.in, 1.0f, x.data(), l.in, w.data(), l.in, 0.0f, y.data(), l.out);
    });
    const double fp32_gbs = static_cast<double>(w.size()) * 4 / fp32 / 1e9;
    w = {};
    for (int bits : {5, 4}) {
      // Random valid codes: every code of a b-bit codebook but the meaningless ones.
      const inq::Codebook cb{.bits = bits, .n1 = -3, .n2 = -3 + 1 - (1 << (bits - 2))};
      inq::Tensor values = inq::Tensor::empty({l.out, l.in});
      const std::vector<float> levels = cb.levels();
      std::uniform_int_distribution<size_t> pick(0, levels.size() - 1);
      for (int64_t i = 0; i < values.numel(); ++i) values.data()[i] = levels[pick(rng)];
      const inq::PackedMatrix m =
          inq::PackedMatrix::from_packed("w", inq::pack_tensor("w", values, cb), l.out, l.in);
      values = inq::Tensor();
      const double packed = median_seconds(repetitions, evict.get(), [&] { m.matmul_transposed(x.data(), 1, bias.data(), y.data()); });
      const double gbs = static_cast<double>(m.code_bytes()) / packed / 1e9;
      std::printf("| %s | %s | %lld x %lld | %d | %.3f | %.1f | %.0f%% | %.3f | %.1f | %.2fx |\n", l.model, l.name,
                  static_cast<long long>(l.in), static_cast<long long>(l.out), bits, packed * 1e3, gbs,
                  100.0 * gbs / bandwidth, fp32 * 1e3, fp32_gbs, fp32 / packed);
    }
  }
  // Float32 layers at small batches: what the float models' fully-connected layers run on.
  std::printf("\n| model | layer | in x out | batch | sgemm ms | sgemm GB/s | linear_forward ms | linear_forward GB/s | "
              "%% of bandwidth | speed-up |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Layer& l : layers) {
    std::vector<float> w(static_cast<size_t>(l.in * l.out)), bias(static_cast<size_t>(l.out), 0.5f);
    for (auto& v : w) v = std::uniform_real_distribution<float>(-1, 1)(rng);
    for (int64_t batch : {1, 2, 4, 8, 16, 32}) {
      std::vector<float> x(static_cast<size_t>(batch * l.in)), y(static_cast<size_t>(batch * l.out));
      for (auto& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
      const double blas = median_seconds(repetitions, evict.get(), [&] {
        inq::sgemm(false, true, batch, l.out, l.in, 1.0f, x.data(), l.in, w.data(), l.in, 0.0f, y.data(), l.out);
      });
      const double ours = median_seconds(repetitions, evict.get(), [&] {
        inq::linear_forward(y.data(), x.data(), w.data(), bias.data(), batch, l.in, l.out);
      });
      const double bytes = static_cast<double>(w.size()) * 4;
      std::printf("| %s | %s | %lld x %lld | %lld | %.3f | %.1f | %.3f | %.1f | %.0f%% | %.2fx |\n", l.model, l.name,
                  static_cast<long long>(l.in), static_cast<long long>(l.out), static_cast<long long>(batch), blas * 1e3,
                  bytes / blas / 1e9, ours * 1e3, bytes / ours / 1e9, 100.0 * bytes / ours / 1e9 / bandwidth,
                  blas / ours);
    }
  }
  return 0;
}
