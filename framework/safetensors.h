#pragma once
// safetensors: the weights and checkpoint container (https://github.com/huggingface/safetensors).
// Layout: an 8-byte little-endian u64 header length N; N bytes of UTF-8 JSON; one data buffer.
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the start of the buffer) and may hold "__metadata__", a string -> string object.
//
// The reader is strict (docs/FORMATS_AND_RELIABILITY.md): before anything large is allocated it
// rejects N > 100,000,000 or N > file size - 8, invalid UTF-8 or JSON, duplicate names (at any
// level of the header), unknown dtypes, shapes with negative, non-integer or overflowing
// dimensions, entries whose byte size is not numel * element size, offsets that leave gaps or
// overlap, and a buffer that does not end exactly at the end of the file. Every error is an
// inq::Error naming the file (or the in-memory source) and what was wrong.
//
// The writer pads the header with spaces to a multiple of 8, packs tensors contiguously in the
// given order, writes to a temporary file in the target's directory, fsyncs it and renames it over
// the target, so a failed write never destroys an existing file.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "framework/tensor.h"

namespace inq {

// The element types this project stores. I64 exists for torchvision's BatchNorm
// `num_batches_tracked` (rank 0) and stays integer in the file; U8 holds the bit-packed codes of an
// INQ packed model (inq/packed.h).
enum class StoredDtype { F32, I64, U8 };

// "F32" / "I64" / "U8", as spelled in the header.
const char* stored_dtype_name(StoredDtype dtype);
int64_t stored_dtype_size(StoredDtype dtype);  // bytes per element

// One tensor as it is (or will be) stored. Exactly one of `f32` / `i64` / `u8` holds the values.
struct StoredTensor {
  StoredDtype dtype = StoredDtype::F32;
  Shape shape;               // rank 0 (a scalar) and zero-sized dims are valid
  Tensor f32;                // F32 only: the values, with shape `shape`
  std::vector<int64_t> i64;  // I64 only: the values, row-major, numel of them
  std::vector<uint8_t> u8;   // U8 only: the values, row-major, numel of them

  // F32 entry that aliases `t` (no copy).
  static StoredTensor from_tensor(const Tensor& t);
  static StoredTensor from_int64(const Shape& shape, std::vector<int64_t> values);
  static StoredTensor from_uint8(const Shape& shape, std::vector<uint8_t> values);
  int64_t numel() const;
  // Checks that the values match dtype and shape; `name` is used in the message.
  void validate(const std::string& name) const;
};

using StoredTensors = std::vector<std::pair<std::string, StoredTensor>>;

struct SafetensorsFile {
  std::string source;                           // file path (or the name given to the parser)
  std::map<std::string, std::string> metadata;  // the header's __metadata__ (may be empty)
  StoredTensors tensors;                        // ordered by position in the data buffer

  // nullptr when absent.
  const StoredTensor* find(const std::string& name) const;
};

// The reader's limit on the header length N, in bytes.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Reads and validates a file; see the contract at the top.
SafetensorsFile read_safetensors(const std::string& path);
// Same rules on a complete file image held in memory (for tests and fuzzing). `source` names it in
// error messages.
SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, const std::string& source = "<memory>");

// The exact bytes write_safetensors would put in the file. Names must be unique, valid UTF-8 and
// not "__metadata__"; metadata keys and values must be valid UTF-8.
std::vector<uint8_t> serialize_safetensors(const StoredTensors& tensors,
                                           const std::map<std::string, std::string>& metadata = {});
// Writes atomically: temp file in the same directory, fsync, rename over `path`. Throws (and leaves
// any existing file at `path` untouched) on failure.
void write_safetensors(const std::string& path, const StoredTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// Convenience for float-only contents (every tensor stored as F32).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace inq
