// Convolution kernels (im2col + sgemm) against raw sgemm on exactly the GEMMs the convolution runs,
// at the ResNet-20 (28x28, 1 channel input, batch 128) and ResNet-50 (224x224, batch 8) layer shapes.
// Every benchmark reports GFLOP/s (the convolution's multiply-adds x 2, per second of wall time), so
// "ConvForward/<shape>" over "SgemmForward/<shape>" is the fraction of GEMM speed the lowering keeps
// (Sgemm* are the im2col path's GEMMs: on shapes the dispatcher sends to Winograd the ratio
// exceeds 1, since Winograd does fewer multiplies; compare Im2col* with Sgemm* there).
//   ConvForward / ConvBackward    conv2d_forward / conv2d_backward (input + weight grads, no bias),
//                                 on the path the dispatcher picks (Winograd for 3x3 stride-1 layers)
//   ConvBackwardData / ...Weight  conv2d_backward's input gradient alone / weight gradient alone
//   Im2col{Forward,Backward,BackwardData,BackwardWeight}/<shape>  the same with im2col + sgemm forced (on the
//                                 shapes where the dispatcher may pick Winograd or the direct kernels)
//   Winograd{Forward,BackwardData,BackwardWeight}/<shape>/m<m>/tb<Tb>  the Winograd kernels with tile m and
//                                 Tb tiles per block (0: winograd_block_tiles)
//   SgemmForward / SgemmBackward  the same sequence of sgemm calls on preallocated buffers
//   ChunkForward/<shape>/<n>      the forward with n images per GEMM: the data behind
//                                 choose_images_per_gemm (framework/im2col.cpp)
//   SgemmPeak/<n>                 square n x n x n sgemms (n = 512, 1024, 2048): the best is the GEMM peak, against which
//                                 `make bench-compare` states every convolution as a share
// Each shape is also in the report's context as "conv_shape <name>" = "N C H W K R S stride pad",
// which bench/pytorch_conv.py reads to time PyTorch's convolution on exactly the same shapes.
// Threads: INQ_THREADS (default: all cores) sets OpenMP and OpenBLAS. The machine may be shared:
// compare medians within one run, with repetitions interleaved so that load drifts hit every
// benchmark alike, as `make bench` does (see its recipe in the Makefile), then
//   tools/conv_bench_ratio.py conv.json    # conv/sgemm per shape
// INQ_BENCH_TIME=cpu measures the process's CPU time (all threads) instead of wall time: rates then
// read per core-second, which a loaded machine distorts far less (time spent descheduled is not
// counted; spin-waiting is).
#include <benchmark/benchmark.h>

#include "bench_common.h"
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "framework/gemm.h"
#include "framework/im2col.h"
#include "framework/random.h"
#include "framework/tensor.h"
#include "framework/threading.h"
#include "layers/conv2d.h"
#include "layers/conv2d_direct.h"
#include "layers/conv2d_winograd.h"

