#pragma once
// Little-endian bit streams, least significant bit first, as every packed encoding uses them
// (docs/INQ_SPEC.md section 7): bit j of the stream is bit (j % 8) of byte j / 8. A field of w bits
// holding v occupies the next w bits, v's bit 0 first. Shared by the sparse encodings and the Huffman
// stage so the two agree on bit order by construction.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "framework/error.h"

namespace inq {

class BitWriter {
 public:
  // Appends the low `width` bits of `value` (width <= 32).
  void put(uint32_t value, int width) {
    acc_ |= static_cast<uint64_t>(value & mask(width)) << acc_bits_;
    acc_bits_ += width;
    while (acc_bits_ >= 8) {
      bytes_.push_back(static_cast<uint8_t>(acc_));
      acc_ >>= 8;
      acc_bits_ -= 8;
    }
  }
  // Appends `count` zero bits (a run of zero codes costs whole bytes at a time).
  void put_zeros(int64_t count) {
    while (count > 0 && acc_bits_ != 0) {
      put(0, 1);
      --count;
    }
    bytes_.insert(bytes_.end(), static_cast<size_t>(count / 8), 0);
    put(0, static_cast<int>(count % 8));
  }
  int64_t bit_count() const { return static_cast<int64_t>(bytes_.size()) * 8 + acc_bits_; }
  // The bytes, the last one padded with zero bits.
  std::vector<uint8_t> finish() {
    if (acc_bits_ > 0) bytes_.push_back(static_cast<uint8_t>(acc_));
    acc_ = 0;
    acc_bits_ = 0;
    return std::move(bytes_);
  }
  void reserve_bits(int64_t bits) { bytes_.reserve(static_cast<size_t>(bits / 8 + 1)); }

  static uint64_t mask(int width) { return width >= 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t acc_ = 0;
  int acc_bits_ = 0;
};

// Reads fields from a byte span starting at any bit. Reading past the end throws inq::Error with
// `what` (the file and tensor) and the field being read, so a truncated stream is refused by name.
class BitReader {
 public:
  BitReader(const uint8_t* data, size_t size, std::string what, int64_t start_bit = 0)
      : data_(data), size_bits_(static_cast<int64_t>(size) * 8), pos_(start_bit), what_(std::move(what)) {}

  uint32_t get(int width, const char* field) {
    need(width, field);
    const uint32_t v = peek(width);
    pos_ += width;
    return v;
  }
  // The next `width` (<= 32) bits without consuming them; bits past the end read as 0 (a caller that
  // then consumes them with skip is refused as truncated).
  uint32_t peek(int width) const {
    const int64_t byte = pos_ >> 3;
    const int64_t size_bytes = size_bits_ >> 3;
    uint64_t v = 0;
    for (int k = 0; k < 5 && byte + k < size_bytes; ++k) v |= static_cast<uint64_t>(data_[byte + k]) << (8 * k);
    return static_cast<uint32_t>((v >> (pos_ & 7)) & BitWriter::mask(width));
  }
  void skip(int width, const char* field) {
    need(width, field);
    pos_ += width;
  }
  uint32_t bit(const char* field) {
    need(1, field);
    const uint32_t v = (data_[pos_ >> 3] >> (pos_ & 7)) & 1u;
    ++pos_;
    return v;
  }
  int64_t position() const { return pos_; }
  void seek(int64_t bit) { pos_ = bit; }
  const std::string& what() const { return what_; }

  // After the last field: the rest of the last byte must be zero bits and no byte may follow.
  void expect_end() const {
    const int64_t used_bytes = (pos_ + 7) / 8;
    INQ_CHECK(used_bytes * 8 == size_bits_,
              "Given {}, expected its stream to end after {} bits ({} bytes), but it has {} bytes (trailing garbage)",
              what_, pos_, used_bytes, size_bits_ / 8);
    for (int64_t b = pos_; b < size_bits_; ++b)
      INQ_CHECK(((data_[b >> 3] >> (b & 7)) & 1) == 0,
                "Given {}, expected the padding bits after its last field to be 0", what_);
  }

 private:
  void need(int width, const char* field) const {
    INQ_CHECK(pos_ + width <= size_bits_,
              "Given {}, expected {} more bits for {} at bit {}, but the stream has only {} bits (truncated)", what_,
              width, field, pos_, size_bits_);
  }

  const uint8_t* data_;
  int64_t size_bits_;
  int64_t pos_;
  std::string what_;
};

}  // namespace inq
