// Writes the generated seeds of the fuzz corpora: small valid files made by the project's own
// writers, and a few interesting invalid ones. Usage: fuzz_make_corpus <corpus dir>
// (tests/fuzz/corpus). Files are named valid-* (every parser accepts them) or invalid-* (rejected
// with inq::Error); each is checked here through the same function its fuzz target runs, and again
// by tests/test_fuzz_corpus.cpp. Files it does not generate (regression inputs) are left alone.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/atomic_file.h"
#include "framework/random.h"
#include "tests/fuzz/fuzz_inputs.h"
#include "train/inq_files.h"

namespace fs = std::filesystem;
using namespace inq;
using Bytes = std::vector<uint8_t>;

namespace {

using Check = std::function<void(std::span<const uint8_t>)>;

// Writes one seed after checking that `check` accepts it (valid-*) or rejects it with inq::Error.
void write_seed(const fs::path& dir, const std::string& name, const Bytes& bytes, const Check& check) {
  const bool valid = name.rfind("valid-", 0) == 0;
  bool accepted = true;
  std::string reason;
  try {
    check(bytes);
  } catch (const Error& e) {
    accepted = false;
    reason = e.what();
  }
  if (accepted != valid) {
    std::fprintf(stderr, "seed %s: expected it to be %s, but it is %s %s\n", name.c_str(),
                 valid ? "accepted" : "rejected", accepted ? "accepted" : "rejected:", reason.c_str());
    std::exit(1);
  }
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  INQ_CHECK(out.good(), "Given seed '{}', expected to write it, but writing failed", (dir / name).string());
  std::printf("%6zu  %s\n", bytes.size(), (dir / name).c_str());
}

void append_u64_le(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// A safetensors image from a hand-written header (no padding) and a buffer.
Bytes safetensors_image(const std::string& header, const Bytes& buffer) {
  Bytes out;
  append_u64_le(out, header.size());
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

Bytes idx_image(const std::vector<uint32_t>& dims, const Bytes& data, uint8_t type = 0x08) {
  Bytes out = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(d >> shift));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void safetensors_seeds(const fs::path& dir) {
  const Check check = [](std::span<const uint8_t> b) { fuzz::safetensors_input(b); };
  StoredTensors tensors;
  tensors.emplace_back("layer.weight",
                       StoredTensor::from_tensor(Tensor::from_vector({2, 3}, {1, -2, 0.5f, 0, 3, -0.25f})));
  tensors.emplace_back("layer.bias", StoredTensor::from_tensor(Tensor::from_vector({2}, {0.1f, -0.1f})));
  tensors.emplace_back("bn.num_batches_tracked", StoredTensor::from_int64({}, {42}));
  tensors.emplace_back("empty", StoredTensor::from_tensor(Tensor::zeros({0, 4})));
  write_seed(dir, "valid-f32-i64-empty-metadata.safetensors",
             serialize_safetensors(tensors, {{"format", "pt"}, {"source", "fuzz seed"}}), check);
  write_seed(dir, "valid-no-tensors.safetensors", serialize_safetensors({}), check);
  StoredTensors unicode;
  unicode.emplace_back("gewicht.\xc3\xa4\xe2\x82\xac\xf0\x9d\x84\x9e", StoredTensor::from_tensor(Tensor::full({}, 7)));
  write_seed(dir, "valid-unicode-name-scalar.safetensors", serialize_safetensors(unicode), check);

  const Bytes four(4, 0), eight(8, 0);
  write_seed(dir, "invalid-duplicate-name.safetensors",
             safetensors_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                               eight),
             check);
  write_seed(dir, "invalid-gap.safetensors",
             safetensors_image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), check);
  write_seed(dir, "invalid-shape-overflow.safetensors",
             safetensors_image(R"({"a":{"dtype":"I64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                               eight),
             check);
  Bytes too_long = serialize_safetensors(unicode);
  too_long[7] = 0x7f;  // header length far beyond the file
  write_seed(dir, "invalid-header-length.safetensors", too_long, check);
  write_seed(dir, "invalid-metadata-not-string.safetensors",
             safetensors_image(R"({"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
                               four),
             check);
}

void idx_seeds(const fs::path& dir) {
  const Check check = [](std::span<const uint8_t> b) { fuzz::idx_input(b); };
  const Bytes images = idx_image({2, 2, 3}, {0, 255, 51, 102, 0, 0, 255, 255, 255, 255, 128, 7});
  const Bytes labels = idx_image({4}, {1, 0, 9, 3});
  write_seed(dir, "valid-images.idx", images, check);
  write_seed(dir, "valid-labels.idx", labels, check);
  write_seed(dir, "valid-images.idx.gz", fuzz::gzip_bytes(images), check);
  // gzip(1) accepts concatenated members; so does the reader.
  const Bytes first(labels.begin(), labels.begin() + 6), rest(labels.begin() + 6, labels.end());
  write_seed(dir, "valid-labels-two-members.idx.gz", concat(fuzz::gzip_bytes(first), fuzz::gzip_bytes(rest)), check);
  write_seed(dir, "valid-zero-images.idx", idx_image({0, 28, 28}, {}), check);

  write_seed(dir, "invalid-truncated.idx", Bytes(images.begin(), images.end() - 1), check);
  write_seed(dir, "invalid-int32-type.idx", idx_image({1}, {0, 0, 0, 1}, 0x0C), check);
  write_seed(dir, "invalid-trailing-garbage.idx.gz", concat(fuzz::gzip_bytes(labels), {'x', 'y'}), check);
  // Declares 2^32 - 1 images of 2^32 - 1 x 2^32 - 1 bytes: must fail before allocating.
  write_seed(dir, "invalid-huge-dims.idx.gz",
             fuzz::gzip_bytes(idx_image({0xffffffffu, 0xffffffffu, 0xffffffffu}, {1, 2, 3})), check);
}

// A valid Generator::state() string with small numbers: real states hold 312 twenty-digit words
// (6 KB), which would make the seeds bigger than the fuzzer's default input length.
std::string small_generator_state() {
  std::string s;
  for (int i = 0; i < 312; ++i) s += std::to_string(i % 10) + " ";
  s += "312 0 0";  // the engine's position, then "no spare normal" and its value
  Generator check;
  check.set_state(s);
  return s;
}

TrainConfig seed_config(int inq_bits) {
  TrainConfig c;
  c.run.arch = "fuzz";
  c.data.data_dir = "data";
  c.run.epochs = 2;
  c.inq.bits = inq_bits;
  return c;
}

// The training state of a run that has begun `inq_steps` INQ steps (one row each, as the trainer
// writes them).
TrainingProgress seed_progress(int inq_steps) {
  nlohmann::json rows = nlohmann::json::array();
  for (int k = 1; k <= inq_steps; ++k)
    rows.push_back({{"step", k}, {"portion", 0.5}, {"acc1_quantized", 0.5}, {"acc1_retrained", nullptr}});
  return TrainingProgress{.epoch = 1,
                          .iteration = 12,
                          .best_acc1 = 0.5,
                          .generator = small_generator_state(),
                          .train_seconds = 1.5,
                          .train_images = 64,
                          .phase_start_iteration = 0,
                          .fp32_acc1 = -1,
                          .inq_steps = rows};
}

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

// save_checkpoint's bytes (it writes files only), through a temporary file.
Bytes checkpoint_bytes(const Module& model, const Optimizer& optimizer, const CheckpointContents& contents) {
  const fs::path tmp = fs::temp_directory_path() / ("inq_fuzz_seed_" + std::to_string(::getpid()));
  save_checkpoint(tmp.string(), model, &optimizer, contents);
  Bytes bytes = read_bytes(tmp);
  fs::remove(tmp);
  return bytes;
}

// `bytes` (a valid checkpoint) with one metadata value replaced.
Bytes with_metadata(const Bytes& bytes, const std::string& key, const std::string& value) {
  SafetensorsFile file = parse_safetensors(bytes);
  file.metadata[key] = value;
  return serialize_safetensors(file.tensors, file.metadata);
}

void packed_v3_seeds(const fs::path& dir, const Check& check);

void checkpoint_seeds(const fs::path& dir) {
  const Check check = [](std::span<const uint8_t> b) { fuzz::checkpoint_input(b); };
  seed_all(1);
  fuzz::FuzzModel model;

  // A plain weights file as converted torchvision weights look: unprefixed names, an I64 scalar.
  StoredTensors weights;
  for (const auto& t : model.state_dict())
    if (t.name != "count") weights.emplace_back(t.name, StoredTensor::from_tensor(t.tensor));
  weights.emplace_back("count", StoredTensor::from_int64({}, {3}));
  write_seed(dir, "valid-weights.safetensors", serialize_safetensors(weights), check);

  // Plain training with momentum buffers.
  const TrainConfig plain = seed_config(0);
  const SgdOptions sgd{.lr = plain.optim.lr, .momentum = plain.optim.momentum};
  Sgd optimizer(make_param_groups(model.named_parameters(), plain.optim.weight_decay), sgd);
  optimizer.load_state_tensors({{"fc.weight.momentum_buffer", Tensor::full({2, 3}, 0.25f)},
                                {"fc.bias.momentum_buffer", Tensor::full({2}, -0.5f)}});
  CheckpointContents contents{.arch = "fuzz", .config = plain, .training_state = to_json(seed_progress(0))};
  const Bytes sgd_checkpoint = checkpoint_bytes(model, optimizer, contents);
  write_seed(dir, "valid-sgd-checkpoint.safetensors", sgd_checkpoint, check);

  // INQ, 5 bits, after step 1 (half the weights frozen) and after the last step.
  const TrainConfig inq_config = seed_config(5);
  const InqOptions inq_options{.bits = 5, .strategy = PartitionStrategy::Magnitude, .seed = inq_config.run.seed};
  InqSgd inq(make_param_groups(model.named_parameters(), inq_config.optim.weight_decay), sgd, inq_options);
  auto inq_checkpoint = [&] {
    nlohmann::json state = nlohmann::json::parse(inq.inq_metadata());
    state["generator"] = small_generator_state();
    const CheckpointContents c{.arch = "fuzz",
                               .config = inq_config,
                               .training_state = to_json(seed_progress(inq.steps_begun())),
                               .inq_state = state.dump()};
    return checkpoint_bytes(model, inq, c);
  };
  inq.begin_step(1);
  const Bytes step1 = inq_checkpoint();
  write_seed(dir, "valid-inq-step1.safetensors", step1, check);
  for (int k = 2; k <= inq.num_steps(); ++k) inq.begin_step(k);
  const Bytes final_checkpoint = inq_checkpoint();
  write_seed(dir, "valid-inq-final.safetensors", final_checkpoint, check);

  // `inq pack` of the finished run (fc.weight as 5-bit codes), and the same with a code that means
  // nothing (the sign bit over a zero exponent offset).
  const fs::path tmp = fs::temp_directory_path() / ("inq_fuzz_pack_" + std::to_string(::getpid()));
  write_file_atomically(tmp.string() + ".in", final_checkpoint);
  // Dense, so the seeds below that change a code byte change the code they say.
  pack_checkpoint(tmp.string() + ".in", tmp.string() + ".out", PackOptions{.sparse = false});
  const Bytes packed = read_bytes(tmp.string() + ".out");
  fs::remove(tmp.string() + ".in");
  fs::remove(tmp.string() + ".out");
  write_seed(dir, "valid-packed-model.safetensors", packed, check);
  SafetensorsFile bad_code = parse_safetensors(packed);
  for (auto& [name, t] : bad_code.tensors)
    if (name == "fc.weight") t.u8[0] = 0x10;  // first 5-bit code = 16: minus zero
  // With the checksum recomputed, so the input gets past it to the code check.
  bad_code.metadata["checksum"] = packed_model_checksum(bad_code);
  write_seed(dir, "invalid-packed-code.safetensors", serialize_safetensors(bad_code.tensors, bad_code.metadata),
             check);
  // A valid code changed into another valid one: only the checksum catches it.
  SafetensorsFile bad_checksum = parse_safetensors(packed);
  for (auto& [name, t] : bad_checksum.tensors)
    if (name == "fc.weight") t.u8[0] ^= 0x01;
  write_seed(dir, "invalid-packed-checksum.safetensors",
             serialize_safetensors(bad_checksum.tensors, bad_checksum.metadata), check);
  // Format version 1 (before the checksum): still accepted, with a warning.
  SafetensorsFile version1 = parse_safetensors(packed);
  version1.metadata.erase("checksum");
  version1.metadata["format_version"] = std::to_string(kPackedVersionWithoutChecksum);
  nlohmann::json entries = nlohmann::json::parse(version1.metadata.at("quantized"));
  for (auto& item : entries.items()) {  // version 1 entries have no encoding fields
    item.value().erase("encoding");
    item.value().erase("entropy");
  }
  version1.metadata["quantized"] = entries.dump();
  write_seed(dir, "valid-packed-model-v1.safetensors", serialize_safetensors(version1.tensors, version1.metadata),
             check);
  packed_v3_seeds(dir, check);

  write_seed(dir, "invalid-config-unknown-key.safetensors",
             with_metadata(sgd_checkpoint, "config", R"({"arch":"fuzz","bogus":1})"), check);
  write_seed(dir, "invalid-training-state-missing-key.safetensors",
             with_metadata(sgd_checkpoint, "training_state", R"({"epoch":1})"), check);
  nlohmann::json wrong_frozen = nlohmann::json::parse(parse_safetensors(step1).metadata.at("inq_state"));
  wrong_frozen["tensors"]["fc.weight"]["frozen"] = 4;
  write_seed(dir, "invalid-inq-frozen-count.safetensors", with_metadata(step1, "inq_state", wrong_frozen.dump()),
             check);
}

// Format version 3's layouts of fc.weight (6 weights of 5 bits, one non-zero at the end, so a gap
// of 5 zeros: one filler at 2-bit gaps), each written by the encoder and described as pack_model
// describes it, with the checksum over the result; a version 2 file; and one seed per kind of
// malformed stream or field.
void packed_v3_seeds(const fs::path& dir, const Check& check) {
  fuzz::FuzzModel model;
  StoredTensors tensors;
  for (const auto& t : model.state_dict()) tensors.emplace_back(t.name, StoredTensor::from_tensor(t.tensor));
  for (auto& [name, t] : tensors)
    if (name == "fc.weight") t = StoredTensor::from_tensor(Tensor::from_vector({2, 3}, {0, 0, 0, 0, 0, -0.125f}));
  const Codebook cb{.bits = 5, .n1 = 0, .n2 = -7};
  const fs::path tmp = fs::temp_directory_path() / ("inq_fuzz_sparse_" + std::to_string(::getpid()));
  pack_model({.source = "seed", .metadata = {}, .tensors = tensors}, {{"fc.weight", cb}}, "fuzz", tmp.string());
  const Bytes packed = read_bytes(tmp.string());
  fs::remove(tmp);
  write_seed(dir, "valid-packed-v3-gaps.safetensors", packed, check);

  // The same tensor in a layout of our choosing, its entry described and checksummed as pack_model does.
  const std::vector<uint16_t> codes = {0, 0, 0, 0, 0, 16 | 4};  // -2^-3: sign, offset n1 - k + 1 = 4
  auto in_layout = [&](CodeLayout layout, bool huffman, int gap_bits,
                       const std::function<void(nlohmann::json&, Bytes&)>& spoil) {
    SafetensorsFile f = parse_safetensors(packed);
    const EncodedCodes e = encode_codes_as(codes, 5, layout, huffman, gap_bits);
    nlohmann::json q = nlohmann::json::parse(f.metadata.at("quantized"));
    nlohmann::json& entry = q["fc.weight"];
    for (const char* key : {"nonzeros", "gap_bits", "entries"}) entry.erase(key);
    entry["encoding"] = layout_name(layout);
    entry["entropy"] = huffman ? "huffman" : "none";
    if (layout != CodeLayout::Dense) entry["nonzeros"] = e.encoding.nonzeros;
    if (layout == CodeLayout::Gaps) {
      entry["gap_bits"] = e.encoding.gap_bits;
      entry["entries"] = e.encoding.entries;
    }
    Bytes stream = e.bytes;
    if (spoil) spoil(entry, stream);
    f.metadata["quantized"] = q.dump();
    for (auto& [name, t] : f.tensors)
      if (name == "fc.weight") t = StoredTensor::from_uint8({static_cast<int64_t>(stream.size())}, std::move(stream));
    f.metadata["checksum"] = packed_model_checksum(f);
    return serialize_safetensors(f.tensors, f.metadata);
  };
  write_seed(dir, "valid-packed-v3-gaps-huffman.safetensors", in_layout(CodeLayout::Gaps, true, 2, {}), check);
  write_seed(dir, "valid-packed-v3-bitmap.safetensors", in_layout(CodeLayout::Bitmap, false, 0, {}), check);
  write_seed(dir, "valid-packed-v3-bitmap-huffman.safetensors", in_layout(CodeLayout::Bitmap, true, 0, {}), check);
  write_seed(dir, "valid-packed-v3-dense-huffman.safetensors", in_layout(CodeLayout::Dense, true, 0, {}), check);
  write_seed(dir, "valid-packed-v3-dense.safetensors", in_layout(CodeLayout::Dense, false, 0, {}), check);

  // Malformed: a filler whose gap is not all ones (2-bit gaps: entry 0 is the filler, gap 3 -> 2).
  write_seed(dir, "invalid-packed-v3-filler.safetensors",
             in_layout(CodeLayout::Gaps, false, 2, [](nlohmann::json&, Bytes& s) { s[0] &= 0xFE; }), check);
  write_seed(dir, "invalid-packed-v3-trailing-byte.safetensors",
             in_layout(CodeLayout::Gaps, false, 2, [](nlohmann::json&, Bytes& s) { s.push_back(0); }), check);
  write_seed(dir, "invalid-packed-v3-gap-bits.safetensors",
             in_layout(CodeLayout::Gaps, false, 2, [](nlohmann::json& e, Bytes&) { e["gap_bits"] = 17; }), check);
  write_seed(dir, "invalid-packed-v3-position.safetensors",
             in_layout(CodeLayout::Gaps, false, 2, [](nlohmann::json& e, Bytes&) { e["shape"] = {5}; }), check);
  // A Huffman code table with a length of 1 for a third symbol (symbol 1: bit 5): over-subscribed.
  write_seed(dir, "invalid-packed-v3-huffman-table.safetensors",
             in_layout(CodeLayout::Dense, true, 0, [](nlohmann::json&, Bytes& s) { s[0] |= 0x20; }), check);
  write_seed(dir, "invalid-packed-v3-encoding.safetensors",
             with_metadata(in_layout(CodeLayout::Bitmap, false, 0, {}), "quantized",
                           R"({"fc.weight":{"shape":[2,3],"bits":5,"n1":0,"n2":-7,"encoding":"runs","entropy":"none"}})"),
             check);

  // Version 2: the dense entry without its encoding fields.
  SafetensorsFile v2 = parse_safetensors(in_layout(CodeLayout::Dense, false, 0, {}));
  nlohmann::json q = nlohmann::json::parse(v2.metadata.at("quantized"));
  q["fc.weight"].erase("encoding");
  q["fc.weight"].erase("entropy");
  v2.metadata["quantized"] = q.dump();
  v2.metadata["format_version"] = std::to_string(kPackedVersionDense);
  v2.metadata["checksum"] = packed_model_checksum(v2);
  write_seed(dir, "valid-packed-model-v2.safetensors", serialize_safetensors(v2.tensors, v2.metadata), check);
}

// CIFAR-10: one whole record (3073 bytes, under the 4 KiB seed limit), and the two ways a file is
// wrong: a size that is not a multiple of 3073, and a label of 10 or more.
void cifar10_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  Bytes record(static_cast<size_t>(kCifar10RecordBytes));
  record[0] = 7;
  for (size_t i = 1; i < record.size(); ++i) record[i] = static_cast<uint8_t>(i * 37 % 251);
  write_seed(dir, "valid-one-record.bin", record, fuzz::cifar10_input);
  Bytes black_nine(static_cast<size_t>(kCifar10RecordBytes), 0);
  black_nine[0] = 9;  // the largest label
  write_seed(dir, "valid-black-label-9.bin", black_nine, fuzz::cifar10_input);
  write_seed(dir, "invalid-short-record.bin", Bytes(record.begin(), record.end() - 73), fuzz::cifar10_input);
  Bytes bad_label = record;
  bad_label[0] = 10;
  write_seed(dir, "invalid-label-10.bin", bad_label, fuzz::cifar10_input);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>   (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  try {
    const fs::path root = argv[1];
    safetensors_seeds(root / "safetensors");
    idx_seeds(root / "idx");
    checkpoint_seeds(root / "checkpoint");
    cifar10_seeds(root / "cifar10");
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
