// `inq quantize` / `inq verify` end to end on a slice of Fashion-MNIST: the schedule runs, every
// weight of the result verifies, a run interrupted mid-schedule resumes bit for bit, and the
// verifier catches a planted bad weight with exit status 3.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app_testing.h"
#include "train/checkpoint.h"
#include "train/inq_files.h"
#include "train/trainer.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"
#include "framework/threading.h"
#include "inq/packed_model.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

using test::have_fashion_mnist;
using test::run_cli;
using test::values_of;

std::string temp_path(const std::string& name) { return test::temp_path("quantize_" + name); }

TrainConfig slice(const std::string& out) {
  TrainConfig c = test::small_lenet5_config(out, /*train_limit=*/384);
  c.run.seed = 5;
  return c;
}

// A small FP32 model to quantize, trained once for the whole file.
const std::string& fp32_weights() {
  static const std::string path = test::train_fp32_for_inq(slice(temp_path("fp32")));
  return path;
}

TrainConfig inq_config(const std::string& out) {
  TrainConfig c = slice(out);
  c.run.weights = fp32_weights();
  c.inq.bits = 4;
  c.inq.portions = {0.3, 0.6, 1.0};
  c.inq.epochs_per_step = 1;
  c.optim.lr = 0.01;
  return c;
}

}  // namespace

TEST(InqQuantize, ScheduleQuantizesEveryWeightAndRecordsEachStep) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig c = inq_config(temp_path("schedule"));
  Trainer t(c);
  t.fit();
  EXPECT_EQ(t.epoch(), 2);  // re-training after steps 1 and 2, none after the last
  for (const auto& p : t.model().named_parameters()) {
    if (p.role != ParamRole::Weight) continue;
    for (float v : p.tensor.to_vector()) {
      if (v == 0.0f) continue;
      int e = 0;
      const float m = std::frexp(std::fabs(v), &e);
      EXPECT_EQ(m, 0.5f) << p.name << " holds " << v << ", not a power of two";
    }
  }
  const std::string csv = read_file(c.run.out + "/summary.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 + 2) << csv;  // header, 3 steps, 2 epochs
  const auto results = nlohmann::json::parse(read_file(c.run.out + "/results.json"));
  ASSERT_EQ(results["inq"]["steps"].size(), 3u);
  EXPECT_TRUE(results["inq"]["finished"].get<bool>());
  EXPECT_TRUE(file_exists(c.run.out + "/inq_report.txt"));
  EXPECT_EQ(verify_checkpoint(c.run.out + "/final.safetensors", stderr), 0);
  fs::remove_all(c.run.out);
}

TEST(InqQuantize, InterruptedScheduleResumesBitForBit) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig straight = inq_config(temp_path("straight"));
  Trainer t1(straight);
  t1.fit();
  TrainConfig first = inq_config(temp_path("interrupted"));
  {
    Trainer t2(first);
    t2.fit(/*stop_after_epoch=*/1);  // interrupted after step 1 and its re-training epoch
  }
  TrainConfig second = first;
  second.run.resume = first.run.out + "/last.safetensors";
  Trainer t3(second);
  EXPECT_EQ(t3.epoch(), 1);
  t3.fit();
  EXPECT_EQ(values_of(t3.model()), values_of(t1.model()));
  fs::remove_all(straight.run.out);
  fs::remove_all(first.run.out);
}

TEST(InqQuantize, VerifyCatchesAPlantedBadWeight) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig c = inq_config(temp_path("planted"));
  { Trainer t(c); t.fit(); }
  const std::string good = c.run.out + "/final.safetensors";
  std::string out;
  EXPECT_EQ(run_cli("verify " + good, &out), 0) << out;
  EXPECT_NE(out.find("OK"), std::string::npos) << out;

  // Plant 0.3 (not a power of two) into one quantized weight and write the file back.
  SafetensorsFile file = read_safetensors(good);
  for (auto& [name, t] : file.tensors) {
    if (name == "model.features.3.weight") t.f32.data()[7] = 0.3f;
  }
  const std::string bad = c.run.out + "/planted.safetensors";
  write_safetensors(bad, file.tensors, file.metadata);
  EXPECT_EQ(run_cli("verify " + bad, &out), 3) << out;
  EXPECT_NE(out.find("features.3.weight[7]"), std::string::npos) << out;
  EXPECT_EQ(verify_checkpoint(bad, stderr), 3);

  // A checkpoint of plain training is not an INQ checkpoint: error, exit status 1.
  EXPECT_EQ(run_cli("verify " + fp32_weights(), &out), 1) << out;
  EXPECT_NE(out.find("INQ"), std::string::npos) << out;
  fs::remove_all(c.run.out);
}

