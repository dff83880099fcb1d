// Pruning runs end to end on a slice of Fashion-MNIST (train/prune_phases.h, `inq prune`, and INQ
// started from a pruned checkpoint): an interrupted DNS run resumes bit for bit; magnitude pruning
// leaves exactly its target of zeros in final.safetensors; INQ from a pruned checkpoint keeps every
// pruned weight 0 and frozen and counts its portions over the survivors; `inq verify` checks the
// pruned positions; every bad flag of `inq prune` is named.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "app_testing.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"
#include "framework/threading.h"
#include "inq/inq_sgd.h"
#include "inq/partition.h"
#include "inq/prune_sgd.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

using test::have_fashion_mnist;
using test::run_cli;
using test::values_of;

std::string temp_path(const std::string& name) { return test::temp_path("prune_" + name); }

TrainConfig slice(const std::string& out) {
  TrainConfig c = test::small_lenet5_config(out, /*train_limit=*/384);
  c.run.seed = 3;
  return c;
}

const std::string& fp32_weights() {
  static const std::string path = test::train_fp32_for_inq(slice(temp_path("fp32")));
  return path;
}

TrainConfig prune_config(const std::string& out, const std::string& method, double sparsity) {
  TrainConfig c = slice(out);
  c.run.weights = fp32_weights();
  c.run.epochs = 2;
  c.optim.lr = 0.01;
  c.prune.method = method;
  c.prune.sparsity = sparsity;
  c.prune.gamma = 0.05;  // frequent DNS updates on a short run, so splicing and the draws matter
  return c;
}

// The optimizer records of a checkpoint (masks, DNS's dense weights, momentum), by name.
std::map<std::string, std::vector<float>> optimizer_records(const std::string& path) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : optimizer_state_tensors(read_safetensors(path))) out[name] = t.to_vector();
  return out;
}

int64_t zeros(const std::vector<float>& v) {
  return std::count(v.begin(), v.end(), 0.0f);
}

}  // namespace

TEST(PruneRun, InterruptedDnsRunResumesBitForBit) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig straight = prune_config(temp_path("dns_straight"), "dns", 0.6);
  straight.prune.layer_sparsity = {"classifier.*=0.9"};  // saved in the state and config, checked on resume
  Trainer t1(straight);
  t1.fit();
  TrainConfig first = prune_config(temp_path("dns_interrupted"), "dns", 0.6);
  first.prune.layer_sparsity = straight.prune.layer_sparsity;
  {
    Trainer t2(first);
    t2.fit(/*stop_after_epoch=*/1);
  }
  TrainConfig second = first;
  second.run.resume = first.run.out + "/last.safetensors";
  Trainer t3(second);
  EXPECT_EQ(t3.epoch(), 1);
  t3.fit();
  EXPECT_EQ(values_of(t3.model()), values_of(t1.model()));
  const auto a = optimizer_records(straight.run.out + "/final.safetensors");
  const auto b = optimizer_records(first.run.out + "/final.safetensors");
  EXPECT_EQ(a, b);
  EXPECT_TRUE(a.count("features.0.weight.dns_weight"));
  EXPECT_TRUE(a.count("features.0.weight.prune_mask"));
  // The masks did move after the first one (DNS is dynamic), and the model is pruned where they say.
  const auto& prune = dynamic_cast<const PruneSgd&>(t1.optimizer());
  for (const auto& p : prune.pruned_params()) {
    const auto mask = a.at(p.name + ".prune_mask");
    for (size_t i = 0; i < mask.size(); ++i)
      if (mask[i] == 0) {
        ASSERT_EQ(p.tensor.data()[i], 0.0f) << p.name << "[" << i << "]";
      }
  }
  const nlohmann::json results = nlohmann::json::parse(read_file(straight.run.out + "/results.json"));
  EXPECT_EQ(results.at("prune").at("method"), "dns");
  EXPECT_GT(results.at("prune").at("sparsity").get<double>(), 0.3);
  EXPECT_EQ(results.at("prune").at("tensors").size(), 5u);
  fs::remove_all(straight.run.out);
  fs::remove_all(first.run.out);
}

