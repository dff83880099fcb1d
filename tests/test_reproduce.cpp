// `inq reproduce` on a tiny slice: every experiment of docs/REPRODUCTION.md section 1 produces its row
// in results.json with the documented fields, results.md is written, and a second invocation reads
// the finished runs back instead of training them again.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "train/reproduce.h"
#include "framework/fileio.h"

using namespace inq;
namespace fs = std::filesystem;

TEST(Reproduce, WritesEveryRowAndContinuesInsteadOfRetraining) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  ReproduceOptions o;
  o.arch = "lenet5";
  o.out = (fs::temp_directory_path() / ("inq_test_reproduce_" + std::to_string(::getpid()))).string();
  o.bits = {3};
  o.fp32_epochs = 1;
  o.epochs_per_step = 1;
  o.train_limit = 256;
  o.test_limit = 100;
  o.threads = 1;
  o.workers = 1;
  o.plots = false;
  const std::string md = run_reproduce(o);
  const auto results = nlohmann::json::parse(read_file(o.out + "/results.json"));
  const auto& rows = results["rows"];
  ASSERT_EQ(rows.size(), 4u);  // fp32, 3-bit magnitude, 5-bit random, 3-bit one-shot
  const std::vector<std::pair<int, std::string>> expected = {{32, "fp32"}, {3, "magnitude"}, {5, "random"}, {3, "oneshot"}};
  for (size_t i = 0; i < rows.size(); ++i) {
    for (const char* key : {"model", "bits", "strategy", "seed", "acc1", "fp32_acc1", "steps"})
      EXPECT_TRUE(rows[i].contains(key)) << i << " lacks " << key;
    EXPECT_EQ(rows[i]["bits"].get<int>(), expected[i].first);
    EXPECT_EQ(rows[i]["strategy"].get<std::string>(), expected[i].second);
    EXPECT_GE(rows[i]["acc1"].get<double>(), 0.0);
    EXPECT_LE(rows[i]["acc1"].get<double>(), 1.0);
  }
  EXPECT_EQ(rows[1]["steps"].size(), 8u);  // the 3-bit schedule has 8 portions
  // One-shot is one step of portion 1; lenet5 has no BatchNorm to re-estimate, so its accuracy is
  // the quantized one.
  ASSERT_EQ(rows[3]["steps"].size(), 1u);
  EXPECT_EQ(rows[3]["steps"][0]["acc1_retrained"], rows[3]["acc1"]);
  EXPECT_EQ(rows[3]["steps"][0]["acc1_quantized"], rows[3]["acc1"]);
  EXPECT_EQ(rows[1]["steps"].back()["bn_batches"], o.bn_batches);
  for (const char* key : {"portion", "acc1_quantized", "acc1_retrained"}) EXPECT_TRUE(rows[1]["steps"][0].contains(key));
  const std::string table = read_file(md);
  EXPECT_NE(table.find("| lenet5 | 3 | INQ, magnitude partition |"), std::string::npos) << table;
  EXPECT_FALSE(file_exists(o.out + "/histogram.json"));  // drawn from a 5-bit magnitude run, not run here

  // Second call: finished runs are read back, not re-trained (their checkpoints stay untouched).
  const auto stamp = fs::last_write_time(o.out + "/inq3-magnitude-s1/final.safetensors");
  run_reproduce(o);
  EXPECT_EQ(fs::last_write_time(o.out + "/inq3-magnitude-s1/final.safetensors"), stamp);
  EXPECT_EQ(nlohmann::json::parse(read_file(o.out + "/results.json"))["rows"], rows);

  // Starting from given FP32 weights: no FP32 run folder; the baseline row is their evaluation, and
  // the 5-bit magnitude run yields the histogram of one layer before and after INQ.
  ReproduceOptions g = o;
  g.out = o.out + "-given";
  g.fp32_weights = o.out + "/fp32-s1/last.safetensors";
  g.bits = {5};
  g.random_partition = false;
  run_reproduce(g);
  const auto given = nlohmann::json::parse(read_file(g.out + "/results.json"))["rows"];
  ASSERT_EQ(given.size(), 3u);  // fp32, 5-bit magnitude, 5-bit one-shot
  EXPECT_EQ(given[0]["acc1"], rows[0]["acc1"]);  // same weights, same test slice
  EXPECT_FALSE(fs::exists(g.out + "/fp32-s1"));
  const auto histogram = nlohmann::json::parse(read_file(g.out + "/histogram.json"));
  EXPECT_EQ(histogram["layer"], "features.3.weight");
  EXPECT_EQ(histogram["fp32"].size(), 2400u);
  EXPECT_EQ(histogram["inq"].size(), 2400u);
  fs::remove_all(o.out);
  fs::remove_all(g.out);
}