TEST(InqQuantize, CliRejectsContradictoryOrMissingInputs) {
  std::string out;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --out " + temp_path("nowts"), &out), 1) << out;
  EXPECT_NE(out.find("--weights"), std::string::npos) << out;
  EXPECT_EQ(run_cli("quantize --weights /etc/hostname --out " + temp_path("noarch"), &out), 1) << out;
  EXPECT_NE(out.find("without --arch"), std::string::npos) << out;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --bits 1 --weights /etc/hostname", &out), 2) << out;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --preset nosuch --weights /etc/hostname", &out), 2) << out;
  if (!have_fashion_mnist()) return;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --weights " + fp32_weights() +
                        " --preset resnet18 --portions 0.5,1 --out " + temp_path("both"),
                    &out),
            1)
      << out;
  EXPECT_EQ(run_cli("quantize --arch lenet5 --weights " + fp32_weights() + " --portions 0.5,0.4,1 --out " +
                        temp_path("order"),
                    &out),
            1)
      << out;
  EXPECT_NE(out.find("increasing"), std::string::npos) << out;
  fs::remove_all(temp_path("both"));
  fs::remove_all(temp_path("order"));
}

// docs/INQ_SPEC.md section 7: `inq pack` writes the finished model as b-bit codes; unpacking gives it
// back bit for bit, `inq eval` on the packed file gives the checkpoint's accuracy, and `inq verify`
// accepts it. Unfinished, non-INQ and corrupted inputs are refused.
TEST(InqQuantize, PackedModelUnpacksBitForBitAndEvaluatesTheSame) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  set_num_threads(1);  // ctest runs two tests at once on 2 cores
  TrainConfig c = inq_config(temp_path("pack"));
  {
    Trainer t(c);
    t.fit(/*stop_after_epoch=*/1);  // mid-schedule: last.safetensors still has float weights
  }
  const std::string packed = c.run.out + "/model.packed.safetensors";
  std::string out;
  EXPECT_EQ(run_cli("pack " + c.run.out + "/last.safetensors -o " + packed, &out), 1) << out;
  EXPECT_NE(out.find("expected a finished INQ run"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(packed));
  EXPECT_EQ(run_cli("pack " + fp32_weights() + " -o " + packed, &out), 1) << out;
  EXPECT_NE(out.find("INQ"), std::string::npos) << out;

  c.run.resume = c.run.out + "/last.safetensors";
  { Trainer(c).fit(); }
  const std::string final_ckpt = c.run.out + "/final.safetensors";
  ASSERT_EQ(run_cli("pack " + final_ckpt + " -o " + packed, &out), 0) << out;
  EXPECT_NE(out.find("quantized tensors"), std::string::npos) << out;
  // LeNet-5's 4-bit weights take an eighth of their float32 bytes (plus at most one byte per tensor).
  EXPECT_NE(out.find("smaller than float32"), std::string::npos) << out;
  EXPECT_LT(fs::file_size(packed), fs::file_size(final_ckpt) / 6);

  // Unpacked: every model tensor of the checkpoint, bit for bit.
  const std::string unpacked = c.run.out + "/unpacked.safetensors";
  ASSERT_EQ(run_cli("unpack " + packed + " -o " + unpacked, &out), 0) << out;
  const SafetensorsFile ckpt = read_safetensors(final_ckpt);
  const SafetensorsFile plain = read_safetensors(unpacked);
  int64_t model_tensors = 0;
  for (const auto& [name, t] : ckpt.tensors) {
    if (name.rfind("model.", 0) != 0) continue;
    ++model_tensors;
    const StoredTensor* u = plain.find(name.substr(6));
    ASSERT_NE(u, nullptr) << name;
    ASSERT_EQ(u->shape, t.shape) << name;
    EXPECT_EQ(std::memcmp(u->f32.data(), t.f32.data(), t.f32.numel() * sizeof(float)), 0) << name;
  }
  EXPECT_EQ(static_cast<int64_t>(plain.tensors.size()), model_tensors);

  // The packed file loads directly, evaluates the same and verifies.
  std::string eval_ckpt, eval_packed;
  const std::string eval = "eval --arch lenet5 --test-limit 200 --threads 1 --results " + c.run.out + "/eval.csv --weights ";
  ASSERT_EQ(run_cli(eval + final_ckpt, &eval_ckpt), 0) << eval_ckpt;
  ASSERT_EQ(run_cli(eval + packed, &eval_packed), 0) << eval_packed;
  auto acc_line = [](const std::string& s) { return s.substr(s.find(" * Acc@1")); };
  EXPECT_EQ(acc_line(eval_packed), acc_line(eval_ckpt));
  EXPECT_EQ(run_cli("verify " + packed, &out), 0) << out;
  EXPECT_NE(out.find("OK"), std::string::npos) << out;
  EXPECT_NE(out.find("checksum OK"), std::string::npos) << out;

  // The packed file keeps the checkpoint's arch, and unpacking copies it.
  EXPECT_EQ(read_safetensors(packed).metadata.at("arch"), "lenet5");
  EXPECT_EQ(plain.metadata.at("arch"), "lenet5");
  // --arch must be the packed file's own arch (it would otherwise load into whatever model fits).
  EXPECT_EQ(run_cli("eval --arch resnet20 --test-limit 20 --threads 1 --results '' --weights " + packed, &out), 1)
      << out;
  EXPECT_NE(out.find(packed), std::string::npos) << out;
  EXPECT_NE(out.find("'lenet5'"), std::string::npos) << out;
  EXPECT_NE(out.find("'resnet20'"), std::string::npos) << out;

  // Neither pack nor unpack writes over its own input.
  const auto before = read_file(packed);
  EXPECT_EQ(run_cli("unpack " + packed + " -o " + packed, &out), 1) << out;
  EXPECT_NE(out.find("--output"), std::string::npos) << out;
  EXPECT_EQ(read_file(packed), before);
  const auto ckpt_before = read_file(final_ckpt);
  EXPECT_EQ(run_cli("pack " + final_ckpt + " -o " + c.run.out + "/../" + fs::path(c.run.out).filename().string() +
                        "/final.safetensors",
                    &out),
            1)
      << out;
  EXPECT_NE(out.find("--output"), std::string::npos) << out;
  EXPECT_EQ(read_file(final_ckpt), ckpt_before);

  // The tampering below edits code bytes where the dense layout puts them: pack with --dense, which
  // must give the same model (and is never smaller than the default's choice).
  const std::string dense = c.run.out + "/dense.packed.safetensors";
  ASSERT_EQ(run_cli("pack --dense " + final_ckpt + " -o " + dense, &out), 0) << out;
  EXPECT_NE(out.find("0 stored sparsely, 0 Huffman-coded"), std::string::npos) << out;
  EXPECT_GE(fs::file_size(dense), fs::file_size(packed));
  ASSERT_EQ(run_cli(eval + dense, &eval_packed), 0) << eval_packed;
  EXPECT_EQ(acc_line(eval_packed), acc_line(eval_ckpt));

  // A code that means nothing (4 bits: sign + offset 7 > 2^(4-2)) is refused by every reader (with
  // the checksum recomputed, so the decoder itself sees the code).
  SafetensorsFile file = read_safetensors(dense);
  for (auto& [name, t] : file.tensors)
    if (name == "features.0.weight") t.u8[0] = 0xFF;
  file.metadata["checksum"] = packed_model_checksum(file);
  const std::string bad = c.run.out + "/bad.packed.safetensors";
  write_safetensors(bad, file.tensors, file.metadata);
  EXPECT_EQ(run_cli("verify " + bad, &out), 1) << out;
  EXPECT_NE(out.find("code [0] = 15"), std::string::npos) << out;
  EXPECT_EQ(run_cli(eval + bad, &out), 1) << out;
  EXPECT_NE(out.find("features.0.weight"), std::string::npos) << out;

  // One valid code changed into another, and n1 and n2 shifted together (every weight doubled):
  // both decode to valid codebook values, so only the checksum catches them.
  auto expect_checksum_refused = [&](const SafetensorsFile& f, const std::string& name) {
    const std::string path = c.run.out + "/" + name;
    write_safetensors(path, f.tensors, f.metadata);
    std::string log;
    EXPECT_EQ(run_cli("verify " + path, &log), 1) << log;
    EXPECT_NE(log.find(path), std::string::npos) << log;
    EXPECT_NE(log.find("checksum"), std::string::npos) << log;
    EXPECT_EQ(run_cli(eval + path, &log), 1) << log;
    EXPECT_NE(log.find("checksum"), std::string::npos) << log;
  };
  SafetensorsFile changed = read_safetensors(dense);
  for (auto& [name, t] : changed.tensors) {
    if (name != "features.0.weight") continue;
    const uint8_t low = t.u8[0] & 0x0F;
    const uint8_t other = low == 1 ? 2 : 1;  // offsets 1..4 are valid at 4 bits; 0 is zero
    t.u8[0] = static_cast<uint8_t>((t.u8[0] & 0xF0) | other);
  }
  expect_checksum_refused(changed, "changed_code.safetensors");
  SafetensorsFile shifted = read_safetensors(packed);
  nlohmann::json q = nlohmann::json::parse(shifted.metadata.at("quantized"));
  q["features.0.weight"]["n1"] = q["features.0.weight"]["n1"].get<int>() + 1;
  q["features.0.weight"]["n2"] = q["features.0.weight"]["n2"].get<int>() + 1;
  shifted.metadata["quantized"] = q.dump();
  expect_checksum_refused(shifted, "shifted_exponents.safetensors");

  // Version 1 (no checksum, dense, no encoding fields): still loads, with a warning, and verify says
  // there is none.
  SafetensorsFile v1 = read_safetensors(dense);
  v1.metadata.erase("checksum");
  v1.metadata["format_version"] = "1";
  nlohmann::json entries = nlohmann::json::parse(v1.metadata.at("quantized"));
  for (auto& item : entries.items()) {
    item.value().erase("encoding");
    item.value().erase("entropy");
  }
  v1.metadata["quantized"] = entries.dump();
  const std::string old = c.run.out + "/v1.packed.safetensors";
  write_safetensors(old, v1.tensors, v1.metadata);
  EXPECT_EQ(run_cli("verify " + old, &out), 0) << out;
  EXPECT_NE(out.find("no checksum"), std::string::npos) << out;
  EXPECT_NE(out.find("warning"), std::string::npos) << out;
  fs::remove_all(c.run.out);
}