namespace {

using inq::Conv2dGeometry;
using inq::Shape;
using inq::Tensor;

struct ConvShape {
  std::string name;
  Shape x, w;
  int64_t stride, padding;
};

std::vector<ConvShape> shapes() {
  return {
      // LeNet-5 on 28x28 single-channel images, batch 128 (the direct kernels' narrow layers).
      {"lenet5_5x5_1to6c_28x28", {128, 1, 28, 28}, {6, 1, 5, 5}, 1, 2},
      {"lenet5_5x5_6to16c_14x14", {128, 6, 14, 14}, {16, 6, 5, 5}, 1, 0},
      // ResNet-20 for a 28x28 single-channel input, batch 128.
      {"r20_stem_1to16c_28x28", {128, 1, 28, 28}, {16, 1, 3, 3}, 1, 1},
      {"r20_3x3_16c_28x28", {128, 16, 28, 28}, {16, 16, 3, 3}, 1, 1},
      {"r20_3x3_32c_14x14", {128, 32, 14, 14}, {32, 32, 3, 3}, 1, 1},
      {"r20_3x3_64c_7x7", {128, 64, 7, 7}, {64, 64, 3, 3}, 1, 1},
      // ResNet-50 bottleneck 3x3 convolutions and a few 1x1s, batch 8.
      {"r50_3x3_64c_56x56", {8, 64, 56, 56}, {64, 64, 3, 3}, 1, 1},
      {"r50_3x3_128c_28x28", {8, 128, 28, 28}, {128, 128, 3, 3}, 1, 1},
      {"r50_3x3_256c_14x14", {8, 256, 14, 14}, {256, 256, 3, 3}, 1, 1},
      {"r50_3x3_512c_7x7", {8, 512, 7, 7}, {512, 512, 3, 3}, 1, 1},
      {"r50_1x1_64to256c_56x56", {8, 64, 56, 56}, {256, 64, 1, 1}, 1, 0},
      {"r50_1x1_1024to256c_14x14", {8, 1024, 14, 14}, {256, 1024, 1, 1}, 1, 0},
      {"r50_1x1_512to2048c_7x7", {8, 512, 7, 7}, {2048, 512, 1, 1}, 1, 0},
      // ResNet-18/50's stem and a stride-2 3x3 layer (im2col in training), batch 8.
      {"r18_stem_7x7s2_3to64c_224x224", {8, 3, 224, 224}, {64, 3, 7, 7}, 2, 3},
      {"r18_3x3s2_64to128c_56x56", {8, 64, 56, 56}, {128, 64, 3, 3}, 2, 1},
  };
}

// "N C H W K R S stride pad", the machine-readable form bench/pytorch_conv.py parses.
std::string fmt_shape(const ConvShape& s) {
  std::string out;
  for (int64_t v : {s.x[0], s.x[1], s.x[2], s.x[3], s.w[0], s.w[2], s.w[3], s.stride, s.padding}) {
    if (!out.empty()) out += ' ';  // appended separately: ("" or " ") + string made GCC 12 warn -Wrestrict
    out += std::to_string(v);
  }
  return out;
}

Conv2dGeometry geometry(const ConvShape& s) { return Conv2dGeometry::make(s.x, s.w, s.stride, s.padding); }

Tensor random(const Shape& shape, uint64_t seed) {
  inq::Generator gen(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = gen.uniform() - 0.5f;
  return t;
}

void report(benchmark::State& state, const Conv2dGeometry& g, double flops) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["imgs_per_gemm"] = static_cast<double>(std::min(g.images_per_gemm, g.N));
}

void winograd_backward_weight(benchmark::State& state, Conv2dGeometry g, inq::WinogradConfig config) {
  Tensor x = random(g.input_shape(), 1), dy = random(g.output_shape(), 2);
  Tensor dw = Tensor::empty(g.weight_shape());
  for (auto _ : state) {
    inq::winograd_conv2d_backward_weight(dw.data(), x.data(), dy.data(), g, config, false);
    benchmark::DoNotOptimize(dw.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(g.forward_flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// Runs a benchmark under one conv2d algorithm mode (Auto: the dispatcher's choice; Im2col: the
// im2col + sgemm path forced, the "before" of the Winograd work), restoring the mode after.
struct AlgorithmScope {
  explicit AlgorithmScope(inq::Conv2dAlgorithm a) : saved(inq::conv2d_algorithm()) { inq::set_conv2d_algorithm(a); }
  ~AlgorithmScope() { inq::set_conv2d_algorithm(saved); }
  inq::Conv2dAlgorithm saved;
};

void conv_forward(benchmark::State& state, Conv2dGeometry g, inq::Conv2dAlgorithm algo) {
  AlgorithmScope scope(algo);
  Tensor x = random(g.input_shape(), 1), w = random(g.weight_shape(), 2), b = random({g.K}, 3);
  Tensor y = Tensor::empty(g.output_shape());
  for (auto _ : state) {
    inq::conv2d_forward(y.data(), x.data(), w.data(), b.data(), g);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, g, g.forward_flops());
}

// want_dx / want_dw: the input gradient, the weight gradient or both (each costs forward_flops).
void conv_backward(benchmark::State& state, Conv2dGeometry g, inq::Conv2dAlgorithm algo, bool want_dx,
                   bool want_dw) {
  AlgorithmScope scope(algo);
  Tensor x = random(g.input_shape(), 1), w = random(g.weight_shape(), 2), dy = random(g.output_shape(), 3);
  Tensor dx = Tensor::zeros(g.input_shape()), dw = Tensor::zeros(g.weight_shape());
  for (auto _ : state) {
    inq::conv2d_backward(want_dx ? dx.data() : nullptr, want_dw ? dw.data() : nullptr, nullptr, dy.data(),
                         x.data(), w.data(), g);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  report(state, g, (want_dx + want_dw) * g.forward_flops());
}

// The Winograd kernels with an explicit tile size and block: the data behind the dispatcher's
// choice (layers/conv2d.cpp, choose_conv2d_algorithm) and winograd_block_tiles.
void winograd_forward(benchmark::State& state, Conv2dGeometry g, inq::WinogradConfig config) {
  Tensor x = random(g.input_shape(), 1), w = random(g.weight_shape(), 2), b = random({g.K}, 3);
  Tensor y = Tensor::empty(g.output_shape());
  for (auto _ : state) {
    inq::winograd_conv2d_forward(y.data(), x.data(), w.data(), b.data(), g, config);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, g, g.forward_flops());
}

void winograd_backward_data(benchmark::State& state, Conv2dGeometry g, inq::WinogradConfig config) {
  Tensor dy = random(g.output_shape(), 1), w = random(g.weight_shape(), 2);
  Tensor dx = Tensor::empty(g.input_shape());
  for (auto _ : state) {
    inq::winograd_conv2d_backward_data(dx.data(), dy.data(), w.data(), g, config, false);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  report(state, g, g.forward_flops());
}

// The lowering alone, chunk by chunk as conv2d_forward runs it; GB/s counts col bytes written.
void lowering(benchmark::State& state, Conv2dGeometry g) {
  const int64_t chunk = std::min(g.images_per_gemm, g.N), P = g.output_pixels();
  Tensor x = random(g.input_shape(), 1), col = Tensor::empty({g.col_rows(), chunk * P});
  for (auto _ : state) {
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk)
      inq::im2col(col.data(), x.data() + n0 * g.C * g.H * g.W, std::min(chunk, g.N - n0), g);
    benchmark::DoNotOptimize(col.data());
    benchmark::ClobberMemory();
  }
  const double bytes = 4.0 * static_cast<double>(g.col_rows()) * static_cast<double>(g.N * P);
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The GEMMs conv2d_forward / conv2d_backward issue, chunk by chunk and group by group, on buffers of
// the same sizes (without the im2col, col2im, gathers and scatters around them).
void sgemm_forward(benchmark::State& state, Conv2dGeometry g) {
  const int64_t chunk = std::min(g.images_per_gemm, g.N), P = g.output_pixels();
  const int64_t Kg = g.outputs_per_group(), inner = g.group_col_rows();
  Tensor w = random(g.weight_shape(), 2), col = random({g.col_rows(), chunk * P}, 1);
  Tensor out = Tensor::empty({g.K, chunk * P});
  for (auto _ : state) {
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
      const int64_t ld = std::min(chunk, g.N - n0) * P;
      for (int64_t grp = 0; grp < g.groups; ++grp)
        inq::sgemm(false, false, Kg, ld, inner, 1.0f, w.data() + grp * Kg * inner, inner,
                   col.data() + grp * inner * ld, ld, 0.0f, out.data() + grp * Kg * ld, ld);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  report(state, g, g.forward_flops());
}

void sgemm_backward(benchmark::State& state, Conv2dGeometry g) {
  const int64_t chunk = std::min(g.images_per_gemm, g.N), P = g.output_pixels();
  const int64_t Kg = g.outputs_per_group(), Cg = g.channels_per_group(), inner = g.group_col_rows();
  const bool direct = g.is_pointwise() && chunk == 1;
  Tensor w = random(g.weight_shape(), 2), col = random({g.col_rows(), chunk * P}, 1);
  Tensor dy = random({g.K, chunk * P}, 3), dw = Tensor::zeros(g.weight_shape());
  Tensor dcol = Tensor::zeros({g.col_rows(), chunk * P});
  for (auto _ : state) {
    for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
      const int64_t ld = std::min(chunk, g.N - n0) * P;
      for (int64_t grp = 0; grp < g.groups; ++grp)
        inq::sgemm(false, true, Kg, inner, ld, 1.0f, dy.data() + grp * Kg * ld, ld,
                   col.data() + grp * inner * ld, ld, 1.0f, dw.data() + grp * Kg * inner, inner);
      for (int64_t grp = 0; grp < g.groups; ++grp)
        inq::sgemm(true, false, direct ? Cg : inner, ld, Kg, 1.0f, w.data() + grp * Kg * inner, inner,
                   dy.data() + grp * Kg * ld, ld, direct ? 1.0f : 0.0f, dcol.data() + grp * inner * ld, ld);
    }
    benchmark::DoNotOptimize(dw.data());
    benchmark::ClobberMemory();
  }
  report(state, g, 2.0 * g.forward_flops());
}

// C = A B on n x n matrices, beta = 0: large enough that OpenBLAS runs at its best.
void sgemm_peak(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = random({n, n}, 1), b = random({n, n}, 2), c = Tensor::empty({n, n});
  for (auto _ : state) {
    inq::sgemm(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

bool g_cpu_time = false;

void timing(benchmark::internal::Benchmark* b) {
  if (g_cpu_time) {
    b->MeasureProcessCPUTime();
  } else {
    b->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  inq::bench::setup(argv);

  const char* time_env = std::getenv("INQ_BENCH_TIME");
  g_cpu_time = time_env && std::string(time_env) == "cpu";
  benchmark::AddCustomContext("inq_bench_time",
                              g_cpu_time ? "process CPU time (GFLOP/s per core-second)" : "wall time");

  for (const ConvShape& s : shapes()) {
    const Conv2dGeometry g = geometry(s);
    benchmark::AddCustomContext("shape " + s.name, g.str());
    benchmark::AddCustomContext("conv_shape " + s.name, fmt_shape(s));
    using A = inq::Conv2dAlgorithm;
    benchmark::RegisterBenchmark(("ConvForward/" + s.name).c_str(), conv_forward, g, A::Auto)->Apply(timing);
    benchmark::RegisterBenchmark(("SgemmForward/" + s.name).c_str(), sgemm_forward, g)->Apply(timing);
    benchmark::RegisterBenchmark(("ConvBackward/" + s.name).c_str(), conv_backward, g, A::Auto, true, true)
        ->Apply(timing);
    benchmark::RegisterBenchmark(("ConvBackwardData/" + s.name).c_str(), conv_backward, g, A::Auto, true, false)
        ->Apply(timing);
    benchmark::RegisterBenchmark(("ConvBackwardWeight/" + s.name).c_str(), conv_backward, g, A::Auto, false,
                                 true)
        ->Apply(timing);
    if (inq::winograd_supported(g) || inq::direct_conv2d_supported(g)) {
      // The same with im2col + sgemm forced: the path every such layer took before Winograd and
      // the direct kernels.
      benchmark::RegisterBenchmark(("Im2colForward/" + s.name).c_str(), conv_forward, g, A::Im2col)
          ->Apply(timing);
      benchmark::RegisterBenchmark(("Im2colBackward/" + s.name).c_str(), conv_backward, g, A::Im2col, true, true)
          ->Apply(timing);
      benchmark::RegisterBenchmark(("Im2colBackwardData/" + s.name).c_str(), conv_backward, g, A::Im2col, true,
                                   false)
          ->Apply(timing);
      benchmark::RegisterBenchmark(("Im2colBackwardWeight/" + s.name).c_str(), conv_backward, g, A::Im2col, false,
                                   true)
          ->Apply(timing);
      for (int m : {2, 4})
        for (int64_t tb : {0, 64, 128, 256, 512, 1024}) {
          if (!inq::winograd_supported(g)) break;
          const std::string suffix = s.name + "/m" + std::to_string(m) + "/tb" + std::to_string(tb);
          const inq::WinogradConfig config{.m = m, .block_tiles = tb};
          benchmark::RegisterBenchmark(("WinogradForward/" + suffix).c_str(), winograd_forward, g, config)
              ->Apply(timing);
          benchmark::RegisterBenchmark(("WinogradBackwardData/" + suffix).c_str(), winograd_backward_data, g,
                                       config)
              ->Apply(timing);
          benchmark::RegisterBenchmark(("WinogradBackwardWeight/" + suffix).c_str(), winograd_backward_weight, g,
                                       config)
              ->Apply(timing);
        }
    }
    benchmark::RegisterBenchmark(("Im2col/" + s.name).c_str(), lowering, g)->Apply(timing);
    benchmark::RegisterBenchmark(("SgemmBackward/" + s.name).c_str(), sgemm_backward, g)->Apply(timing);
  }
  // Several sizes: on some machines (this AMD EPYC VM with OpenBLAS 0.3.21) a 2048^3 sgemm runs at
  // about half the rate of a 512^3 or 1024^3 one, so the peak is the best of them (bench_compare.py).
  benchmark::RegisterBenchmark("SgemmPeak", sgemm_peak)->Arg(512)->Arg(1024)->Arg(2048)->Apply(timing);
  // Chunk-size sweep for the policy, on the shapes where the choice matters (small images).
  for (const ConvShape& s : shapes()) {
    Conv2dGeometry g = geometry(s);
    if (g.output_pixels() > 28 * 28) continue;
    for (int64_t n = 1; n <= g.N; n *= 2) {
      g.images_per_gemm = n;
      // Im2col forced: the chunk size only matters there.
      benchmark::RegisterBenchmark(("ChunkForward/" + s.name + "/" + std::to_string(n)).c_str(), conv_forward,
                                   g, inq::Conv2dAlgorithm::Im2col)
          ->Apply(timing);
      benchmark::RegisterBenchmark(("ChunkBackward/" + s.name + "/" + std::to_string(n)).c_str(),
                                   conv_backward, g, inq::Conv2dAlgorithm::Im2col, true, true)
          ->Apply(timing);
    }
  }
  return inq::bench::run(argc, argv);
}