TEST(PruneRun, MagnitudeLeavesExactlyItsTargetOfZerosAndQuantizeKeepsThemFrozen) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);
  TrainConfig c = prune_config(temp_path("magnitude"), "magnitude", 0.7);
  c.run.epochs = 1;
  { Trainer t(c); t.fit(); }
  const std::string pruned = c.run.out + "/final.safetensors";
  const SafetensorsFile file = read_safetensors(pruned);
  std::map<std::string, int64_t> pruned_count;
  for (const char* name : {"features.0.weight", "features.3.weight", "classifier.0.weight", "classifier.2.weight",
                           "classifier.4.weight"}) {
    const auto w = file.find(std::string("model.") + name)->f32.to_vector();
    const int64_t n = static_cast<int64_t>(w.size());
    EXPECT_EQ(zeros(w), frozen_target(0.7, n)) << name;  // re-training never moved a pruned weight
    pruned_count[name] = frozen_target(0.7, n);
  }
  EXPECT_EQ(zeros(file.find("model.features.0.bias")->f32.to_vector()), 0);  // biases are not pruned

  // INQ from the pruned checkpoint, stopped after step 1 of {0.5, 1}: each tensor has its pruned
  // weights plus half of the survivors frozen, and the pruned ones are still 0.
  TrainConfig q = slice(temp_path("magnitude_inq"));
  q.run.weights = pruned;
  q.inq.bits = 5;
  q.inq.portions = {0.5, 1.0};
  q.inq.epochs_per_step = 1;
  q.optim.lr = 0.01;
  {
    Trainer t(q);
    t.fit(/*stop_after_epoch=*/1);
    const auto& inq = dynamic_cast<const InqSgd&>(t.optimizer());
    for (const auto& p : inq.quantized()) {
      const InqParamState* r = inq.inq_record(p.name);
      ASSERT_NE(r, nullptr);
      const int64_t n = p.tensor.numel(), k = pruned_count.at(p.name);
      EXPECT_EQ(r->pruned, k) << p.name;
      EXPECT_EQ(r->frozen, k + (n - k) / 2) << p.name;  // floor(0.5 * survivors)
      const auto mask = inq.inq_state().pruned.at(p.name).to_vector();
      for (int64_t i = 0; i < n; ++i)
        if (mask[static_cast<size_t>(i)] == 0) {
          ASSERT_EQ(r->mask.data()[i], 0.0f) << p.name << "[" << i << "]";
          ASSERT_EQ(p.tensor.data()[i], 0.0f) << p.name << "[" << i << "]";
        }
    }
  }
  // Resumed to the end: the last step freezes every survivor; verify checks the pruned positions.
  TrainConfig rest = q;
  rest.run.resume = q.run.out + "/last.safetensors";
  { Trainer t(rest); t.fit(); }
  std::string out;
  EXPECT_EQ(run_cli("verify " + q.run.out + "/final.safetensors", &out), 0) << out;
  EXPECT_NE(out.find("pruned positions OK"), std::string::npos) << out;
  const auto weights = read_safetensors(q.run.out + "/final.safetensors");
  EXPECT_EQ(zeros(weights.find("model.classifier.0.weight")->f32.to_vector()) >= pruned_count.at("classifier.0.weight"),
            true);
  fs::remove_all(c.run.out);
  fs::remove_all(q.run.out);
}

