// `inq reproduce --prune`: pruning and INQ side by side on one architecture (docs/INQ_SPEC.md
// section 6). Rows: FP32; DNS at each sparsity target (float weights); DNS + 5-bit INQ at each
// target; 5-bit INQ; magnitude pruning and magnitude pruning + 5-bit INQ at each target; DNS + INQ
// at the other bit-widths. Every quantized row is verified (pruned positions included), packed, evaluated
// from the packed file and from its checkpoint (the two must agree exactly), and its compression
// ratio is measured on the packed file: the float32 bytes of the quantized tensors over the bytes
// the file stores them in. Each run has its own folder, so an interrupted command continues.
#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "data/datasets.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/threading.h"
#include "inq/packed_model.h"
#include "models/registry.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/inq_files.h"
#include "train/reproduce.h"
#include "train/run_setup.h"

namespace inq {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Experiment {
  Experiment(const ReproduceOptions& options, std::string folder) : o(options), out(std::move(folder)) {}
  const ReproduceOptions& o;
  std::string out;
  TrainConfig base;
  std::unique_ptr<DataLoader> test_loader;
  std::shared_ptr<Dataset> test_set;
  double fp32_acc1 = 0;
  std::string fp32;
  json rows = json::array();

  double evaluate_file(const std::string& weights) {
    auto model = create_model(o.arch, {.num_classes = 10, .in_channels = 1});
    load_model_weights(read_safetensors(weights), *model);
    return evaluate(*model, *test_loader).acc1;
  }

  json row(const std::string& method, double target, double sparsity, int bits, double acc1) const {
    return {{"model", o.arch}, {"method", method}, {"target_sparsity", target}, {"sparsity", sparsity},
            {"bits", bits},    {"acc1", acc1},     {"fp32_acc1", fp32_acc1},  {"packed_bytes", nullptr},
            {"ratio", nullptr}, {"file_bytes", nullptr}, {"entropy_bytes", nullptr}, {"entropy_ratio", nullptr},
            {"file_ratio", nullptr}, {"entropy_file_ratio", nullptr}};
  }

  // Appends a row and rewrites prune_results.json and .md with the rows so far (atomic writes),
  // so an interrupted command leaves every finished row in the table.
  void add_row(json r) {
    rows.push_back(std::move(r));
    write_summary();
  }
  void write_summary() const;

  // A pruning run from the FP32 weights; returns its folder.
  std::string prune(const std::string& method, double sparsity) {
    TrainConfig c = base;
    c.run.weights = fp32;
    c.run.epochs = o.prune_epochs > 0 ? o.prune_epochs : base.run.epochs;
    c.optim.lr = 0.01;  // re-training a trained model, as INQ's re-training
    c.prune.method = method;
    c.prune.sparsity = sparsity;
    c.run.out = fmt::format("{}/{}-s{}", out, method, sparsity);
    const json r = run_or_continue(c);
    add_row(row(method, sparsity, r["prune"]["sparsity"].get<double>(), 32, r["acc1"].get<double>()));
    return c.run.out;
  }

