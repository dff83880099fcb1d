#pragma once
// What each fuzz target does with one input. The fuzz targets (tests/fuzz/fuzz_*.cpp) and the
// corpus test (tests/test_fuzz_corpus.cpp) share these functions, so the committed seeds are
// checked by exactly the code the fuzzer runs.
//
// Each *_input function returns when the parsers accept the input, throws inq::Error when they
// reject it (the expected outcome for most fuzz inputs), and throws FuzzFinding when two parts of
// the project disagree about an accepted input (a bug even though nothing crashed). Anything else
// that escapes, and any crash or sanitizer report, is a finding too.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

#include "train/checkpoint.h"
#include "inq/packed_model.h"
#include "data/cifar10.h"
#include "data/idx.h"
#include "data/image.h"
#include "framework/error.h"
#include "framework/safetensors.h"
#include "inq/inq_sgd.h"
#include "inq/packed.h"
#include "layers/linear.h"
#include "layers/module.h"
#include "optim/sgd.h"

namespace inq::fuzz {

// Two parts of the project disagree about an input they accepted.
struct FuzzFinding : std::logic_error {
  using std::logic_error::logic_error;
};

// ---- helpers ----

// A single gzip member holding `bytes` (what gzip(1) writes), for the IDX plain-vs-gzip check and the
// corpus. Throws FuzzFinding if zlib fails, which it does not on valid arguments.
inline std::vector<uint8_t> gzip_bytes(std::span<const uint8_t> bytes) {
  z_stream zs{};
  // 16 + MAX_WBITS: gzip wrapper instead of zlib's.
  if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw FuzzFinding("deflateInit2 failed");
  std::vector<uint8_t> out(deflateBound(&zs, static_cast<uLong>(bytes.size())) + 32);
  zs.next_in = const_cast<Bytef*>(bytes.data());
  zs.avail_in = static_cast<uInt>(bytes.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  const int ret = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (ret != Z_STREAM_END) throw FuzzFinding("deflate did not finish in one call");
  return out;
}

// ---- safetensors ----

// Equal dtype, shape and bytes (NaN payloads included).
inline bool same_stored_tensor(const StoredTensor& a, const StoredTensor& b) {
  if (a.dtype != b.dtype || a.shape != b.shape) return false;
  const size_t n = static_cast<size_t>(a.numel());
  if (a.dtype == StoredDtype::I64) return a.i64 == b.i64;
  if (a.dtype == StoredDtype::U8) return a.u8 == b.u8;
  return n == 0 || std::memcmp(a.f32.data(), b.f32.data(), n * sizeof(float)) == 0;
}

// parse_safetensors; an accepted file must come back unchanged through the writer and the reader,
// and writing that again must give the same bytes (the writer is deterministic).
inline void safetensors_input(std::span<const uint8_t> bytes) {
  const SafetensorsFile file = parse_safetensors(bytes, "fuzz.safetensors");
  std::vector<uint8_t> written;
  try {
    written = serialize_safetensors(file.tensors, file.metadata);
  } catch (const Error& e) {
    throw FuzzFinding(std::string("the writer refuses what the reader accepted: ") + e.what());
  }
  const SafetensorsFile again = parse_safetensors(written, "rewritten.safetensors");
  if (again.metadata != file.metadata) throw FuzzFinding("metadata changed through write and re-read");
  if (again.tensors.size() != file.tensors.size()) throw FuzzFinding("tensor count changed through write and re-read");
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    if (again.tensors[i].first != file.tensors[i].first)
      throw FuzzFinding("tensor order changed through write and re-read: '" + file.tensors[i].first + "' became '" +
                        again.tensors[i].first + "'");
    if (!same_stored_tensor(again.tensors[i].second, file.tensors[i].second))
      throw FuzzFinding("tensor '" + file.tensors[i].first + "' changed through write and re-read");
  }
  if (serialize_safetensors(again.tensors, again.metadata) != written)
    throw FuzzFinding("writing the re-read file gave different bytes");
}

// ---- IDX ----

// read_idx_from_memory, as images (3 dimensions) and as labels (1 dimension); accepted when either
// accepts. Accepted plain content must read the same when gzipped.
inline void idx_input(std::span<const uint8_t> bytes) {
  for (const int ndims : {3, 1}) {
    IdxArray array;
    try {
      array = read_idx_from_memory(bytes.data(), bytes.size(), "fuzz.idx", ndims);
    } catch (const Error&) {
      if (ndims == 1) throw;  // rejected both ways: report the labels reading's reason
      continue;
    }
    if (array.dims.size() != static_cast<size_t>(ndims) || static_cast<int64_t>(array.data.size()) != array.numel())
      throw FuzzFinding("an accepted IDX array's data does not match its dimensions");
    const bool gzipped = bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
    if (!gzipped) {
      const std::vector<uint8_t> gz = gzip_bytes(bytes);
      IdxArray from_gzip;
      try {
        from_gzip = read_idx_from_memory(gz.data(), gz.size(), "fuzz.idx.gz", ndims);
      } catch (const Error& e) {
        throw FuzzFinding(std::string("plain IDX accepted but its gzip rejected: ") + e.what());
      }
      if (from_gzip.dims != array.dims || from_gzip.data != array.data || from_gzip.type != array.type)
        throw FuzzFinding("plain IDX and its gzip read differently");
    }
    return;
  }
}

// ---- checkpoints ----

// The model every checkpoint seed belongs to: one Linear (its weight is what INQ quantizes) and a
// rank-0 buffer, which weights files store as I64 like torchvision's num_batches_tracked.
class FuzzModel final : public Module {
 public:
  FuzzModel() {
    fc = register_module("fc", std::make_shared<Linear>(LinearOptions{.in_features = 3, .out_features = 2}));
    count = register_buffer("count", Tensor::zeros({}));
  }
  Tensor forward(const Tensor& input) override { return fc->forward(input); }
  std::string type_name() const override { return "FuzzModel"; }

