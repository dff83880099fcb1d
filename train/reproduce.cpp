#include "train/reproduce.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "train/checkpoint.h"
#include "data/datasets.h"
#include "train/inq_files.h"
#include "train/run_setup.h"
#include "train/trainer.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/threading.h"
#include "inq/inq_state.h"
#include "inq/partition.h"
#include "models/registry.h"

namespace inq {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool finished(const TrainConfig& config) {
  const std::string path = config.run.out + "/results.json";
  if (!file_exists(path)) return false;
  const json r = json::parse(read_file(path));
  // An INQ run finished before BatchNorm re-estimation existed (or with another --bn-batches) is
  // resumed from its last checkpoint, which only redoes that.
  if (r.contains("inq"))
    return r["inq"]["finished"].get<bool>() && r["inq"].value("bn_batches", int64_t{-1}) == config.inq.bn_batches;
  // A pruning run writes results.json before its first epoch: it is done once final.safetensors is.
  if (r.contains("prune") && !file_exists(config.run.out + "/final.safetensors")) return false;
  return r["epochs_done"].get<int64_t>() == r["epochs"].get<int64_t>();
}

}  // namespace

json run_or_continue(TrainConfig config) {
  if (!finished(config)) {
    const std::string last = config.run.out + "/last.safetensors";
    if (file_exists(last)) {
      config.run.resume = last;
    } else {
      config.run.force = true;  // a folder without a checkpoint holds nothing worth keeping
    }
    fmt::print(stderr, "=> reproduce: {} {}\n", config.run.resume.empty() ? "running" : "resuming", config.run.out);
    Trainer trainer(config);
    trainer.fit();
  } else {
    fmt::print(stderr, "=> reproduce: {} already finished\n", config.run.out);
  }
  return json::parse(read_file(config.run.out + "/results.json"));
}