  // An INQ run from `weights` (FP32 or a pruning run's final.safetensors), verified and packed.
  void quantize(const std::string& method, const std::string& weights, double target, double sparsity, int bits) {
    TrainConfig c = base;
    c.run.weights = weights;
    c.inq.bits = bits;
    c.inq.epochs_per_step = o.epochs_per_step;
    c.inq.bn_batches = o.bn_batches;
    c.optim.lr = 0.01;  // docs/REPRODUCTION.md section 1
    c.run.out = fmt::format("{}/{}-s{}-inq{}", out, method, target, bits);
    const json r = run_or_continue(c);
    const std::string final_weights = c.run.out + "/final.safetensors";
    INQ_CHECK(verify_checkpoint(final_weights, stderr) == 0,
              "Given the INQ run in '{}', expected every quantized weight and every pruned position to verify", c.run.out);
    json x = row(method == "fp32" ? "inq" : method + "+inq", target, sparsity, bits, r["acc1"].get<double>());
    const std::string packed = c.run.out + "/packed.safetensors";
    const PackSummary s = pack_checkpoint(final_weights, packed, PackOptions{.sparse = true, .entropy_coding = false});
    x["packed_bytes"] = s.code_bytes;
    x["float_bytes"] = s.code_float_bytes;
    x["ratio"] = static_cast<double>(s.code_float_bytes) / static_cast<double>(s.code_bytes);
    x["file_bytes"] = s.file_bytes;
    x["float_file_bytes"] = s.float_file_bytes;
    x["file_ratio"] = static_cast<double>(s.float_file_bytes) / static_cast<double>(s.file_bytes);
    x["sparse_tensors"] = s.sparse_tensors;
    // The same model with the entropy-coding stage (canonical Huffman over codes and gaps), the
    // like-for-like comparison with Deep Compression's Huffman stage.
    const PackSummary e = pack_checkpoint(final_weights, c.run.out + "/packed-entropy.safetensors",
                                          PackOptions{.sparse = true, .entropy_coding = true});
    x["entropy_bytes"] = e.code_bytes;
    x["entropy_ratio"] = static_cast<double>(e.code_float_bytes) / static_cast<double>(e.code_bytes);
    x["entropy_file_bytes"] = e.file_bytes;
    x["entropy_file_ratio"] = static_cast<double>(e.float_file_bytes) / static_cast<double>(e.file_bytes);
    // The packed model is the deployable form: it must give the checkpoint's accuracy exactly.
    const double from_packed = evaluate_file(packed), from_checkpoint = evaluate_file(final_weights);
    INQ_CHECK(from_packed == from_checkpoint, "Given '{}' and its packed form '{}', expected the same accuracy, but "
              "got {} and {}", final_weights, packed, from_checkpoint, from_packed);
    x["acc1_packed"] = from_packed;
    add_row(x);
  }
};

std::string cell(const json& v, const char* format) {
  return v.is_null() ? std::string("n/a") : fmt::format(fmt::runtime(format), v.get<double>());
}

std::string markdown(const json& rows, const std::string& arch) {
  std::string md = fmt::format(
      "# Pruning and INQ on Fashion-MNIST, {} (docs/INQ_SPEC.md section 6)\n\n"
      "Sparsity: pruned fraction of the pruned (conv and linear) weights. Ratio: float32 bytes of the quantized "
      "tensors over the bytes the packed file stores them in. File ratio: the whole float32 weights file over the whole "
      "packed file (biases, metadata and checksum included). n/a: float weights.\n\n"
      "| method | target | sparsity | bits | top-1 (%) | change vs FP32 (points) | packed bytes | ratio | ratio, "
      "entropy coded | file ratio | file ratio, entropy coded |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
      arch);
  for (const auto& r : rows)
    md += fmt::format("| {} | {} | {:.2f}% | {} | {:.2f} | {:+.2f} | {} | {} | {} | {} | {} |\n", r["method"].get<std::string>(),
                      r["target_sparsity"].get<double>() > 0 ? fmt::format("{:g}", r["target_sparsity"].get<double>())
                                                             : std::string("-"),
                      100.0 * r["sparsity"].get<double>(), r["bits"].get<int>() == 32 ? "32 (float)" :
                      std::to_string(r["bits"].get<int>()), 100.0 * r["acc1"].get<double>(),
                      100.0 * (r["acc1"].get<double>() - r["fp32_acc1"].get<double>()),
                      r["packed_bytes"].is_null() ? std::string("n/a") : std::to_string(r["packed_bytes"].get<int64_t>()),
                      cell(r["ratio"], "{:.1f}x"), cell(r["entropy_ratio"], "{:.1f}x"),
                      cell(r["file_ratio"], "{:.1f}x"), cell(r["entropy_file_ratio"], "{:.1f}x"));
  return md;
}

void Experiment::write_summary() const {
  const json results = {{"protocol", "docs/INQ_SPEC.md section 6"}, {"arch", o.arch}, {"rows", rows}};
  write_file_atomic(out + "/prune_results.json", results.dump(2) + "\n");
  write_file_atomic(out + "/prune_results.md", markdown(rows, o.arch));
}

}  // namespace

