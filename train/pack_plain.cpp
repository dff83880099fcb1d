#include "train/pack_plain.h"

#include <fmt/format.h>

#include <algorithm>

#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/safetensors.h"
#include "inq/codebook.h"
#include "inq/packed.h"
#include "models/registry.h"
#include "train/checkpoint.h"

namespace inq {

PackSummary pack_plain_weights(const std::string& weights, int bits, const std::string& arch, const std::string& out,
                               const PackOptions& options) {
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
  return pack_model(file, codebooks, arch, out, options);
}

}  // namespace inq
