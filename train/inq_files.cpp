#include "train/inq_files.h"

#include <fmt/format.h>

#include <algorithm>

#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"
#include "inq/inq_state.h"
#include "train/checkpoint.h"

namespace inq {

PackSummary pack_checkpoint(const std::string& checkpoint, const std::string& out, const PackOptions& options) {
  check_output_is_not_input("-o/--output", out, {{"checkpoint", checkpoint}});
  const SafetensorsFile file = read_safetensors(checkpoint);
  const CheckpointContents contents = read_checkpoint_info(file);
  const QuantizedTensors quantized = read_quantized_tensors(file, contents);
  INQ_CHECK(quantized.float_entries == 0,
            "Given '{}', expected a finished INQ run (every quantized weight frozen), but {} weights are still "
            "trained in float; pack its final.safetensors", checkpoint, quantized.float_entries);
  return pack_model(checkpoint_model_tensors(file), quantized.codebooks, contents.arch, out, options);
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
    const CheckpointContents contents = read_checkpoint_info(file);
    // Pruned positions first: a pruning run's checkpoint has nothing else to verify.
    const PrunedPositions pruned = read_pruned_positions(file);
    const bool pruned_ok = pruned.nonzero.empty();
    if (pruned.tensors > 0 && pruned_ok)
      fmt::print(out, "{}: pruned positions OK: all {} pruned weights of {} tensors are 0\n", path, pruned.pruned,
                 pruned.tensors);
    if (!pruned_ok) {
      fmt::print(out, "{}: FAILED: {} pruned weights are not 0\n", path, pruned.nonzero.size());
      for (size_t i = 0; i < std::min<size_t>(pruned.nonzero.size(), 20); ++i)
        fmt::print(out, "  {}[{}] is pruned but not 0\n", pruned.nonzero[i].first, pruned.nonzero[i].second);
    }
    if (contents.inq_state.empty() && !contents.prune_state.empty()) return pruned_ok ? 0 : kVerifyFailed;
    quantized = read_quantized_tensors(file, contents);
    if (!pruned_ok) return kVerifyFailed;
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
