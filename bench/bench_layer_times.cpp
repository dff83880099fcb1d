// ResNet-50's convolutions one by one through the inference kernel (FrozenConv2dKernel, what
// `inq eval` and bench_model --mode eval run after prepare_for_inference): the best of 10 calls per
// layer, that times the layer's count in the network, GFLOP/s, and the total, to see where a batch's
// convolution time goes on a machine. Random weights and inputs (the timing does not depend on them).
//
//   build/bench_layer_times [threads=1] [batch=8]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "framework/autograd.h"
#include "framework/gemm.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "layers/conv2d.h"
#include "layers/conv2d_panels.h"
#include "layers/inference_prep.h"

using namespace inq;

namespace {

struct Layer {
  const char* name;
  int64_t C, K, size, kernel, stride, padding, count;  // count: how many such layers ResNet-50 has
};

// torchvision's ResNet-50 (stride on the 3x3 of each stage's first block) on 224x224 images.
const std::vector<Layer> kResNet50 = {
    {"stem 7x7/2 3->64, 224", 3, 64, 224, 7, 2, 3, 1},
    {"1x1 64->64, 56", 64, 64, 56, 1, 1, 0, 1},
    {"3x3 64, 56", 64, 64, 56, 3, 1, 1, 3},
    {"1x1 64->256, 56", 64, 256, 56, 1, 1, 0, 4},
    {"1x1 256->64, 56", 256, 64, 56, 1, 1, 0, 2},
    {"1x1 256->128, 56", 256, 128, 56, 1, 1, 0, 1},
    {"3x3/2 128, 56", 128, 128, 56, 3, 2, 1, 1},
    {"1x1/2 256->512, 56", 256, 512, 56, 1, 2, 0, 1},
    {"1x1 128->512, 28", 128, 512, 28, 1, 1, 0, 4},
    {"1x1 512->128, 28", 512, 128, 28, 1, 1, 0, 3},
    {"3x3 128, 28", 128, 128, 28, 3, 1, 1, 3},
    {"1x1 512->256, 28", 512, 256, 28, 1, 1, 0, 1},
    {"3x3/2 256, 28", 256, 256, 28, 3, 2, 1, 1},
    {"1x1/2 512->1024, 28", 512, 1024, 28, 1, 2, 0, 1},
    {"1x1 256->1024, 14", 256, 1024, 14, 1, 1, 0, 6},
    {"1x1 1024->256, 14", 1024, 256, 14, 1, 1, 0, 5},
    {"3x3 256, 14", 256, 256, 14, 3, 1, 1, 5},
    {"1x1 1024->512, 14", 1024, 512, 14, 1, 1, 0, 1},
    {"3x3/2 512, 14", 512, 512, 14, 3, 2, 1, 1},
    {"1x1/2 1024->2048, 14", 1024, 2048, 14, 1, 2, 0, 1},
    {"1x1 512->2048, 7", 512, 2048, 7, 1, 1, 0, 3},
    {"1x1 2048->512, 7", 2048, 512, 7, 1, 1, 0, 2},
    {"3x3 512, 7", 512, 512, 7, 3, 1, 1, 2},
};

// The route FrozenConv2dKernel::forward takes (frozen_conv2d_route), for the label.
std::string route_of(const Conv2dGeometry& g) {
  const FrozenConv2dRoute route = frozen_conv2d_route(g);
  const std::string tile = "F(" + std::to_string(route.tile) + "x" + std::to_string(route.tile) + ")";
  switch (route.kind) {
    case FrozenConv2dRoute::KeptWinograd:
      return "winograd " + tile + ", kept filters" + (route.filter_panels ? " as panels" : "");
    case FrozenConv2dRoute::PerCallWinograd:
      return "winograd " + tile + ", filters per call";
    case FrozenConv2dRoute::Lowered:
      break;
  }
  // The panel kernel's lowering (layers/conv2d_panels.h).
  if (conv2d_panels_supported(g) && conv2d_panels_in_place(g)) return "panels, input in place";
  return "im2col";
}

}  // namespace

int main(int argc, char** argv) {
  inq::bench::setup(argv);
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 8;
  if (threads < 1 || batch < 1) {
    std::fprintf(stderr, "usage: %s [threads >= 1] [batch >= 1]\n", argv[0]);
    return 2;
  }
  set_num_threads(threads);
  std::printf("ResNet-50 convolutions, batch %lld, %d thread(s), OpenBLAS %s kernels (AVX-512 sgemm: %s)\n",
              static_cast<long long>(batch), threads, blas_core(), sgemm_runs_avx512() ? "yes" : "no");
  NoGradGuard no_grad;
  double total_s = 0, total_flops = 0;
  for (const Layer& l : kResNet50) {
    const Shape xs{batch, l.C, l.size, l.size}, ws{l.K, l.C, l.kernel, l.kernel};
    const Conv2dOptions options{.in_channels = l.C, .out_channels = l.K, .kernel_size = l.kernel,
                                .stride = l.stride, .padding = l.padding};
    const Conv2dGeometry g = Conv2dGeometry::make(xs, ws, l.stride, l.padding);
    Generator gen(1);
    Tensor x = Tensor::empty(xs), w = Tensor::empty(ws), b = Tensor::empty({l.K});
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = gen.uniform();
    for (int64_t i = 0; i < w.numel(); ++i) w.data()[i] = gen.uniform() - 0.5f;
    for (int64_t i = 0; i < l.K; ++i) b.data()[i] = 0.0f;
    const FrozenConv2dKernel kernel(w, 1);
    double best = 1e30;
    for (int call = 0; call < 10; ++call) {
      const auto start = std::chrono::steady_clock::now();
      const Tensor y = kernel.forward(x, b, options);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    total_s += best * static_cast<double>(l.count);
    total_flops += static_cast<double>(g.forward_flops()) * static_cast<double>(l.count);
    std::printf("%-24s x%lld %8.2f ms each %8.2f ms in all %7.1f GFLOP/s  %s\n", l.name,
                static_cast<long long>(l.count), best * 1e3, best * 1e3 * static_cast<double>(l.count),
                static_cast<double>(g.forward_flops()) * 1e-9 / best, route_of(g).c_str());
  }
  std::printf("all convolutions: %.1f ms per batch (%.1f img/s from them alone), %.1f GFLOP/s\n", total_s * 1e3,
              static_cast<double>(batch) / total_s, total_flops * 1e-9 / total_s);
  return 0;
}
