#include "train/bench_model.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/error_context.h"
#include "framework/random.h"
#include "train/inference_model.h"

namespace inq {

double peak_resident_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

BenchModelResult bench_model(const BenchModelOptions& o) {
  const auto known = available_models();
  INQ_CHECK(std::find(known.begin(), known.end(), o.arch) != known.end(), "Given --arch '{}', expected one of: {}",
            o.arch, fmt::join(known, ", "));
  INQ_CHECK(o.batch >= 1, "Given --batch {}, expected at least 1", o.batch);
  INQ_CHECK(o.rounds >= 1, "Given --rounds {}, expected at least 1", o.rounds);
  INQ_CHECK(o.warmup >= 0, "Given --warmup {}, expected 0 or more", o.warmup);
  const bool small = o.arch == "lenet5" || o.arch == "lenet5-caffe" || o.arch == "resnet20";
  const int64_t channels = (o.arch == "lenet5" || o.arch == "lenet5-caffe") ? 1 : 3;
  const int64_t size = o.image_size > 0 ? o.image_size : (o.arch == "lenet5" || o.arch == "lenet5-caffe") ? 28 : o.arch == "resnet20" ? 32 : 224;
  const int64_t classes = o.num_classes > 0 ? o.num_classes : small ? 10 : 1000;
  check_input_size(o.arch, size, size, fmt::format("--image-size {}", size));

  InferenceModel loaded;
  try {
    loaded = load_inference_model(o.arch, inference_options({.num_classes = classes, .in_channels = channels}),
                                  o.weights, {.arch = o.arch});
  } catch (const Error& e) {
    throw with_file_context(e, "--weights", o.weights);
  }
  Tensor x = Tensor::empty({o.batch, channels, size, size});
  Generator gen(1);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(gen.normal());

  NoGradGuard no_grad;
  for (int64_t i = 0; i < o.warmup; ++i) loaded.model->forward(x);
  std::vector<double> seconds;
  for (int64_t i = 0; i < o.rounds; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor y = loaded.model->forward(x);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    INQ_CHECK(y.dim() == 2 && y.size(0) == o.batch, "Given --arch {}, expected logits of {} rows, but got shape {}",
              o.arch, o.batch, shape_str(y.shape()));
  }
  std::sort(seconds.begin(), seconds.end());
  BenchModelResult r;
  r.packed = loaded.packed;
  r.packed_layers = static_cast<int>(loaded.packed_summary.packed_layers);
  r.code_bytes = loaded.packed_summary.code_bytes;
  r.median_seconds = seconds[seconds.size() / 2];
  r.images_per_second = static_cast<double>(o.batch) / r.median_seconds;
  r.peak_rss_mib = peak_resident_mib();
  return r;
}

}  // namespace inq