TEST(PruneCli, PrunesWritesItsReportAndVerifyCatchesAPrunedWeightThatIsNotZero) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string run = temp_path("cli");
  const std::string slice_flags = " --train-limit 256 --test-limit 100 -j 1 --threads 1 --eval-batch-size 100";
  std::string out;
  ASSERT_EQ(run_cli("prune --arch lenet5 --weights " + fp32_weights() + " --method magnitude --sparsity 0.5 "
                    "--scope global --epochs 1" + slice_flags + " --out " + run, &out), 0) << out;
  EXPECT_NE(out.find("classifier.0.weight"), std::string::npos) << out;  // the per-layer table
  EXPECT_NE(out.find("total"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(run + "/prune_report.txt"));
  const nlohmann::json results = nlohmann::json::parse(read_file(run + "/results.json"));
  EXPECT_EQ(results.at("prune").at("scope"), "global");
  EXPECT_NEAR(results.at("prune").at("sparsity").get<double>(), 0.5, 1e-4);
  EXPECT_EQ(run_cli("verify " + run + "/final.safetensors", &out), 0) << out;
  EXPECT_NE(out.find("pruned positions OK"), std::string::npos) << out;
  // A pruned weight made non-zero is caught, named, with exit status 3.
  SafetensorsFile file = read_safetensors(run + "/final.safetensors");
  const auto mask = file.find("optimizer.classifier.0.weight.prune_mask")->f32.to_vector();
  const auto at = static_cast<int64_t>(std::find(mask.begin(), mask.end(), 0.0f) - mask.begin());
  for (auto& [name, t] : file.tensors)
    if (name == "model.classifier.0.weight") t.f32.data()[at] = 0.25f;
  const std::string bad = run + "/planted.safetensors";
  write_safetensors(bad, file.tensors, file.metadata);
  EXPECT_EQ(run_cli("verify " + bad, &out), 3) << out;
  EXPECT_NE(out.find("classifier.0.weight[" + std::to_string(at) + "] is pruned but not 0"), std::string::npos) << out;
  // A pruning checkpoint is not an INQ run to continue: quantize starts from it with --weights.
  EXPECT_NE(run_cli("quantize --resume " + run + "/last.safetensors", &out), 0);
  EXPECT_NE(out.find("but it is a pruning run; start INQ from it with --weights"), std::string::npos) << out;
  // Resuming the finished run with a pruning flag changed is refused, naming the flag.
  EXPECT_NE(run_cli("prune --resume " + run + "/last.safetensors --sparsity 0.6", &out), 0);
  EXPECT_NE(out.find("--sparsity"), std::string::npos) << out;
  fs::remove_all(run);
}

TEST(PruneCli, EveryBadFlagIsNamed) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string w = " --weights " + fp32_weights();
  const std::string run = " --out " + temp_path("bad_flags");
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"prune --arch lenet5" + w + run, "--method"},
      {"prune" + w + " --method dns --rate 0" + run, "--arch"},
      {"prune --arch lenet5 --method dns --rate 0" + run, "--weights"},
      {"prune --arch lenet5" + w + " --method magnitude" + run, "--sparsity"},
      {"prune --arch lenet5" + w + " --method magnitude --sparsity 0.5 --rate 1" + run, "--rate"},
      {"prune --arch lenet5" + w + " --method dns --sparsity 0.5 --rate 1" + run, "--rate"},
      {"prune --arch lenet5" + w + " --method dns" + run, "--sparsity or --rate"},
      {"prune --arch lenet5" + w + " --method magnitude --sparsity 0.5 --dns-gamma 1" + run, "--dns-gamma"},
      {"prune --arch lenet5" + w + " --method dns --sparsity 1.5" + run, "--sparsity"},
      {"prune --arch lenet5" + w + " --method surgery --sparsity 0.5" + run, "--method"},
      {"prune --arch lenet5" + w + " --method dns --sparsity 0.5 --scope net" + run, "--scope"},
      {"prune --arch lenet5" + w + " --method dns --sparsity 0.5 --exclude nothing.matches" + run, "nothing.matches"},
      {"prune --arch lenet5" + w + " --method dns --rate 1 --layer-sparsity fc.weight=0.9" + run, "--layer-sparsity"},
      {"prune --arch lenet5" + w + " --method dns --sparsity 0.5 --layer-sparsity fc.weight=2" + run,
       "--layer-sparsity 'fc.weight=2'"},
      {"prune --arch lenet5" + w + " --method dns --sparsity 0.5 --layer-sparsity no.such=0.9" + run, "no.such"},
      {"prune --arch lenet5 --weights /no/such/file.safetensors --method dns --rate 0" + run, "--weights"},
  };
  for (const auto& c : cases) {
    std::string out;
    EXPECT_NE(run_cli(c.args, &out), 0) << c.args;
    EXPECT_NE(out.find(c.needle), std::string::npos) << c.args << "\n" << out;
  }
  EXPECT_FALSE(fs::exists(temp_path("bad_flags") + "/last.safetensors"));
}

