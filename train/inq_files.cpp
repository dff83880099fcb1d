#include "train/inq_files.h"

#include <fmt/format.h>

#include <algorithm>

#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"
#include "inq/inq_state.h"
#include "inq/packed.h"
#include "models/registry.h"
#include "train/checkpoint.h"

namespace inq {

PackSummary pack_checkpoint(const std::string& checkpoint, const std::string& out) {
  check_output_is_not_input("-o/--output", out, {{"checkpoint", checkpoint}});
  const SafetensorsFile file = read_safetensors(checkpoint);
  const CheckpointContents contents = read_checkpoint_info(file);
  const QuantizedTensors quantized = read_quantized_tensors(file, contents);
  INQ_CHECK(quantized.float_entries == 0,
            "Given '{}', expected a finished INQ run (every quantized weight frozen), but {} weights are still "
            "trained in float; pack its final.safetensors", checkpoint, quantized.float_entries);
  return pack_model(checkpoint_model_tensors(file), quantized.codebooks, contents.arch, out);
}

PackSummary pack_plain_weights(const std::string& weights, int bits, const std::string& arch, const std::string& out) {
  check_output_is_not_input("-o/--output", out, {{"weights", weights}});
  const auto known = available_models();
  INQ_CHECK(std::find(known.begin(), known.end(), arch) != known.end(), "Given --arch '{}', expected one of: {}", arch,
            fmt::join(known, ", "));
  const SafetensorsFile file = read_safetensors(weights);
  INQ_CHECK(!is_packed_model(file), "Given '{}', expected a weights file to pack, but it is already a packed model",
            weights);
  const auto format = file.metadata.find("format");
  INQ_CHECK(format == file.metadata.end() || format->second != kCheckpointFormat,
            "Given '{}' with --bits {}, expected a plain weights file: it is a checkpoint, whose INQ state records "
            "each tensor's bit-width; pack it without --bits and --arch",
            weights, bits);
  std::map<std::string, Codebook> codebooks;
  for (const auto& [name, t] : file.tensors) {
    const bool weight = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
    if (t.dtype != StoredDtype::F32 || t.shape.size() < 2 || !weight) continue;
    try {
      const Codebook cb = make_codebook(t.f32, bits, name);  // refuses NaN and Inf, naming the index
      // Refuses the first value outside the codebook, naming the tensor, its index and the value.
      (void)pack_tensor(name, t.f32, cb);
      codebooks.emplace(name, cb);
    } catch (const Error& e) {
      throw Error(fmt::format("Given weights file '{}' with --bits {}: {} (its conv and linear weights must all be 0 or "
                              "+-2^k in the {}-bit codebook their max |w| implies)",
                              weights, bits, e.what(), bits));
    }
  }
  INQ_CHECK(!codebooks.empty(),
            "Given weights file '{}', expected conv or linear weights (F32 tensors of rank >= 2 named *weight) to "
            "pack, but found none",
            weights);
  return pack_model(file, codebooks, arch, out);
}

int verify_checkpoint(const std::string& path, std::FILE* out) {
  const SafetensorsFile file = read_safetensors(path);
  QuantizedTensors quantized;
  if (is_packed_model(file)) {
    // Decoding already refuses any code that is not 0 or +-2^k in range; the check below repeats it
    // on the decoded values.
    UnpackedModel model = unpack_model(file);  // refuses a checksum that does not match
    if (model.checksum.empty()) {
      fmt::print(out, "{}: no checksum (packed model format version {}): re-pack it with inq pack to get one\n", path,
                 kPackedVersionWithoutChecksum);
    } else {
      fmt::print(out, "{}: checksum OK ({})\n", path, model.checksum);
    }
    for (auto& [name, t] : model.weights.tensors)
      if (model.codebooks.count(name)) quantized.tensors.emplace_back(name, t.f32);
    quantized.codebooks = std::move(model.codebooks);
  } else {
    quantized = read_quantized_tensors(file, read_checkpoint_info(file));
  }
  int64_t weights = 0;
  for (const auto& [name, t] : quantized.tensors) weights += t.numel();
  const std::vector<OffendingWeight> bad = verify_quantized(quantized.tensors, quantized.codebooks);
  if (bad.empty()) {
    fmt::print(out, "{}: OK: {} quantized tensors ({} weights): every quantized weight is 0 or +-2^k with n2 <= k <= n1\n",
               path, quantized.tensors.size(), weights);
    return 0;
  }
  fmt::print(out, "{}: FAILED: {} weights are not in their tensor's codebook\n", path, bad.size());
  for (size_t i = 0; i < std::min<size_t>(bad.size(), 20); ++i) {
    const Codebook& cb = quantized.codebooks.at(bad[i].name);
    fmt::print(out, "  {}[{}] = {:.9g} (codebook: 0, +-2^k for k in [{}, {}])\n", bad[i].name, bad[i].index,
               bad[i].value, cb.n2, cb.n1);
  }
  return kVerifyFailed;
}

}  // namespace inq
