#pragma once
// The entropy-coding stage of packed models (docs/INQ_SPEC.md section 7, "Huffman"): a canonical,
// length-limited Huffman code over one alphabet of 2^w symbols (the b-bit codes, or the gap values).
//
// Stored as: a table of 2^w code lengths, kHuffmanLengthBits bits each, symbol 0 first (0 = the
// symbol does not occur), then the symbols' codes. Codes are assigned canonically (deflate's rule:
// shorter codes first, equal lengths in symbol order), so the lengths alone define the code, and each
// code is written most significant bit first into the LSB-first bit stream (inq/bitstream.h), so a
// decoder can walk it one bit at a time. A valid table is a complete prefix code (Kraft sum exactly 1),
// or a single symbol of length 1 (code 0); anything else is refused.
#include <cstdint>
#include <vector>

#include "inq/bitstream.h"

namespace inq {

// Longest code: bounded so a length fits the table's field and a decoder's loop is short. (D)
inline constexpr int kHuffmanMaxLength = 24;
inline constexpr int kHuffmanLengthBits = 5;

// Code lengths for symbol counts (one per symbol of the alphabet): Huffman's, except that when the
// longest would exceed kHuffmanMaxLength the counts are halved (rounding up, never to 0) and the code
// rebuilt until it fits. A symbol that never occurs gets 0; a single occurring symbol gets 1.
std::vector<uint8_t> huffman_code_lengths(const std::vector<uint64_t>& counts);

// Bits of a whole Huffman section for these counts: the table plus every symbol's code.
int64_t huffman_section_bits(const std::vector<uint64_t>& counts);

class HuffmanEncoder {
 public:
  explicit HuffmanEncoder(std::vector<uint8_t> lengths);
  void write_table(BitWriter& out) const;
  void put(BitWriter& out, uint32_t symbol) const { out.put(reversed_[symbol], lengths_[symbol]); }

 private:
  std::vector<uint8_t> lengths_;
  std::vector<uint32_t> reversed_;  // each code bit-reversed, so BitWriter::put writes its MSB first
};

class HuffmanDecoder {
 public:
  // Reads a table of 2^alphabet_bits lengths from `in` and checks that it is a valid prefix code, and
  // that it has a symbol when `symbols` (how many will be decoded) is not 0. Throws inq::Error
  // naming in.what() and `field` otherwise.
  static HuffmanDecoder read(BitReader& in, int alphabet_bits, const char* field, int64_t symbols);
  uint32_t get(BitReader& in) const;

 private:
  // Codes of at most kFastBits bits are decoded by one lookup of the next kFastBits stream bits:
  // entry = symbol << 5 | length, 0 where a longer code starts (decoded bit by bit instead).
  static constexpr int kFastBits = 10;
  std::vector<uint32_t> fast_;
  const char* field_ = "";
  int count_[kHuffmanMaxLength + 1] = {};  // codes of each length
  std::vector<uint32_t> sorted_;           // symbols by (length, symbol): the canonical order
  bool single_ = false;                    // one symbol of length 1: only the bit 0 is a code
};

}  // namespace inq
