#include "inq/sparse_codes.h"

#include "framework/error.h"
#include "inq/bitstream.h"
#include "inq/huffman.h"
#include "inq/packed.h"

namespace inq {

namespace {

int64_t bytes_of_bits(int64_t bits) { return bits / 8 + (bits % 8 != 0 ? 1 : 0); }

// What every layout's size is computed from: the non-zero codes, the zeros before each, and symbol counts.
struct CodeStats {
  int64_t numel = 0;
  int bits = 0;
  std::vector<int64_t> gaps;        // zeros between a non-zero and the one before it (or the start)
  std::vector<uint16_t> nonzero;    // the non-zero codes, in order
  std::vector<uint64_t> all_count;  // how often each code occurs among all weights
  std::vector<uint64_t> nonzero_count;
};

CodeStats code_stats(const std::vector<uint16_t>& codes, int bits) {
  CodeStats s;
  s.numel = static_cast<int64_t>(codes.size());
  s.bits = bits;
  s.all_count.assign(size_t{1} << bits, 0);
  int64_t next = 0;  // first position after the previous non-zero
  for (int64_t i = 0; i < s.numel; ++i) {
    const uint16_t c = codes[static_cast<size_t>(i)];
    s.all_count[c] += 1;
    if (c == 0) continue;
    s.gaps.push_back(i - next);
    s.nonzero.push_back(c);
    next = i + 1;
  }
  s.nonzero_count = s.all_count;
  s.nonzero_count[0] = 0;
  return s;
}

// The filler rule: a gap G takes G >> g fillers (each consumes 2^g positions: 2^g - 1 skipped zeros
// and the zero it stands on), then one entry with gap G & (2^g - 1).
int64_t filler_count(const CodeStats& s, int g) {
  int64_t fillers = 0;
  for (int64_t gap : s.gaps) fillers += gap >> g;
  return fillers;
}

// Symbol counts of the gap field and of the code field of the gaps layout at width g.
void gap_symbol_counts(const CodeStats& s, int g, std::vector<uint64_t>* gap_count, std::vector<uint64_t>* code_count) {
  const int64_t full = (int64_t{1} << g) - 1;
  gap_count->assign(size_t{1} << g, 0);
  *code_count = s.nonzero_count;
  for (int64_t gap : s.gaps) {
    (*gap_count)[static_cast<size_t>(full)] += static_cast<uint64_t>(gap >> g);
    (*code_count)[0] += static_cast<uint64_t>(gap >> g);
    (*gap_count)[static_cast<size_t>(gap & full)] += 1;
  }
}

int64_t size_of(const CodeStats& s, CodeLayout layout, bool huffman, int g) {
  const int b = s.bits;
  const auto nnz = static_cast<int64_t>(s.nonzero.size());
  switch (layout) {
    case CodeLayout::Dense:
      return huffman ? bytes_of_bits(huffman_section_bits(s.all_count)) : packed_bytes(s.numel, b);
    case CodeLayout::Gaps: {
      INQ_CHECK(g >= kMinGapBits && g <= kMaxGapBits, "Given gap width {}, expected {}..{}", g, kMinGapBits,
                kMaxGapBits);
      if (!huffman) return bytes_of_bits((nnz + filler_count(s, g)) * (g + b));
      std::vector<uint64_t> gap_count, code_count;
      gap_symbol_counts(s, g, &gap_count, &code_count);
      return bytes_of_bits(huffman_section_bits(gap_count) + huffman_section_bits(code_count));
    }
    case CodeLayout::Bitmap:
      return bytes_of_bits(s.numel + (huffman ? huffman_section_bits(s.nonzero_count) : nnz * b));
  }
  return 0;
}

EncodedCodes encode(const CodeStats& s, CodeLayout layout, bool huffman, int g) {
  const int b = s.bits;
  EncodedCodes out;
  out.encoding.layout = layout;
  out.encoding.huffman = huffman;
  BitWriter w;
  std::optional<HuffmanEncoder> code_huffman;
  auto put_code = [&](uint32_t c) {
    if (code_huffman) code_huffman->put(w, c);
    else w.put(c, b);
  };
  switch (layout) {
    case CodeLayout::Dense: {
      if (huffman) {
        code_huffman.emplace(huffman_code_lengths(s.all_count));
        code_huffman->write_table(w);
      }
      int64_t next = 0;
      for (size_t i = 0; i < s.nonzero.size(); ++i) {
        const int64_t at = next + s.gaps[i];
        for (; next < at; ++next) put_code(0);
        put_code(s.nonzero[i]);
        ++next;
      }
      for (; next < s.numel; ++next) put_code(0);
      break;
    }
    case CodeLayout::Gaps: {
      INQ_CHECK(g >= kMinGapBits && g <= kMaxGapBits, "Given gap width {}, expected {}..{}", g, kMinGapBits,
                kMaxGapBits);
      out.encoding.gap_bits = g;
      out.encoding.nonzeros = static_cast<int64_t>(s.nonzero.size());
      out.encoding.entries = out.encoding.nonzeros + filler_count(s, g);
      std::optional<HuffmanEncoder> gap_huffman;
      if (huffman) {
        std::vector<uint64_t> gap_count, code_count;
        gap_symbol_counts(s, g, &gap_count, &code_count);
        gap_huffman.emplace(huffman_code_lengths(gap_count));
        code_huffman.emplace(huffman_code_lengths(code_count));
        gap_huffman->write_table(w);
        code_huffman->write_table(w);
      }
      const int64_t full = (int64_t{1} << g) - 1;
      auto put_entry = [&](int64_t gap, uint32_t code) {
        if (gap_huffman) gap_huffman->put(w, static_cast<uint32_t>(gap));
        else w.put(static_cast<uint32_t>(gap), g);
        put_code(code);
      };
      for (size_t i = 0; i < s.nonzero.size(); ++i) {
        for (int64_t k = 0; k < (s.gaps[i] >> g); ++k) put_entry(full, 0);
        put_entry(s.gaps[i] & full, s.nonzero[i]);
      }
      break;
    }
    case CodeLayout::Bitmap: {
      out.encoding.nonzeros = static_cast<int64_t>(s.nonzero.size());
      int64_t next = 0;
      for (size_t i = 0; i < s.nonzero.size(); ++i) {
        w.put_zeros(s.gaps[i]);
        w.put(1, 1);
        next += s.gaps[i] + 1;
      }
      w.put_zeros(s.numel - next);
      if (huffman) {
        code_huffman.emplace(huffman_code_lengths(s.nonzero_count));
        code_huffman->write_table(w);
      }
      for (uint16_t c : s.nonzero) put_code(c);
      break;
    }
  }
  out.bytes = w.finish();
  return out;
}

}  // namespace

const char* layout_name(CodeLayout layout) {
  switch (layout) {
    case CodeLayout::Dense: return "dense";
    case CodeLayout::Gaps: return "gaps";
    case CodeLayout::Bitmap: return "bitmap";
  }
  return "?";
}

std::optional<CodeLayout> parse_layout_name(const std::string& name) {
  for (CodeLayout l : {CodeLayout::Dense, CodeLayout::Gaps, CodeLayout::Bitmap})
    if (name == layout_name(l)) return l;
  return std::nullopt;
}

std::vector<uint16_t> dense_code_values(const std::vector<uint8_t>& dense, int64_t numel, int bits) {
  INQ_CHECK(static_cast<int64_t>(dense.size()) == packed_bytes(numel, bits),
            "Given {} codes of {} bits, expected {} bytes, but got {}", numel, bits, packed_bytes(numel, bits),
            dense.size());
  std::vector<uint16_t> codes(static_cast<size_t>(numel));
  BitReader r(dense.data(), dense.size(), "dense codes");
  for (auto& c : codes) c = static_cast<uint16_t>(r.get(bits, "code"));
  return codes;
}

int64_t encoded_size(const std::vector<uint16_t>& codes, int bits, CodeLayout layout, bool huffman, int gap_bits) {
  return size_of(code_stats(codes, bits), layout, huffman, gap_bits);
}

EncodedCodes encode_codes_as(const std::vector<uint16_t>& codes, int bits, CodeLayout layout, bool huffman,
                             int gap_bits) {
  return encode(code_stats(codes, bits), layout, huffman, gap_bits);
}

EncodedCodes encode_codes(const std::vector<uint16_t>& codes, int bits, bool sparse, bool entropy) {
  const CodeStats s = code_stats(codes, bits);
  struct Choice {
    CodeLayout layout;
    bool huffman;
    int g;
  };
  Choice best{CodeLayout::Dense, false, 0};
  int64_t best_size = size_of(s, best.layout, false, 0);
  auto consider = [&](CodeLayout layout, bool huffman, int g) {
    const int64_t size = size_of(s, layout, huffman, g);
    if (size < best_size) {
      best = {layout, huffman, g};
      best_size = size;
    }
  };
  const bool may_be_sparse = sparse && s.numel <= kMaxSparseWeights;
  for (bool huffman : {false, true}) {
    if (huffman && !entropy) break;
    if (huffman) consider(CodeLayout::Dense, true, 0);
    if (!may_be_sparse) continue;
    for (int g = kMinGapBits; g <= kMaxGapBits; ++g) consider(CodeLayout::Gaps, huffman, g);
    consider(CodeLayout::Bitmap, huffman, 0);
  }
  EncodedCodes out = encode(s, best.layout, best.huffman, best.g);
  INQ_CHECK(static_cast<int64_t>(out.bytes.size()) == best_size,
            "Given {} codes as {}, expected {} bytes as computed, but the encoder wrote {}", s.numel,
            layout_name(best.layout), best_size, out.bytes.size());
  return out;
}

std::vector<uint8_t> decode_to_dense(const std::string& what, int64_t numel, int bits, const TensorEncoding& e,
                                     std::vector<uint8_t> stored) {
  const int b = bits;
  INQ_CHECK(e.layout == CodeLayout::Dense || numel <= kMaxSparseWeights,
            "Given {}, expected at most {} weights in a {} tensor, but its shape has {}", what, kMaxSparseWeights,
            layout_name(e.layout), numel);
  if (e.layout == CodeLayout::Dense && !e.huffman) return stored;  // the version 2 layout as it is
  // Every Huffman code and every bitmap bit takes at least one bit, so a stream shorter than the
  // weights is truncated: refused before the output is allocated from the shape.
  INQ_CHECK(e.layout == CodeLayout::Gaps || numel <= static_cast<int64_t>(stored.size()) * 8,
            "Given {}, expected at least one bit per weight ({}) in its {} stream, but it has only {} bits "
            "(truncated)", what, numel, layout_name(e.layout), stored.size() * 8);
  BitReader r(stored.data(), stored.size(), what);
  BitWriter out;
  out.reserve_bits(numel * b);
  switch (e.layout) {
    case CodeLayout::Dense: {
      const HuffmanDecoder codes = HuffmanDecoder::read(r, b, "code", numel);
      for (int64_t i = 0; i < numel; ++i) out.put(codes.get(r), b);
      break;
    }
    case CodeLayout::Gaps: {
      const int g = e.gap_bits;
      std::optional<HuffmanDecoder> gap_huffman, code_huffman;
      if (e.huffman) {
        gap_huffman = HuffmanDecoder::read(r, g, "gap", e.entries);
        code_huffman = HuffmanDecoder::read(r, b, "code", e.entries);
      }
      const int64_t full = (int64_t{1} << g) - 1;
      int64_t next = 0;  // the first position not yet written
      int64_t nonzeros = 0;
      for (int64_t i = 0; i < e.entries; ++i) {
        const int64_t gap = gap_huffman ? gap_huffman->get(r) : r.get(g, "gap");
        const uint32_t code = code_huffman ? code_huffman->get(r) : r.get(b, "code");
        const int64_t at = next + gap;
        INQ_CHECK(at < numel, "Given {}, expected every position below its {} weights, but entry {} is at position "
                  "{}", what, numel, i, at);
        if (code == 0) {
          // A filler exists only to bridge a run of zeros too long for one gap: the writer emits one
          // exactly then, so any other zero entry is a malformed stream, not another spelling.
          INQ_CHECK(gap == full && i + 1 < e.entries,
                    "Given {}, expected a zero code only in a filler entry (gap {} followed by another entry), but "
                    "entry {} has code 0 with gap {}", what, full, i, gap);
        } else {
          out.put_zeros((at - next) * b);
          out.put(code, b);
          next = at + 1;
          ++nonzeros;
          continue;
        }
        out.put_zeros((at + 1 - next) * b);
        next = at + 1;
      }
      INQ_CHECK(nonzeros == e.nonzeros, "Given {}, expected {} non-zero codes as its metadata says, but its {} "
                "entries hold {}", what, e.nonzeros, e.entries, nonzeros);
      out.put_zeros((numel - next) * b);
      break;
    }
    case CodeLayout::Bitmap: {
      // The codes start after the bitmap (checked above to fit): read them with a second cursor
      // while walking the bitmap.
      BitReader codes_in(stored.data(), stored.size(), what, numel);
      std::optional<HuffmanDecoder> code_huffman;
      if (e.huffman) code_huffman = HuffmanDecoder::read(codes_in, b, "code", e.nonzeros);
      int64_t nonzeros = 0;
      for (int64_t i = 0; i < numel; ++i) {
        if (r.bit("bitmap") == 0) {
          out.put(0, b);
          continue;
        }
        INQ_CHECK(++nonzeros <= e.nonzeros, "Given {}, expected {} set bits in its bitmap as its metadata says, but "
                  "it has more", what, e.nonzeros);
        const uint32_t code = code_huffman ? code_huffman->get(codes_in) : codes_in.get(b, "code");
        INQ_CHECK(code != 0, "Given {}, expected a non-zero code for every set bit of its bitmap, but weight {} has "
                  "code 0", what, i);
        out.put(code, b);
      }
      INQ_CHECK(nonzeros == e.nonzeros, "Given {}, expected {} set bits in its bitmap as its metadata says, but it "
                "has {}", what, e.nonzeros, nonzeros);
      r = codes_in;  // the codes end the stream: the end check below applies to their cursor
      break;
    }
  }
  r.expect_end();
  return out.finish();
}

}  // namespace inq
