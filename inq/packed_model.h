#pragma once
// INQ packed models (INQ_SPEC.md section 7): the deployable form of a finished INQ run, a
// safetensors file in which every quantized tensor is stored as b-bit codes (inq/packed.h):
//   tensors   "<name>"  U8 of shape [bytes]: the codes of a quantized weight
//             "<name>"  F32 / I64: every other tensor of the model (biases, BatchNorm) as it was
//   metadata  "format" = "inq-packed", "format_version" = "1", "arch",
//             "quantized" = JSON {"<name>": {"shape": [...], "bits": b, "n1": n1, "n2": n2}, ...}
// Names are the model's own (torchvision's), without a checkpoint's "model." prefix. Unpacking
// gives the float model back bit for bit, so `inq eval` / `inq run` on a packed model give what
// they give on the checkpoint it came from; load_model_weights unpacks transparently.
#include <cstdint>
#include <map>
#include <string>

#include "framework/safetensors.h"
#include "inq/codebook.h"

namespace inq {

inline constexpr const char* kPackedFormat = "inq-packed";
inline constexpr int kPackedVersion = 1;

bool is_packed_model(const SafetensorsFile& file);

struct PackSummary {
  int64_t quantized_tensors = 0;
  int64_t quantized_weights = 0;
  int64_t code_bytes = 0;        // the quantized tensors' codes
  int64_t code_float_bytes = 0;  // the same tensors in float32
  int64_t file_bytes = 0;        // the packed file
  int64_t float_file_bytes = 0;  // the unpacked weights file (every tensor float32 / int64)
};

// Packs `model` (a plain weights file: every tensor F32 or I64, named as the model names them) into
// `out`, atomically: each tensor `codebooks` names as b-bit codes (every value must be 0 or +-2^k in
// its codebook), the rest as they are. The packed bytes are decoded and compared with `model` bit for
// bit before anything is written. Throws inq::Error naming model.source otherwise.
PackSummary pack_model(const SafetensorsFile& model, const std::map<std::string, Codebook>& codebooks,
                       const std::string& arch, const std::string& out);

struct UnpackedModel {
  std::string arch;
  SafetensorsFile weights;                    // a plain weights file: every tensor F32 (or I64)
  std::map<std::string, Codebook> codebooks;  // of the tensors that were packed
  int64_t quantized_weights = 0;
};

// Decodes a packed model. Throws inq::Error naming the file for anything that is not exactly the
// format above: metadata, a quantized tensor whose entry is missing or not U8 of the right byte
// count, a U8 tensor the metadata does not name, an invalid codebook or code, non-zero padding.
UnpackedModel unpack_model(const SafetensorsFile& packed);

}  // namespace inq
