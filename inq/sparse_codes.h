#pragma once
// How a packed model stores one quantized tensor's codes (format version 3, docs/INQ_SPEC.md
// section 7). The codes themselves are those of inq/packed.h (one b-bit code per weight, 0 = zero);
// what varies is how the sequence of codes is laid out:
//
//   dense    every code, b bits each (the version 2 layout, unchanged)
//   gaps     the non-zero codes with their positions as relative gaps (Deep Compression's format):
//            entries of (gap, code), gap = zeros skipped since the previous entry, in gap_bits bits;
//            a run of zeros longer than 2^gap_bits - 1 is bridged by filler entries (gap all ones,
//            code 0), each standing for one zero weight. Zeros after the last non-zero are implied.
//   bitmap   one bit per weight (1 = non-zero), then the non-zero codes in order
//
// and, optionally, the codes and the gaps are Huffman-coded (inq/huffman.h) instead of fixed-width.
// The writer computes the exact size of every allowed layout (each gap width 1..16 included) and keeps
// the smallest. Every stream is an LSB-first bit stream (inq/bitstream.h) padded with zero bits to a byte.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace inq {

enum class CodeLayout { Dense, Gaps, Bitmap };

inline constexpr int kMinGapBits = 1;
inline constexpr int kMaxGapBits = 16;
// The most weights a gaps or bitmap tensor may have (D): a gaps stream of a few bytes may describe any
// number of zeros, so this bounds what a small (or hostile) file can make a reader allocate. Larger
// tensors (none in the paper's models: VGG-16's fc6 has 2^26.6) are written dense.
inline constexpr int64_t kMaxSparseWeights = int64_t{1} << 28;

struct TensorEncoding {
  CodeLayout layout = CodeLayout::Dense;
  bool huffman = false;
  int gap_bits = 0;      // gaps: kMinGapBits..kMaxGapBits; 0 otherwise
  int64_t nonzeros = 0;  // gaps and bitmap: the non-zero codes
  int64_t entries = 0;   // gaps: the non-zero codes plus the fillers

  bool operator==(const TensorEncoding&) const = default;
};

const char* layout_name(CodeLayout layout);  // "dense", "gaps", "bitmap"
std::optional<CodeLayout> parse_layout_name(const std::string& name);

// A tensor's codes as stored, and how.
struct EncodedCodes {
  TensorEncoding encoding;
  std::vector<uint8_t> bytes;
};

// The code of each weight, read from the dense layout (ceil(numel * bits / 8) bytes; not checked
// beyond its size: the writer calls it on what pack_tensor produced).
std::vector<uint16_t> dense_code_values(const std::vector<uint8_t>& dense, int64_t numel, int bits);

// The exact byte count of `codes` in one layout (gap_bits only for gaps), without encoding them.
int64_t encoded_size(const std::vector<uint16_t>& codes, int bits, CodeLayout layout, bool huffman, int gap_bits = 0);
// `codes` in one layout.
EncodedCodes encode_codes_as(const std::vector<uint16_t>& codes, int bits, CodeLayout layout, bool huffman,
                             int gap_bits = 0);

// The smallest allowed layout: dense always; gaps (every width) and bitmap when `sparse` and the
// tensor has at most kMaxSparseWeights weights; each also Huffman-coded when `entropy`. Ties keep the
// first of dense, gaps (narrowest), bitmap, fixed-width before Huffman.
EncodedCodes encode_codes(const std::vector<uint16_t>& codes, int bits, bool sparse, bool entropy);

// The dense layout of a stored tensor (ceil(numel * bits / 8) bytes), for the existing code decoders
// (unpack_tensor, PackedMatrix::from_packed), which check each code's meaning and the padding.
// Checks the stream's structure: its size (truncated, trailing bytes), padding, the Huffman tables,
// positions within numel, the filler rule, the count of non-zeros and entries. Throws inq::Error
// whose message starts with `what` (the file and tensor).
std::vector<uint8_t> decode_to_dense(const std::string& what, int64_t numel, int bits, const TensorEncoding& encoding,
                                     std::vector<uint8_t> stored);

}  // namespace inq