namespace {

std::string fp32_model_path(const std::string& dir) { return dir + "/last.safetensors"; }

// One layer's weights as a JSON array (for the histogram figure).
json tensor_values(const std::string& weights, const std::string& arch, const std::string& name) {
  auto model = create_model(arch, {.num_classes = 10, .in_channels = 1});
  load_model_weights(read_safetensors(weights), *model);
  for (const auto& p : model->named_parameters())
    if (p.name == name) return p.tensor.to_vector();
  throw Error(fmt::format("Given layer '{}', expected a parameter of {}", name, arch));
}

std::string histogram_layer(const std::string& arch) {
  return arch == "lenet5" ? "features.3.weight" : "layer2.0.conv1.weight";
}

double mean(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double spread(const std::vector<double>& v) {  // sample standard deviation, 0 for one value
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0.0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

// The paper's table layout: one line per (bits, strategy), mean over seeds and the change against
// the FP32 baseline, in percentage points.
std::string results_markdown(const json& rows, const std::string& arch) {
  std::map<std::pair<int, std::string>, std::vector<double>> acc, delta;
  std::vector<std::pair<int, std::string>> order;
  for (const auto& r : rows) {
    const auto key = std::make_pair(r["bits"].get<int>(), r["strategy"].get<std::string>());
    if (!acc.count(key)) order.push_back(key);
    acc[key].push_back(100.0 * r["acc1"].get<double>());
    delta[key].push_back(100.0 * (r["acc1"].get<double>() - r["fp32_acc1"].get<double>()));
  }
  std::string md = fmt::format(
      "# INQ on Fashion-MNIST, {} (docs/REPRODUCTION.md section 1)\n\n"
      "| model | bit-width | method | top-1 accuracy (%) | change vs FP32 (points) | seeds |\n"
      "|---|---|---|---|---|---|\n",
      arch);
  for (const auto& key : order) {
    const auto& a = acc[key];
    const auto& d = delta[key];
    const std::string method = key.second == "fp32"        ? "FP32 baseline"
                               : key.second == "oneshot"   ? "one-shot, no re-training"
                               : key.second == "magnitude" ? "INQ, magnitude partition"
                                                           : "INQ, random partition";
    const std::string spread_text = a.size() > 1 ? fmt::format(" ± {:.2f}", spread(a)) : "";
    md += fmt::format("| {} | {} | {} | {:.2f}{} | {:+.2f} | {} |\n", arch,
                      key.first == 32 ? std::string("32 (float)") : std::to_string(key.first), method, mean(a),
                      spread_text, mean(d), a.size());
  }
  md += "\nAccuracy after each INQ step (after quantizing -> after re-training; at portion 1, where nothing is "
        "re-trained, after re-estimating the BatchNorm statistics), first seed:\n\n";
  for (const auto& r : rows) {
    if (r["steps"].empty() || r["seed"] != rows[0]["seed"]) continue;
    md += fmt::format("- {}-bit {}:", r["bits"].get<int>(), r["strategy"].get<std::string>());
    for (const auto& s : r["steps"]) {
      const double q = 100.0 * s["acc1_quantized"].get<double>();
      const double t = s["acc1_retrained"].is_null() ? q : 100.0 * s["acc1_retrained"].get<double>();
      md += fmt::format(" {:g}: {:.2f} -> {:.2f};", s["portion"].get<double>(), q, t);
    }
    md += "\n";
  }
  return md;
}

}  // namespace

std::string one_shot_summary(int bits, uint64_t seed, double acc1_quantized, double acc1, int64_t bn_batches_used) {
  std::string line = fmt::format("one-shot {}-bit (seed {}): Acc@1 {:.3f}", bits, seed, 100.0 * acc1);
  // A model without BatchNorm (LeNet-5) has nothing to re-estimate: its accuracy is the quantized one.
  if (bn_batches_used > 0)
    line += fmt::format(" ({:.3f} before re-estimating BatchNorm over {} batches)", 100.0 * acc1_quantized,
                        bn_batches_used);
  return line;
}

std::string run_reproduce(const ReproduceOptions& o) {
  if (o.prune) return run_reproduce_prune(o);
  INQ_CHECK(!o.seeds.empty() && !o.bits.empty(), "Given reproduce, expected at least one seed and one bit-width");
  INQ_CHECK(o.fp32_weights.empty() || o.seeds.size() == 1,
            "Given --fp32-weights, expected a single --seeds value (one baseline), but got {}", o.seeds.size());
  const std::string out = o.out.empty() ? "runs/reproduce-" + o.arch : o.out;
  fs::create_directories(out);
  set_num_threads(o.threads);

  TrainConfig base;
  base.run.arch = o.arch;
  base.data.data_dir = o.data_dir;
  base.data.train_limit = o.train_limit;
  base.data.test_limit = o.test_limit;
  base.data.workers = o.workers;
  base.run.threads = o.threads;
  const TrainRecipe recipe = recipe_for(o.arch);
  base.data.batch_size = recipe.batch_size;
  base.data.augment = recipe.augment;

  // The test set, normalized as in training, for the evaluations made here (given FP32 weights, one-shot).
  ChannelStats stats;
  const auto test_set = load_dataset(base.data, /*train=*/false, &stats);
  DataLoader test_loader(*test_set, {.batch_size = 500, .workers = o.workers,
                                     .transforms = {normalize(stats.mean, stats.std)}});
  // The training data as the INQ runs see it, for one-shot's BatchNorm re-estimation.
  ChannelStats train_stats;
  const auto train_set = load_dataset(base.data, /*train=*/true, &train_stats);
  const TransformPipeline train_transforms = dataset_transforms(base.data, /*train=*/true, train_stats);

  json rows = json::array();
  json histogram;
  for (uint64_t seed : o.seeds) {
    // 1. FP32 baseline.
    std::string fp32 = o.fp32_weights;
    double fp32_acc1 = 0.0;
    TrainConfig f = base;
    f.run.seed = seed;
    f.run.epochs = o.fp32_epochs > 0 ? o.fp32_epochs : recipe.epochs;
    f.optim.lr = recipe.lr;
    f.schedule.warmup_epochs = recipe.warmup_epochs;
    if (fp32.empty()) {
      f.run.out = fmt::format("{}/fp32-s{}", out, seed);
      fp32_acc1 = run_or_continue(f)["acc1"].get<double>();
      fp32 = fp32_model_path(f.run.out);
    } else {
      auto model = create_model(o.arch, {.num_classes = 10, .in_channels = 1});
      load_model_weights(read_safetensors(fp32), *model);
      fp32_acc1 = evaluate(*model, test_loader).acc1;
    }
    rows.push_back({{"model", o.arch}, {"bits", 32}, {"strategy", "fp32"}, {"seed", seed}, {"acc1", fp32_acc1},
                    {"fp32_acc1", fp32_acc1}, {"steps", json::array()}});

    // 2, 3, 5. INQ runs: the bit-width sweep (magnitude) and the random partition at 5 bits.
    std::vector<std::pair<int, std::string>> runs;
    for (int b : o.bits) runs.emplace_back(b, "magnitude");
    if (o.random_partition) runs.emplace_back(5, "random");
    for (const auto& [b, strategy] : runs) {
      TrainConfig q = base;
      q.run.seed = seed;
      q.run.weights = fp32;
      q.inq.bits = b;
      q.inq.strategy = strategy;
      q.inq.epochs_per_step = o.epochs_per_step;
      q.inq.bn_batches = o.bn_batches;
      q.optim.lr = 0.01;  // docs/REPRODUCTION.md section 1: lr 0.01 with cosine decay over each step's re-training
      q.run.out = fmt::format("{}/inq{}-{}-s{}", out, b, strategy, seed);
      const json r = run_or_continue(q);
      rows.push_back({{"model", o.arch}, {"bits", b}, {"strategy", strategy}, {"seed", seed}, {"acc1", r["acc1"]},
                      {"fp32_acc1", fp32_acc1}, {"steps", r["inq"]["steps"]}});
      INQ_CHECK(verify_checkpoint(q.run.out + "/final.safetensors", stderr) == 0,
                "Given the INQ run in '{}', expected every quantized weight to verify", q.run.out);
      if (histogram.is_null() && b == 5 && strategy == "magnitude") {
        const std::string layer = histogram_layer(o.arch);
        histogram = {{"layer", layer},
                     {"bits", b},
                     {"fp32", tensor_values(fp32, o.arch, layer)},
                     {"inq", tensor_values(q.run.out + "/final.safetensors", o.arch, layer)}};
      }
    }

    // 4. One-shot: every weight quantized at once from the FP32 model, no re-training; like the
    // last INQ step, followed by the BatchNorm re-estimation, so the two differ only in INQ's
    // incremental re-training. Its one step records the accuracy before and after that.
    DataLoader train_loader(*train_set, {.batch_size = base.data.batch_size, .shuffle = true, .seed = seed,
                                         .workers = o.workers, .transforms = train_transforms});
    for (int b : o.bits) {
      auto model = create_model(o.arch, {.num_classes = 10, .in_channels = 1});
      load_model_weights(read_safetensors(fp32), *model);
      quantize_one_shot(model->named_parameters(), b);
      const double quantized = evaluate(*model, test_loader).acc1;
      const int64_t used = reestimate_batchnorm(*model, train_loader, /*epoch=*/0, o.bn_batches);
      const double acc = used > 0 ? evaluate(*model, test_loader).acc1 : quantized;
      fmt::print(stderr, " * {}\n", one_shot_summary(b, seed, quantized, acc, used));
      const json step = {{"step", 1}, {"portion", 1.0}, {"acc1_quantized", quantized}, {"acc1_retrained", acc},
                         {"bn_batches", o.bn_batches}};
      rows.push_back({{"model", o.arch}, {"bits", b}, {"strategy", "oneshot"}, {"seed", seed}, {"acc1", acc},
                      {"fp32_acc1", fp32_acc1}, {"steps", json::array({step})}});
    }
  }

  const json results = {{"protocol", "docs/REPRODUCTION.md section 1"}, {"arch", o.arch}, {"rows", rows}};
  write_file_atomic(out + "/results.json", results.dump(2) + "\n");
  if (!histogram.is_null()) write_file_atomic(out + "/histogram.json", histogram.dump() + "\n");
  const std::string md_path = out + "/results.md";
  write_file_atomic(md_path, results_markdown(rows, o.arch));
  if (o.plots) run_plot_script("plot_results.py", out, "figures");
  return md_path;
}

void run_plot_script(const std::string& script, const std::string& out, const std::string& what) {
  // Debian's interpreter, which has python3-matplotlib, whatever python3 is first on PATH.
  const std::string cmd = fmt::format("/usr/bin/python3 '{}/tools/{}' '{}'", INQ_SOURCE_ROOT, script, out);
  if (std::system(cmd.c_str()) != 0)
    fmt::print(stderr, "=> reproduce: {} skipped ({} failed; it needs python3-matplotlib)\n", what, cmd);
}

}  // namespace inq