// `inq reproduce --prune` on a tiny slice: every row is there, every quantized row was packed and
// measured, and the pruned rows are as sparse as their targets say (magnitude exactly).
TEST(ReproducePrune, WritesEveryRowWithSizesMeasuredOnPackedFiles) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const std::string out = temp_path("reproduce");
  std::string log;
  ASSERT_EQ(run_cli("reproduce --prune --arch lenet5 --train-limit 256 --test-limit 100 --fp32-epochs 1 "
                    "--prune-epochs 1 --epochs-per-step 1 --sparsities 0.8 --prune-bits 3 --threads 1 -j 1 "
                    "--no-plots --out " + out, &log), 0) << log;
  const nlohmann::json rows = nlohmann::json::parse(read_file(out + "/prune_results.json")).at("rows");
  std::vector<std::string> methods;
  for (const auto& r : rows) methods.push_back(r.at("method").get<std::string>() + std::to_string(r.at("bits").get<int>()));
  // The DNS curve first (it is the headline), then its baselines, then the other bit-widths.
  EXPECT_EQ(methods, (std::vector<std::string>{"fp3232", "dns32", "dns+inq5", "inq5", "magnitude32", "magnitude+inq5",
                                               "dns+inq3"}));
  for (const auto& r : rows) {
    const bool quantized = r.at("bits").get<int>() != 32;
    EXPECT_EQ(r.at("ratio").is_null(), !quantized) << r.dump();
    if (quantized) {
      EXPECT_GT(r.at("ratio").get<double>(), 1.0) << r.dump();
      // The command itself refuses a packed file that evaluates differently from its checkpoint.
      EXPECT_NEAR(r.at("acc1_packed").get<double>(), r.at("acc1").get<double>(), 0.02) << r.dump();
    }
  }
  EXPECT_NEAR(rows[4].at("sparsity").get<double>(), 0.8, 1e-3);  // magnitude: floor(0.8 n) per tensor
  EXPECT_GT(rows[1].at("sparsity").get<double>(), 0.5);           // DNS moves from its first mask
  EXPECT_NE(read_file(out + "/prune_results.md").find("| dns+inq | 0.8 |"), std::string::npos);
  // --prune-rows: only the groups asked for (FP32 and DNS always), from the FP32 weights above.
  const std::string some = temp_path("reproduce_rows");
  ASSERT_EQ(run_cli("reproduce --prune --arch lenet5 --train-limit 256 --test-limit 100 --fp32-weights " + out +
                    "/fp32-s1/last.safetensors --prune-epochs 1 --epochs-per-step 1 --sparsities 0.8 --prune-bits 3 "
                    "--prune-rows dns-bits --threads 1 -j 1 --no-plots --out " + some, &log), 0) << log;
  std::vector<std::string> some_methods;
  const nlohmann::json some_rows = nlohmann::json::parse(read_file(some + "/prune_results.json")).at("rows");
  for (const auto& r : some_rows)
    some_methods.push_back(r.at("method").get<std::string>() + std::to_string(r.at("bits").get<int>()));
  EXPECT_EQ(some_methods, (std::vector<std::string>{"fp3232", "dns32", "dns+inq3"}));
  std::string bad;
  EXPECT_NE(run_cli("reproduce --prune --prune-rows dns,bogus --out " + some, &bad), 0);
  EXPECT_NE(bad.find("--prune-rows"), std::string::npos) << bad;
  EXPECT_NE(run_cli("reproduce --prune-rows dns-bits --out " + some, &bad), 0);
  EXPECT_NE(bad.find("--prune-rows without --prune"), std::string::npos) << bad;
  fs::remove_all(some);
  fs::remove_all(out);
}
