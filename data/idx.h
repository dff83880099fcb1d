#pragma once
// A strict reader for IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
//
// Layout: magic `00 00 <type> <ndims>`, then ndims big-endian u32 dimensions, then the row-major
// data. The reader distrusts the file (docs/FORMATS_AND_RELIABILITY.md, "IDX") and throws
// inq::Error, naming the file and what was expected vs found, unless:
//   - the first two bytes are zero and the type byte is one it supports (0x08, unsigned byte;
//     the other IDX types are recognised by name and rejected),
//   - ndims equals what the caller expects (3 for images, 1 for labels),
//   - the declared payload product(dims) * element size fits the size cap (64-bit, overflow checked),
//   - the (decompressed) content is exactly 4 + 4 * ndims + payload bytes: no fewer, no more.
// Gzip is detected by its magic bytes 1f 8b, not by the file name. Plain files are size-checked
// against the header before the payload is allocated; gzip streams are inflated incrementally with
// the declared size as a cap, so a lying header or a decompression bomb never allocates more than
// the bytes that actually arrive (and never more than the cap). Concatenated gzip members are
// accepted (as gzip(1) does); anything else after the last member is an error, and every member's
// CRC is verified.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace inq {

// IDX element types (the third magic byte).
enum class IdxType : uint8_t {
  UInt8 = 0x08,
  Int8 = 0x09,
  Int16 = 0x0B,
  Int32 = 0x0C,
  Float32 = 0x0D,
  Float64 = 0x0E,
};

struct IdxArray {
  IdxType type = IdxType::UInt8;
  std::vector<uint32_t> dims;  // as stored, outermost first
  std::vector<uint8_t> data;   // row-major, product(dims) elements
  int64_t numel() const;       // product(dims); throws inq::Error if it overflows int64
};

// Largest payload read_idx accepts unless told otherwise (2 GiB; Fashion-MNIST's train images are
// 47 MB).
inline constexpr uint64_t kIdxDefaultMaxBytes = uint64_t{1} << 31;

// Reads and validates the IDX file at `path` (plain or gzip). `expected_ndims` must be in [1, 255].
IdxArray read_idx(const std::string& path, int expected_ndims, uint64_t max_bytes = kIdxDefaultMaxBytes);

// The same checks on bytes already in memory (plain or gzip); `name` stands in for the path in
// error messages. Meant for fuzz targets and tests.
IdxArray read_idx_from_memory(const uint8_t* bytes, size_t size, const std::string& name, int expected_ndims,
                              uint64_t max_bytes = kIdxDefaultMaxBytes);

// "0x08 (unsigned byte)", "0x07 (unknown)": for messages.
std::string idx_type_str(uint8_t type);

}  // namespace inq
