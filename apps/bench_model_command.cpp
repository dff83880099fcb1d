#include "apps/bench_model_command.h"

#include <fmt/format.h>

#include <memory>

#include "framework/threading.h"
#include "train/bench_model.h"

namespace inq {

void register_bench_model_command(CLI::App& app) {
  auto o = std::make_shared<BenchModelOptions>();
  auto threads = std::make_shared<int>(0);
  CLI::App* cmd = app.add_subcommand(
      "bench-model",
      "Time inference of one model on a random batch: a packed model runs from its codes; prints the median img/s "
      "and the peak resident memory");
  cmd->add_option("-a,--arch", o->arch, "Model architecture")->required();
  cmd->add_option("--weights", o->weights, "Packed model, weights file or checkpoint (safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--batch", o->batch, "Images per forward pass")->check(CLI::Range(int64_t{1}, int64_t{4096}));
  cmd->add_option("--threads", *threads, "Compute threads for OpenMP and OpenBLAS (0 = all cores)")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--rounds", o->rounds, "Timed forward passes (the median is reported)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--warmup", o->warmup, "Untimed forward passes first")->check(CLI::Range(int64_t{0}, int64_t{1000}));
  cmd->add_option("--num-classes", o->num_classes, "Classes of the model (default 1000, or 10 for lenet5 and resnet20)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--image-size", o->image_size, "Input height and width (default 224, 32 for resnet20, 28 for lenet5)")
      ->check(CLI::PositiveNumber);
  cmd->callback([o, threads] {
    set_num_threads(*threads);
    const BenchModelResult r = bench_model(*o);
    fmt::print("bench-model: {} from {} ({}), batch {}, {} threads, median of {} passes after {} warm-up\n", o->arch,
               o->weights,
               r.packed ? fmt::format("packed: {} layers from {:.1f} MiB of codes", r.packed_layers,
                                      static_cast<double>(r.code_bytes) / (1024.0 * 1024.0))
                        : std::string("float32"),
               o->batch, get_num_threads(), o->rounds, o->warmup);
    fmt::print("{:.2f} img/s ({:.3f} ms per pass)\n", r.images_per_second, r.median_seconds * 1e3);
    fmt::print("peak resident memory: {:.1f} MiB\n", r.peak_rss_mib);
  });
}

}  // namespace inq
