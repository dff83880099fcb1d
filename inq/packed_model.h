#pragma once
// INQ packed models (docs/INQ_SPEC.md section 7): the deployable form of a finished INQ run, a
// safetensors file in which every quantized tensor is stored as b-bit codes (inq/packed.h), laid out
// densely, sparsely (gaps or bitmap) and optionally Huffman-coded (inq/sparse_codes.h):
//   tensors   "<name>"  U8 of shape [bytes]: the stored codes of a quantized weight
//             "<name>"  F32 / I64: every other tensor of the model (biases, BatchNorm) as it was
//   metadata  "format" = "inq-packed", "format_version" = "3", "arch",
//             "quantized" = JSON {"<name>": {"shape": [...], "bits": b, "n1": n1, "n2": n2,
//                 "encoding": "dense" | "gaps" | "bitmap", "entropy": "none" | "huffman",
//                 gaps and bitmap: "nonzeros": K, gaps: "gap_bits": g, "entries": E}, ...},
//             "checksum" = "crc32:<8 hex digits>" (packed_model_checksum: every tensor's bytes and
//             the canonical metadata: arch, names, dtypes, shapes, bits, n1, n2, the encoding fields)
// Version 2 files (always dense, no encoding fields) load as before; version 1 files (no checksum)
// still load, with a warning line on stderr (D: docs/INQ_SPEC.md section 7).
// Names are the model's own (torchvision's), without a checkpoint's "model." prefix. Unpacking
// gives the float model back bit for bit, so `inq eval` / `inq run` on a packed model give what
// they give on the checkpoint it came from; load_model_weights unpacks transparently, and
// inq/packed_inference.h runs a packed model from its codes without unpacking.
#include <cstdint>
#include <map>
#include <string>

#include "framework/safetensors.h"
#include "inq/codebook.h"
#include "inq/sparse_codes.h"

namespace inq {

inline constexpr const char* kPackedFormat = "inq-packed";
inline constexpr int kPackedVersion = 3;
// The last version without the encoding fields: every tensor dense.
inline constexpr int kPackedVersionDense = 2;
// The version before the checksum: accepted with a warning (docs/INQ_SPEC.md section 7, D).
inline constexpr int kPackedVersionWithoutChecksum = 1;

bool is_packed_model(const SafetensorsFile& file);

struct PackSummary {
  int64_t quantized_tensors = 0;
  int64_t quantized_weights = 0;
  int64_t code_bytes = 0;        // the quantized tensors as stored (dense, sparse or entropy-coded)
  int64_t code_float_bytes = 0;  // the same tensors in float32
  int64_t file_bytes = 0;        // the packed file
  int64_t float_file_bytes = 0;  // the unpacked weights file (every tensor float32 / int64)
  int64_t sparse_tensors = 0;    // quantized tensors stored as gaps or bitmap
  int64_t entropy_tensors = 0;   // quantized tensors whose codes (and gaps) are Huffman-coded
};

// How pack_model stores the quantized tensors: each in the smallest layout these allow
// (inq/sparse_codes.h: encode_codes).
struct PackOptions {
  bool sparse = true;           // store a tensor sparsely (gaps or bitmap) when that is smaller
  bool entropy_coding = false;  // also consider Huffman-coding the codes and gaps
};

// Packs `model` (a plain weights file: every tensor F32 or I64, named as the model names them) into
// `out`, atomically: each tensor `codebooks` names as b-bit codes (every value must be 0 or +-2^k in
// its codebook), the rest as they are. The packed bytes are decoded and compared with `model` bit for
// bit before anything is written. Throws inq::Error naming model.source otherwise.
PackSummary pack_model(const SafetensorsFile& model, const std::map<std::string, Codebook>& codebooks,
                       const std::string& arch, const std::string& out, const PackOptions& options = {});

// What a packed tensor's "quantized" entry says.
struct PackedLayout {
  Shape shape;
  Codebook codebook;
  TensorEncoding encoding;    // dense, fixed-width for a version 1 or 2 file
  bool has_encoding = true;   // the entry has the version 3 encoding fields (the checksum covers them)
};

// The dense layout of a quantized tensor's stored bytes (what unpack_tensor and the packed kernels
// read), decoded per its entry. Throws inq::Error naming the file `path` and the tensor.
std::vector<uint8_t> dense_codes(const std::string& path, const std::string& name, const PackedLayout& layout,
                                 std::vector<uint8_t> stored);

// The checksum stored in a packed model's "checksum" metadata: "crc32:" and 8 lowercase hex digits
// of zlib's CRC-32 over the canonical bytes (docs/INQ_SPEC.md section 7): "inq-packed\0", arch, "\0";
// then, for every tensor in name (byte) order, its name, "\0", a description, "\0", and its data
// bytes as stored (little-endian): the description is "codes <shape> bits <b> n1 <n1> n2 <n2>" for
// a tensor `quantized` names (for a version 3 entry followed by " encoding <layout> entropy <none|huffman>",
// then " nonzeros <K>" for gaps and bitmap, then " gap_bits <g> entries <E>" for gaps), "<dtype> <shape>" (F32, I64 or U8) for any other, a shape written
// as its dimensions joined by ',' in brackets, e.g. "[6,1,5,5]".
std::string packed_model_checksum(const StoredTensors& tensors, const std::string& arch,
                                  const std::map<std::string, PackedLayout>& quantized);
// The same for a packed model as read, from its "arch" and "quantized" metadata (for tools and
// tests that rewrite a packed file on purpose). Throws inq::Error naming the file when the metadata
// is malformed.
std::string packed_model_checksum(const SafetensorsFile& packed);

// A packed model whose metadata and checksum have been checked, its codes not yet decoded: what
// unpack_model and the packed inference path (inq/packed_inference.h) share. Throws inq::Error
// naming the file for anything unpack_model refuses except an invalid code or non-zero padding
// (those are found when the codes are read).
struct CheckedPackedModel {
  std::string arch;
  std::string checksum;                          // empty for a version 1 file
  std::map<std::string, PackedLayout> quantized;  // every tensor stored as codes
};
CheckedPackedModel check_packed_model(const SafetensorsFile& packed);

struct UnpackedModel {
  std::string arch;
  std::string checksum;  // the verified "checksum"; empty for a version 1 file (none)
  SafetensorsFile weights;                    // a plain weights file: every tensor F32 (or I64)
  std::map<std::string, Codebook> codebooks;  // of the tensors that were packed
  int64_t quantized_weights = 0;
};

// Decodes a packed model. Throws inq::Error naming the file for anything that is not exactly the
// format above: metadata, a quantized tensor whose entry is missing or not U8 of the right byte
// count, a U8 tensor the metadata does not name, an invalid codebook or code, non-zero padding, a
// missing or wrong checksum (version 2). A version 1 file loads with a warning on stderr.
UnpackedModel unpack_model(const SafetensorsFile& packed);

}  // namespace inq