std::string run_reproduce_prune(const ReproduceOptions& o) {
  INQ_CHECK(!o.sparsities.empty(), "Given reproduce --prune, expected at least one --sparsities value");
  for (double s : o.sparsities)
    INQ_CHECK(s > 0 && s < 1, "Given --sparsities value {}, expected a fraction in (0, 1)", s);
  for (const std::string& g : o.prune_rows)
    INQ_CHECK(g == "dns-inq5" || g == "inq5" || g == "magnitude" || g == "dns-bits",
              "Given --prune-rows value '{}', expected dns-inq5, inq5, magnitude or dns-bits", g);
  INQ_CHECK(o.seeds.size() == 1, "Given reproduce --prune with {} seeds, expected one (--seeds N)", o.seeds.size());
  const std::string out = o.out.empty() ? "runs/reproduce-prune-" + o.arch : o.out;
  fs::create_directories(out);
  set_num_threads(o.threads);

  Experiment x(o, out);
  TrainConfig& base = x.base;
  base.run.arch = o.arch;
  base.run.seed = o.seeds[0];
  base.data.data_dir = o.data_dir;
  base.data.train_limit = o.train_limit;
  base.data.test_limit = o.test_limit;
  base.data.workers = o.workers;
  base.run.threads = o.threads;
  const TrainRecipe recipe = recipe_for(o.arch);
  base.data.batch_size = recipe.batch_size;
  base.data.augment = recipe.augment;
  base.run.epochs = o.fp32_epochs > 0 ? o.fp32_epochs : recipe.epochs;
  ChannelStats stats;
  x.test_set = load_dataset(base.data, /*train=*/false, &stats);
  x.test_loader = std::make_unique<DataLoader>(
      *x.test_set, DataLoaderOptions{.batch_size = 500, .workers = o.workers,
                                     .transforms = {normalize(stats.mean, stats.std)}});

  // FP32 baseline (or the given weights).
  x.fp32 = o.fp32_weights;
  if (x.fp32.empty()) {
    TrainConfig f = base;
    f.optim.lr = recipe.lr;
    f.schedule.warmup_epochs = recipe.warmup_epochs;
    f.run.out = fmt::format("{}/fp32-s{}", out, base.run.seed);
    run_or_continue(f);
    x.fp32 = f.run.out + "/last.safetensors";
  }
  x.fp32_acc1 = x.evaluate_file(x.fp32);
  x.add_row(x.row("fp32", 0, 0, 32, x.fp32_acc1));
  // The DNS + 5-bit INQ curve first, then its baselines, then the other bit-widths: on a slow machine
  // the headline curve is complete earliest (every row is in the table as soon as its run ends).
  std::map<double, std::pair<std::string, double>> dns;  // target -> (final weights, sparsity reached)
  for (double s : o.sparsities) {
    const std::string folder = x.prune("dns", s);
    dns[s] = {folder + "/final.safetensors", x.rows.back()["sparsity"].get<double>()};
  }
  const auto wanted = [&o](const char* group) {
    return std::find(o.prune_rows.begin(), o.prune_rows.end(), group) != o.prune_rows.end();
  };
  if (wanted("dns-inq5"))
    for (double s : o.sparsities) x.quantize("dns", dns[s].first, s, dns[s].second, 5);
  if (wanted("inq5")) x.quantize("fp32", x.fp32, 0, 0, 5);
  if (wanted("magnitude"))
    for (double s : o.sparsities) {
      const std::string folder = x.prune("magnitude", s);
      x.quantize("magnitude", folder + "/final.safetensors", s, x.rows.back()["sparsity"].get<double>(), 5);
    }
  if (wanted("dns-bits"))
    for (int b : o.prune_bits)
      for (double s : o.sparsities) x.quantize("dns", dns[s].first, s, dns[s].second, b);
  const std::string md_path = out + "/prune_results.md";
  if (o.plots) run_plot_script("plot_prune.py", out, "figure");
  return md_path;
}

}  // namespace inq
