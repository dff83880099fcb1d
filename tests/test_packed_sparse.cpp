// Format version 3's sparse and entropy-coded layouts of a quantized tensor (inq/sparse_codes.h,
// inq/huffman.h, docs/INQ_SPEC.md section 7): round trips over bit-widths and sparsities, the filler
// rule at its boundary, streams worked by hand, the writer's choice being the smallest, every
// malformed field refused by name, and a pruned LeNet-5 that evaluates from its packed file as from
// its float weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "app_testing.h"
#include "error_testing.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "inq/bitstream.h"
#include "inq/huffman.h"
#include "inq/packed.h"
#include "inq/packed_inference.h"
#include "inq/packed_model.h"
#include "inq/sparse_codes.h"
#include "layers/init.h"
#include "models/registry.h"

using namespace inq;

namespace {

using test::expect_error;

// The dense layout of `codes` (the version 2 stream), written independently of the encoder under test.
std::vector<uint8_t> dense_bytes(const std::vector<uint16_t>& codes, int bits) {
  std::vector<uint8_t> out(static_cast<size_t>(packed_bytes(static_cast<int64_t>(codes.size()), bits)), 0);
  for (size_t i = 0; i < codes.size(); ++i)
    for (int k = 0; k < bits; ++k)
      if ((codes[i] >> k) & 1) {
        const size_t bit = i * static_cast<size_t>(bits) + static_cast<size_t>(k);
        out[bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
      }
  return out;
}

// A valid non-zero code of a b-bit codebook: a sign bit over an exponent offset in [1, 2^(b-2)].
uint16_t random_nonzero_code(int bits, std::mt19937& rng) {
  std::uniform_int_distribution<int> offset(1, 1 << (bits - 2));
  std::bernoulli_distribution negative(0.5);
  return static_cast<uint16_t>((negative(rng) ? 1 << (bits - 1) : 0) | offset(rng));
}

std::vector<uint16_t> random_codes(int64_t n, int bits, double sparsity, std::mt19937& rng) {
  std::bernoulli_distribution zero(sparsity);
  std::vector<uint16_t> codes(static_cast<size_t>(n));
  for (auto& c : codes) c = zero(rng) ? 0 : random_nonzero_code(bits, rng);
  return codes;
}

struct Candidate {
  CodeLayout layout;
  bool huffman;
  int gap_bits;
};

std::vector<Candidate> every_candidate() {
  std::vector<Candidate> out;
  for (bool huffman : {false, true}) {
    out.push_back({CodeLayout::Dense, huffman, 0});
    for (int g = kMinGapBits; g <= kMaxGapBits; ++g) out.push_back({CodeLayout::Gaps, huffman, g});
    out.push_back({CodeLayout::Bitmap, huffman, 0});
  }
  return out;
}

std::vector<uint8_t> decode(int64_t numel, int bits, const EncodedCodes& e) {
  return decode_to_dense("tensor 't'", numel, bits, e.encoding, e.bytes);
}

// The codes `stream` decodes to under `encoding`, expecting a refusal whose message holds `needle`.
void expect_refused(int64_t numel, int bits, const TensorEncoding& encoding, const std::vector<uint8_t>& stream,
                    const std::string& needle) {
  expect_error([&] { decode_to_dense("packed model 'f' tensor 't'", numel, bits, encoding, stream); },
               {"'f'", "'t'", needle});
}

}  // namespace

// Every layout of random tensors at every bit-width and sparsity decodes to the dense codes exactly, is
// as large as encoded_size says, and the writer's pick is the smallest of those allowed.
TEST(PackedSparse, EveryLayoutRoundTripsAtEveryWidthAndSparsity) {
  std::mt19937 rng(14);
  for (int bits = 2; bits <= 10; ++bits) {
    for (double sparsity : {0.0, 0.5, 0.9, 0.99, 1.0}) {
      const std::vector<uint16_t> codes = random_codes(2000 + bits * 37, bits, sparsity, rng);
      const auto n = static_cast<int64_t>(codes.size());
      const std::vector<uint8_t> want = dense_bytes(codes, bits);
      const std::string at = "bits " + std::to_string(bits) + " sparsity " + std::to_string(sparsity);
      int64_t smallest_plain = INT64_MAX;
      int64_t smallest = INT64_MAX;
      for (const Candidate& c : every_candidate()) {
        const EncodedCodes e = encode_codes_as(codes, bits, c.layout, c.huffman, c.gap_bits);
        const std::string what = at + " " + layout_name(c.layout) + (c.huffman ? " huffman" : "") + " g " +
                                 std::to_string(c.gap_bits);
        ASSERT_EQ(static_cast<int64_t>(e.bytes.size()), encoded_size(codes, bits, c.layout, c.huffman, c.gap_bits))
            << what;
        ASSERT_EQ(decode(n, bits, e), want) << what;
        smallest = std::min<int64_t>(smallest, static_cast<int64_t>(e.bytes.size()));
        if (!c.huffman) smallest_plain = std::min<int64_t>(smallest_plain, static_cast<int64_t>(e.bytes.size()));
      }
      const EncodedCodes chosen = encode_codes(codes, bits, /*sparse=*/true, /*entropy=*/false);
      EXPECT_FALSE(chosen.encoding.huffman) << at;
      EXPECT_EQ(static_cast<int64_t>(chosen.bytes.size()), smallest_plain) << at;
      EXPECT_EQ(decode(n, bits, chosen), want) << at;
      const EncodedCodes entropy = encode_codes(codes, bits, true, true);
      EXPECT_EQ(static_cast<int64_t>(entropy.bytes.size()), smallest) << at;
      EXPECT_EQ(decode(n, bits, entropy), want) << at;
      const EncodedCodes dense = encode_codes(codes, bits, /*sparse=*/false, /*entropy=*/false);
      EXPECT_EQ(dense.encoding.layout, CodeLayout::Dense) << at;
      EXPECT_EQ(dense.bytes, want) << at;  // the version 2 layout, unchanged
    }
  }
}

// Which layout wins where: a dense tensor stays dense, a 90%-sparse one goes to gaps, a 50%-sparse one
// to the bitmap (5 bits: N + N/2 * 5 bits beats N * 5, and gaps of ~1 cost more than a bit each).
TEST(PackedSparse, ChoiceFollowsTheSparsity) {
  std::mt19937 rng(3);
  EXPECT_EQ(encode_codes(random_codes(5000, 5, 0.0, rng), 5, true, false).encoding.layout, CodeLayout::Dense);
  EXPECT_EQ(encode_codes(random_codes(5000, 5, 0.5, rng), 5, true, false).encoding.layout, CodeLayout::Bitmap);
  const EncodedCodes sparse = encode_codes(random_codes(5000, 5, 0.9, rng), 5, true, false);
  EXPECT_EQ(sparse.encoding.layout, CodeLayout::Gaps);
  EXPECT_GE(sparse.encoding.gap_bits, 2);
  EXPECT_LE(sparse.encoding.gap_bits, 5);
}

// The empty tensor takes no bytes in any layout; an all-zero tensor takes none as gaps, which wins.
TEST(PackedSparse, EmptyAndAllZeroTensors) {
  for (const Candidate& c : every_candidate()) {
    const EncodedCodes e = encode_codes_as({}, 4, c.layout, c.huffman, c.gap_bits);
    EXPECT_EQ(decode(0, 4, e), std::vector<uint8_t>{});
    if (!c.huffman) {
      EXPECT_TRUE(e.bytes.empty());
    }
  }
  EXPECT_TRUE(encode_codes({}, 4, true, true).bytes.empty());
  const std::vector<uint16_t> zeros(1000, 0);
  const EncodedCodes e = encode_codes(zeros, 4, true, true);
  EXPECT_EQ(e.encoding.layout, CodeLayout::Gaps);
  EXPECT_FALSE(e.encoding.huffman);
  EXPECT_EQ(e.encoding.entries, 0);
  EXPECT_EQ(e.encoding.nonzeros, 0);
  EXPECT_TRUE(e.bytes.empty());
  EXPECT_EQ(decode(1000, 4, e), std::vector<uint8_t>(500, 0));
}

// A gap of 2^g - 1 zeros fits one entry; 2^g needs one filler; runs needing many fillers decode too.
TEST(PackedSparse, FillersAtTheBoundaryAndInLongRuns) {
  const int g = 3;
  for (int64_t gap : {6, 7, 8, 9, 15, 16, 17, 1000}) {
    std::vector<uint16_t> codes(static_cast<size_t>(gap + 2), 0);
    codes[static_cast<size_t>(gap)] = 1;  // `gap` zeros before it
    codes.back() = 5;                     // and one right after (gap 0)
    const EncodedCodes e = encode_codes_as(codes, 3, CodeLayout::Gaps, false, g);
    EXPECT_EQ(e.encoding.nonzeros, 2) << gap;
    EXPECT_EQ(e.encoding.entries, 2 + (gap >> g)) << gap;
    EXPECT_EQ(static_cast<int64_t>(e.bytes.size()), (e.encoding.entries * (g + 3) + 7) / 8) << gap;
    EXPECT_EQ(decode(static_cast<int64_t>(codes.size()), 3, e), dense_bytes(codes, 3)) << gap;
    const EncodedCodes h = encode_codes_as(codes, 3, CodeLayout::Gaps, true, g);
    EXPECT_EQ(decode(static_cast<int64_t>(codes.size()), 3, h), dense_bytes(codes, 3)) << gap;
  }
}

// Streams worked out bit by bit (LSB first): 3-bit codes [0,0,1,0,0,0,0,0,0,6].
TEST(PackedSparse, StreamsWorkedByHand) {
  const std::vector<uint16_t> codes = {0, 0, 1, 0, 0, 0, 0, 0, 0, 6};
  // Gaps at 2 bits: (gap 2, code 1) at position 2; the 6 zeros before position 9 exceed 3, so a filler
  // (gap 3, code 0) stands on position 6, then (gap 2, code 6) lands on 9. Entries are 5 bits:
  // 01 100 | 11 000 | 01 011 -> bits 0..14 = 0,1,1,0,0, 1,1,0,0,0, 0,1,0,1,1 -> 0x66, 0x68.
  const EncodedCodes gaps = encode_codes_as(codes, 3, CodeLayout::Gaps, false, 2);
  EXPECT_EQ(gaps.bytes, (std::vector<uint8_t>{0x66, 0x68}));
  EXPECT_EQ(gaps.encoding.entries, 3);
  EXPECT_EQ(gaps.encoding.nonzeros, 2);
  // Bitmap: bits 2 and 9 set, then code 1 (bits 10..12) and code 6 (bits 13..15) -> 0x04, 0xC6.
  const EncodedCodes bitmap = encode_codes_as(codes, 3, CodeLayout::Bitmap, false);
  EXPECT_EQ(bitmap.bytes, (std::vector<uint8_t>{0x04, 0xC6}));
  EXPECT_EQ(encoded_size(codes, 3, CodeLayout::Dense, false), 4);  // 30 bits
  // Huffman over 2-bit codes [0, 0, 0, 1]: lengths 1, 1, 0, 0 in 5 bits each (bits 0 and 5 set),
  // then codes 0 -> "0", 1 -> "1": bits 20..23 = 0, 0, 0, 1 -> 0x21, 0x00, 0x80.
  const EncodedCodes huffman = encode_codes_as({0, 0, 0, 1}, 2, CodeLayout::Dense, true);
  EXPECT_EQ(huffman.bytes, (std::vector<uint8_t>{0x21, 0x00, 0x80}));
  EXPECT_EQ(decode(4, 2, huffman), dense_bytes({0, 0, 0, 1}, 2));
}

// The canonical code: lengths from counts, codes shortest first, and a table that is not a valid
// prefix code refused.
TEST(PackedSparse, HuffmanLengthsAreOptimalAndLimited) {
  EXPECT_EQ(huffman_code_lengths({5, 0, 3, 1, 1}), (std::vector<uint8_t>{1, 0, 2, 3, 3}));
  EXPECT_EQ(huffman_code_lengths({0, 7, 0}), (std::vector<uint8_t>{0, 1, 0}));
  // Fibonacci counts would need 39-bit codes; the limit holds and the code stays complete.
  std::vector<uint64_t> fib = {1, 1};
  while (fib.size() < 40) fib.push_back(fib[fib.size() - 1] + fib[fib.size() - 2]);
  const std::vector<uint8_t> lengths = huffman_code_lengths(fib);
  double kraft = 0;
  for (uint8_t l : lengths) {
    EXPECT_GE(l, 1);
    EXPECT_LE(l, kHuffmanMaxLength);
    kraft += std::ldexp(1.0, -l);
  }
  EXPECT_DOUBLE_EQ(kraft, 1.0);
}

// Every malformed stream is refused with a message naming the file, the tensor and what is wrong.
TEST(PackedSparse, MalformedStreamsAreRefused) {
  const std::vector<uint16_t> codes = {0, 0, 1, 0, 0, 0, 0, 0, 0, 6};
  const EncodedCodes gaps = encode_codes_as(codes, 3, CodeLayout::Gaps, false, 2);
  std::vector<uint8_t> s = gaps.bytes;
  s.pop_back();
  expect_refused(10, 3, gaps.encoding, s, "truncated");
  s = gaps.bytes;
  s.push_back(0);
  expect_refused(10, 3, gaps.encoding, s, "trailing garbage");
  s = gaps.bytes;
  s[1] |= 0x80;  // bit 15, after the last entry
  expect_refused(10, 3, gaps.encoding, s, "padding bits");
  expect_refused(9, 3, gaps.encoding, gaps.bytes, "position 9");  // the last entry lies beyond 9 weights
  TensorEncoding e = gaps.encoding;
  e.nonzeros = 1;
  expect_refused(10, 3, e, gaps.bytes, "1 non-zero codes");
  // A zero code outside a filler: entry 1 as (gap 2, code 0) instead of (gap 3, code 0).
  s = gaps.bytes;
  s[0] &= static_cast<uint8_t>(~0x20);  // bit 5: the filler's gap 3 -> 2
  expect_refused(10, 3, gaps.encoding, s, "filler");
  // A filler as the last entry (nothing for it to bridge to): entries 0 and 1 only.
  e = gaps.encoding;
  e.entries = 2;
  e.nonzeros = 1;
  expect_refused(10, 3, e, {0x66, 0x00}, "filler");
  // Bitmap: a set bit whose code is 0, and a set-bit count other than nonzeros.
  const EncodedCodes bitmap = encode_codes_as(codes, 3, CodeLayout::Bitmap, false);
  s = bitmap.bytes;
  s[1] &= static_cast<uint8_t>(~0x04);  // the first code, 1 -> 0
  expect_refused(10, 3, bitmap.encoding, s, "code 0");
  e = bitmap.encoding;
  e.nonzeros = 3;
  expect_refused(10, 3, e, bitmap.bytes, "set bits");
  e.nonzeros = 1;
  expect_refused(10, 3, e, bitmap.bytes, "set bits");
  // A sparse tensor beyond the size limit.
  expect_refused(kMaxSparseWeights + 1, 3, bitmap.encoding, bitmap.bytes, "at most");

  // Huffman tables over 2-bit codes (4 lengths of 5 bits), then symbols.
  const TensorEncoding dense_huffman{.layout = CodeLayout::Dense, .huffman = true};
  auto table = [](std::vector<uint32_t> lengths, std::vector<std::pair<uint32_t, int>> symbols) {
    BitWriter w;
    for (uint32_t l : lengths) w.put(l, kHuffmanLengthBits);
    for (auto [v, n] : symbols) w.put(v, n);
    return w.finish();
  };
  expect_refused(2, 2, dense_huffman, table({1, 1, 1, 0}, {{0, 2}}), "over-subscribed");
  expect_refused(2, 2, dense_huffman, table({1, 2, 0, 0}, {{0, 2}}), "complete prefix code");
  expect_refused(2, 2, dense_huffman, table({25, 0, 0, 0}, {{0, 2}}), "length 25");
  expect_refused(2, 2, dense_huffman, table({0, 0, 0, 0}, {{0, 2}}), "every length is 0");
  expect_refused(2, 2, dense_huffman, table({1, 0, 0, 0}, {{0, 1}, {1, 1}}), "got bit 1");
  expect_refused(5, 2, dense_huffman, table({1, 1, 0, 0}, {{0, 2}}), "truncated");
  // A shape far beyond what the stream can hold is refused before anything is allocated for it.
  expect_refused(int64_t{1} << 40, 2, dense_huffman, table({1, 1, 0, 0}, {{0, 2}}), "at least one bit per weight");
  // The valid forms of the same tables decode.
  EXPECT_EQ(decode_to_dense("t", 2, 2, dense_huffman, table({1, 0, 0, 0}, {{0, 2}})), std::vector<uint8_t>{0});
  EXPECT_EQ(decode_to_dense("t", 2, 2, dense_huffman, table({1, 1, 0, 0}, {{2, 2}})), std::vector<uint8_t>{0x04});
}

// Any single flipped bit of any layout either decodes to a dense stream of the right size or is
// refused with inq::Error (never a crash or another exception; CI also runs this under ASan + UBSan).
// Most flips are refused: positions, fillers, counts, tables and padding are all checked.
TEST(PackedSparse, EveryFlippedBitDecodesOrIsRefused) {
  std::mt19937 rng(8);
  const std::vector<uint16_t> codes = random_codes(300, 4, 0.8, rng);
  for (const Candidate& c : every_candidate()) {
    if (c.layout == CodeLayout::Gaps && c.gap_bits > 6) continue;  // wider gaps add nothing new here
    const EncodedCodes e = encode_codes_as(codes, 4, c.layout, c.huffman, c.gap_bits);
    int64_t refused = 0;
    for (size_t bit = 0; bit < e.bytes.size() * 8; ++bit) {
      std::vector<uint8_t> s = e.bytes;
      s[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      try {
        EXPECT_EQ(decode_to_dense("t", 300, 4, e.encoding, s).size(), 150u);
      } catch (const Error&) {
        ++refused;
      }
    }
    // Fixed-width dense codes have no redundancy to catch a flip with (the checksum does that).
    if (c.layout != CodeLayout::Dense || c.huffman) {
      EXPECT_GT(refused, 0) << layout_name(c.layout) << " huffman " << c.huffman << " g " << c.gap_bits;
    }
  }
}

namespace {

// A LeNet-5 with `sparsity` of each weight zeroed (a pruned model), the rest on its 5-bit codebook's
// levels, written as a plain weights file; returns the codebooks.
std::map<std::string, Codebook> pruned_lenet(Module& model, double sparsity, std::mt19937& rng) {
  std::map<std::string, Codebook> codebooks;
  std::bernoulli_distribution pruned(sparsity);
  for (auto& p : model.named_parameters()) {
    if (p.role != ParamRole::Weight) continue;
    const Codebook cb = make_codebook(p.tensor, 5, p.name);
    const std::vector<float> levels = cb.levels();
    std::uniform_int_distribution<size_t> pick(0, levels.size() - 1);
    Tensor t = Tensor::empty(p.tensor.shape());
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = pruned(rng) ? 0.0f : levels[pick(rng)];
    t.data()[0] = std::ldexp(1.0f, cb.n1);  // the maximum on the top level: `inq pack --bits` finds cb
    p.tensor.copy_from(t);
    codebooks[p.name] = cb;
  }
  return codebooks;
}

}  // namespace

// A pruned, quantized LeNet-5 packed sparsely (with and without Huffman) unpacks bit for bit, verifies,
// and evaluates from its codes as the float model does; the packed sizes shrink as promised.
TEST(PackedSparse, PrunedLenetEvaluatesFromItsPackedFile) {
  std::mt19937 rng(9);
  auto model = create_model("lenet5", {.num_classes = 10, .in_channels = 1});
  const auto codebooks = pruned_lenet(*model, 0.9, rng);
  StoredTensors tensors;
  for (const auto& t : model->state_dict()) tensors.emplace_back(t.name, StoredTensor::from_tensor(t.tensor));
  const std::string plain = test::temp_path("sparse_plain") + ".safetensors";
  write_safetensors(plain, tensors);
  model->eval();
  NoGradGuard no_grad;
  const Tensor x = [&] {
    std::uniform_real_distribution<float> u(-1, 1);
    Tensor t = Tensor::empty({5, 1, 28, 28});
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = u(rng);
    return t;
  }();
  const std::vector<float> want = model->forward(x).to_vector();

  int64_t previous_bytes = INT64_MAX;
  for (const PackOptions options : {PackOptions{.sparse = false}, PackOptions{}, PackOptions{.entropy_coding = true}}) {
    const std::string packed = test::temp_path("sparse_packed") + ".safetensors";
    const PackSummary s = pack_model(read_safetensors(plain), codebooks, "lenet5", packed, options);
    EXPECT_EQ(s.quantized_tensors, static_cast<int64_t>(codebooks.size()));
    EXPECT_EQ(s.sparse_tensors, options.sparse ? s.quantized_tensors : 0);
    EXPECT_EQ(s.entropy_tensors > 0, options.entropy_coding);
    EXPECT_LT(s.code_bytes, previous_bytes);
    previous_bytes = s.code_bytes;
    EXPECT_EQ(read_safetensors(packed).metadata.at("format_version"), "3");

    const UnpackedModel unpacked = unpack_model(read_safetensors(packed));
    const SafetensorsFile plain_file = read_safetensors(plain);  // outlives the pointers into it
    for (const auto& [name, t] : unpacked.weights.tensors) {
      const StoredTensor* original = plain_file.find(name);
      ASSERT_NE(original, nullptr) << name;
      ASSERT_EQ(std::memcmp(original->f32.data(), t.f32.data(), static_cast<size_t>(t.numel()) * sizeof(float)), 0)
          << name;
    }
    std::shared_ptr<Module> from_codes;
    {
      SkipParameterInitGuard skip;
      from_codes = create_model("lenet5", {.num_classes = 10, .in_channels = 1});
    }
    const PackedInferenceSummary loaded = load_packed_for_inference(read_safetensors(packed), *from_codes, {}, "lenet5");
    EXPECT_EQ(loaded.packed_layers, static_cast<int64_t>(codebooks.size()));
    from_codes->eval();
    const std::vector<float> got = from_codes->forward(x).to_vector();
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-5 * std::max(1.0f, std::fabs(want[i]))) << "logit " << i;
    std::string out;
    EXPECT_EQ(test::run_cli("verify " + packed, &out), 0) << out;
    EXPECT_NE(out.find("checksum OK"), std::string::npos) << out;
    std::filesystem::remove(packed);
  }

  // The CLI: --entropy and --dense, and the summary line.
  const std::string packed = test::temp_path("sparse_cli") + ".safetensors";
  std::string out;
  ASSERT_EQ(test::run_cli("pack --bits 5 --arch lenet5 --entropy " + plain + " -o " + packed, &out), 0) << out;
  EXPECT_NE(out.find("5 stored sparsely"), std::string::npos) << out;
  EXPECT_NE(out.find("smaller than float32"), std::string::npos) << out;
  const std::string unpacked = test::temp_path("sparse_unpacked") + ".safetensors";
  ASSERT_EQ(test::run_cli("unpack " + packed + " -o " + unpacked, &out), 0) << out;
  for (const auto& [name, t] : read_safetensors(unpacked).tensors)
    EXPECT_EQ(t.f32.to_vector(), read_safetensors(plain).find(name)->f32.to_vector()) << name;
  ASSERT_EQ(test::run_cli("pack --bits 5 --arch lenet5 --dense " + plain + " -o " + packed, &out), 0) << out;
  EXPECT_NE(out.find("0 stored sparsely, 0 Huffman-coded"), std::string::npos) << out;
  for (const auto& f : {plain, packed, unpacked}) std::filesystem::remove(f);
}

namespace {

// A packed file of one 3-bit tensor stored as gaps, whose "quantized" entry `edit` changes before
// the checksum is recomputed (so the reader sees the field, not a checksum mismatch).
std::string packed_with_entry(const std::function<void(nlohmann::json&)>& edit, bool recompute = true) {
  StoredTensors tensors;
  std::vector<float> w(40, 0.0f);
  w[3] = 0.5f;
  w[30] = -0.25f;
  tensors.emplace_back("fc.weight", StoredTensor::from_tensor(Tensor::from_vector({4, 10}, w)));
  const std::string path = test::temp_path("sparse_entry") + ".safetensors";
  pack_model({.source = "mem", .metadata = {}, .tensors = tensors},
             {{"fc.weight", Codebook{.bits = 3, .n1 = -1, .n2 = -2}}}, "lenet5", path);
  SafetensorsFile f = read_safetensors(path);
  nlohmann::json q = nlohmann::json::parse(f.metadata.at("quantized"));
  edit(q["fc.weight"]);
  f.metadata["quantized"] = q.dump();
  if (recompute) f.metadata["checksum"] = packed_model_checksum(f);
  write_safetensors(path, f.tensors, f.metadata);
  return path;
}

}  // namespace

// Every malformed "quantized" field of a version 3 entry is refused naming the file and the tensor;
// the checksum covers the encoding fields; a version 2 file (dense, no encoding fields) still loads.
TEST(PackedSparse, MalformedEntriesAreRefused) {
  const std::string good = packed_with_entry([](nlohmann::json& e) {
    EXPECT_EQ(e.at("encoding"), "gaps");
    EXPECT_EQ(e.at("entropy"), "none");
    EXPECT_EQ(e.at("nonzeros"), 2);
  });
  EXPECT_NO_THROW(unpack_model(read_safetensors(good)));
  // A value the checksum's own reading cannot describe (an unknown name, a wrong JSON type) is
  // refused before the checksum is compared: those are written without recomputing it.
  auto refused = [](const std::function<void(nlohmann::json&)>& edit, const std::string& needle,
                    bool recompute = true) {
    const std::string path = packed_with_entry(edit, recompute);
    expect_error([&] { unpack_model(read_safetensors(path)); }, {path, "fc.weight", needle});
    std::filesystem::remove(path);
  };
  refused([](nlohmann::json& e) { e["encoding"] = "runs"; }, "'runs'", false);
  refused([](nlohmann::json& e) { e["entropy"] = "rans"; }, "'rans'", false);
  refused([](nlohmann::json& e) { e["gap_bits"] = 0; }, "gap_bits in [1, 16]");
  refused([](nlohmann::json& e) { e["gap_bits"] = 17; }, "gap_bits in [1, 16]");
  refused([](nlohmann::json& e) { e["gap_bits"] = e["gap_bits"].get<int>() + 1; }, "filler");  // other entries
  refused([](nlohmann::json& e) { e["nonzeros"] = 41; }, "nonzeros in [0, 40]");
  refused([](nlohmann::json& e) { e["entries"] = 1; }, "entries in [nonzeros = 2, 40]");
  refused([](nlohmann::json& e) { e["entries"] = e["entries"].get<int>() + 1; }, "truncated");
  refused([](nlohmann::json& e) { e.erase("entries"); }, "'entries'", false);
  refused([](nlohmann::json& e) { e["extra"] = 1; }, "exactly 9 keys");
  refused([](nlohmann::json& e) { e.erase("encoding"); }, "'encoding'");
  refused([](nlohmann::json& e) { e["nonzeros"] = "2"; }, "nonzeros", false);
  // Changed without the checksum recomputed: the checksum catches every field.
  for (const auto& [key, delta] : std::vector<std::pair<std::string, int>>{{"gap_bits", 1}, {"entries", 1},
                                                                           {"nonzeros", -1}}) {
    const std::string path =
        packed_with_entry([&](nlohmann::json& e) { e[key] = e[key].get<int>() + delta; }, false);
    expect_error([&] { unpack_model(read_safetensors(path)); }, {path, "checksum"});
    std::filesystem::remove(path);
  }
  const std::string entropy = packed_with_entry([](nlohmann::json& e) { e["entropy"] = "huffman"; }, false);
  expect_error([&] { unpack_model(read_safetensors(entropy)); }, {entropy, "checksum"});

  // Version 2: a dense entry without encoding fields loads; with them it is refused.
  const std::string v2 = test::temp_path("sparse_v2") + ".safetensors";
  {
    StoredTensors tensors;
    tensors.emplace_back("fc.weight", StoredTensor::from_tensor(Tensor::from_vector({2}, {0.5f, 0.0f})));
    pack_model({.source = "mem", .metadata = {}, .tensors = tensors},
               {{"fc.weight", Codebook{.bits = 3, .n1 = -1, .n2 = -2}}}, "lenet5", v2, {.sparse = false});
    SafetensorsFile f = read_safetensors(v2);
    nlohmann::json q = nlohmann::json::parse(f.metadata.at("quantized"));
    q["fc.weight"].erase("encoding");
    q["fc.weight"].erase("entropy");
    f.metadata["quantized"] = q.dump();
    f.metadata["format_version"] = "2";
    f.metadata["checksum"] = packed_model_checksum(f);
    write_safetensors(v2, f.tensors, f.metadata);
    EXPECT_EQ(unpack_model(read_safetensors(v2)).weights.find("fc.weight")->f32.to_vector(),
              (std::vector<float>{0.5f, 0.0f}));
    q["fc.weight"]["encoding"] = "dense";
    q["fc.weight"]["entropy"] = "none";
    f.metadata["quantized"] = q.dump();
    f.metadata["checksum"] = packed_model_checksum(f);
    write_safetensors(v2, f.tensors, f.metadata);
    expect_error([&] { unpack_model(read_safetensors(v2)); }, {v2, "fc.weight", "exactly shape, bits, n1 and n2"});
  }
  for (const auto& f : {good, entropy, v2}) std::filesystem::remove(f);
}

// The sizes the issue asks about, on a Deep Compression-like fc layer: 400K 5-bit weights, 90% zero.
// Printed for docs; checked against the bounds each layout must meet.
TEST(PackedSparse, SizesOfANinetyPercentSparseFcLayer) {
  std::mt19937 rng(400);
  const std::vector<uint16_t> codes = random_codes(400000, 5, 0.9, rng);
  const int64_t dense = encoded_size(codes, 5, CodeLayout::Dense, false);
  const int64_t bitmap = encoded_size(codes, 5, CodeLayout::Bitmap, false);
  const EncodedCodes gaps = encode_codes(codes, 5, true, false);
  const EncodedCodes huffman = encode_codes(codes, 5, true, true);
  std::printf("400K 5-bit weights, 90%% zero: dense %lld, bitmap %lld, gaps (%d bits) %zu, best with Huffman (%s, "
              "gap bits %d) %zu bytes; float32 %d\n",
              static_cast<long long>(dense), static_cast<long long>(bitmap), gaps.encoding.gap_bits, gaps.bytes.size(),
              layout_name(huffman.encoding.layout), huffman.encoding.gap_bits, huffman.bytes.size(), 400000 * 4);
  EXPECT_EQ(dense, 250000);
  EXPECT_EQ(bitmap, (400000 + gaps.encoding.nonzeros * 5 + 7) / 8);
  EXPECT_EQ(gaps.encoding.layout, CodeLayout::Gaps);
  EXPECT_LT(static_cast<int64_t>(gaps.bytes.size()), bitmap);
  EXPECT_LT(huffman.bytes.size(), gaps.bytes.size());
  EXPECT_TRUE(huffman.encoding.huffman);
}

// Caffe's LeNet-5 (430,500 weights; 431K with its biases) at the densities DNS reaches (Guo et al. 2016, table 1: 14%, 3%,
// 0.7%, 4% of conv1, conv2, fc1, fc2 kept), non-zeros at random positions, 5-bit codes: the packed
// layouts against float32, with and without Huffman. The target for DNS + 5-bit INQ is 53x.
TEST(PackedSparse, LenetCaffeAtDnsDensitiesIsAboveTheTarget) {
  std::mt19937 rng(53);
  const std::vector<std::pair<int64_t, double>> layers = {{500, 0.14}, {25000, 0.03}, {400000, 0.007}, {5000, 0.04}};
  int64_t weights = 0, dense = 0, plain = 0, entropy = 0;
  for (const auto& [n, kept] : layers) {
    const std::vector<uint16_t> codes = random_codes(n, 5, 1.0 - kept, rng);
    weights += n;
    dense += encode_codes(codes, 5, false, false).bytes.size();
    plain += encode_codes(codes, 5, true, false).bytes.size();
    entropy += encode_codes(codes, 5, true, true).bytes.size();
  }
  const double f32 = static_cast<double>(weights) * 4;
  std::printf("lenet5-caffe at DNS densities, 5 bits: float32 %.0f bytes; dense %lld (%.1fx), sparse %lld (%.1fx), "
              "sparse + Huffman %lld (%.1fx)\n",
              f32, static_cast<long long>(dense), f32 / dense, static_cast<long long>(plain), f32 / plain,
              static_cast<long long>(entropy), f32 / entropy);
  EXPECT_EQ(weights, 430500);
  EXPECT_GE(f32 / plain, 53.0);
  EXPECT_LT(entropy, plain);
}