  std::shared_ptr<Linear> fc;
  Tensor count;  // rank 0
};

// `inq quantize --resume` / `inq train --resume` on a checkpoint, as Trainer::load_checkpoint does it:
// the weights into the model, then the optimizer state (momentum and INQ masks) into the optimizer
// the checkpoint's configuration describes, then the training state.
inline void resume_from(const SafetensorsFile& file, const CheckpointContents& contents) {
  FuzzModel model;
  load_model_weights(file, model);
  const TrainConfig& config = contents.config;
  auto groups = make_param_groups(model.named_parameters(), config.optim.weight_decay,
                                  DecayGroupOptions{.decay_bias = config.optim.decay_norm_and_bias,
                                                    .decay_norm = config.optim.decay_norm_and_bias});
  const SgdOptions sgd{.lr = config.optim.lr, .momentum = config.optim.momentum, .dampening = 0, .nesterov = config.optim.nesterov};
  INQ_CHECK(contents.inq_state.empty() == (config.inq.bits <= 0),
            "Given checkpoint '{}', expected INQ state exactly when its configuration is an INQ run", file.source);
  int inq_steps_begun = 0;
  if (config.inq.bits > 0) {
    const InqOptions options{.bits = config.inq.bits,
                             .portions = config.inq.portions,
                             .strategy = parse_partition_strategy(config.inq.strategy),
                             .seed = config.run.seed,
                             .exclude = config.inq.exclude};
    InqSgd optimizer(std::move(groups), sgd, options);
    optimizer.load_state(optimizer_state_tensors(file), contents.inq_state);
    inq_steps_begun = optimizer.steps_begun();
  } else {
    Sgd optimizer(std::move(groups), sgd);
    load_optimizer_state(file, optimizer);
  }
  const TrainingProgress progress = read_training_progress(contents, file.source, inq_steps_begun);
  Generator generator;
  generator.set_state(progress.generator);
}

// What the project does with an untrusted checkpoint, packed model or weights file. A file without a
// "format" key is a plain weights file (--weights): only its weights are loaded. A packed model is
// decoded and loaded. A checkpoint goes through
// --resume (resume_from) and, when it holds INQ state, through `inq verify`, which reads only the
// metadata and the tensors it names. The two are independent consumers, so a rejection by one does
// not keep the fuzzer from reaching the other.
inline void checkpoint_input(std::span<const uint8_t> bytes) {
  const SafetensorsFile file = parse_safetensors(bytes, "fuzz-checkpoint.safetensors");
  if (file.metadata.count("format") == 0) {
    FuzzModel model;
    load_model_weights(file, model);
    return;
  }
  if (is_packed_model(file)) {
    // `inq pack`'s output, as `inq unpack`, `inq verify` and --weights read it. A packed tensor that
    // decodes must encode back to the same stored bytes in its own layout (the code of each value is
    // unique, and each fixed-width layout has one spelling: fillers only where a gap overflows). A
    // Huffman table is any valid prefix code, so there the encoder's own table must decode to the
    // same codes instead.
    const UnpackedModel unpacked = unpack_model(file);
    const CheckedPackedModel checked = check_packed_model(file);
    for (const auto& [name, t] : unpacked.weights.tensors) {
      auto cb = unpacked.codebooks.find(name);
      if (cb == unpacked.codebooks.end()) continue;
      const int bits = cb->second.bits;
      const std::vector<uint8_t> dense = pack_tensor(name, t.f32, cb->second).codes;
      const TensorEncoding& e = checked.quantized.at(name).encoding;
      const EncodedCodes again = encode_codes_as(dense_code_values(dense, t.f32.numel(), bits), bits, e.layout,
                                                 e.huffman, e.gap_bits);
      if (!(again.encoding == e))
        throw FuzzFinding("a decoded packed tensor re-encodes with other counts than its entry's");
      if (!e.huffman && again.bytes != file.find(name)->u8)
        throw FuzzFinding("a decoded packed tensor does not encode back to its stored bytes");
      if (decode_to_dense(name, t.f32.numel(), bits, e, again.bytes) != dense)
        throw FuzzFinding("a re-encoded packed tensor does not decode to its codes");
    }
    FuzzModel model;
    load_model_weights(file, model);
    return;
  }
  const CheckpointContents contents = read_checkpoint_info(file);
  std::optional<Error> verify_rejection;
  if (!contents.inq_state.empty()) {
    try {
      const QuantizedTensors quantized = read_quantized_tensors(file, contents);
      verify_quantized(quantized.tensors, quantized.codebooks);
    } catch (const Error& e) {
      verify_rejection = e;
    }
  }
  resume_from(file, contents);
  if (verify_rejection) throw *verify_rejection;
}

// ---- CIFAR-10 records ----

// parse_cifar10_records: an accepted file holds N whole records, N labels below 10 and N 3x32x32
// images.
inline void cifar10_input(std::span<const uint8_t> bytes) {
  const Cifar10Records records = parse_cifar10_records(bytes.data(), bytes.size(), "<fuzz input>");
  const size_t n = bytes.size() / static_cast<size_t>(kCifar10RecordBytes);
  if (records.labels.size() != n || records.pixels.size() != n * 3 * 32 * 32)
    throw FuzzFinding("accepted CIFAR-10 records do not match the file size");
  for (const uint8_t label : records.labels)
    if (label >= 10) throw FuzzFinding("an accepted CIFAR-10 record has a label >= 10");
}

// ---- image decoding (JPEG, PNG through stb_image) ----

// Headers announcing more pixels than this are only checked, not decoded: a 4 KiB input can claim
// 64 Mi pixels, and decoding that many under the sanitizers takes longer than libFuzzer's timeout
// without exercising anything new (the decoder's size limits are in read_image_header).
inline constexpr int64_t kFuzzMaxDecodedPixels = int64_t{1} << 20;

// read_image_header, then decode_image: an accepted image has the header's size and H * W * 3 bytes.
inline void image_input(std::span<const uint8_t> bytes) {
  const ImageHeader header = read_image_header(bytes.data(), bytes.size(), "<fuzz input>");
  if (header.height * header.width > kFuzzMaxDecodedPixels) return;
  const RgbImage image = decode_image(bytes.data(), bytes.size(), "<fuzz input>");
  if (image.height != header.height || image.width != header.width)
    throw FuzzFinding("a decoded image's size differs from its header's");
  if (static_cast<int64_t>(image.pixels.size()) != image.height * image.width * 3)
    throw FuzzFinding("a decoded image's pixel buffer does not match its size");
}

// ---- the libFuzzer side ----

// Runs one input through `parse`: inq::Error is an expected rejection; anything else escaping is a
// finding, printed and turned into an abort so libFuzzer reports it and saves the input.
template <class Parse>
int run_one_input(Parse&& parse) {
  try {
    parse();
  } catch (const Error&) {
    // Rejected with the project's error: the behaviour we want for bad input.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FUZZ FINDING: %s escaped: %s\n", typeid(e).name(), e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "FUZZ FINDING: an exception of unknown type escaped\n");
    std::abort();
  }
  return 0;
}

}  // namespace inq::fuzz
