#include "inq/huffman.h"

#include <algorithm>
#include <queue>

namespace inq {

namespace {

// Plain Huffman lengths by merging the two lightest trees (ties by creation order, so the result is
// deterministic). Returns 0 for symbols with count 0.
std::vector<uint8_t> unlimited_lengths(const std::vector<uint64_t>& counts, int* longest) {
  const size_t n = counts.size();
  std::vector<int64_t> parent;
  using Node = std::pair<uint64_t, int64_t>;  // (weight, node id)
  std::priority_queue<Node, std::vector<Node>, std::greater<>> heap;
  std::vector<int64_t> leaf_of(n, -1);
  for (size_t s = 0; s < n; ++s) {
    if (counts[s] == 0) continue;
    leaf_of[s] = static_cast<int64_t>(parent.size());
    heap.emplace(counts[s], static_cast<int64_t>(parent.size()));
    parent.push_back(-1);
  }
  std::vector<uint8_t> lengths(n, 0);
  *longest = 0;
  if (parent.empty()) return lengths;
  if (parent.size() == 1) {  // one symbol still needs one bit per occurrence
    for (size_t s = 0; s < n; ++s)
      if (leaf_of[s] >= 0) lengths[s] = 1;
    *longest = 1;
    return lengths;
  }
  while (heap.size() > 1) {
    const Node a = heap.top();
    heap.pop();
    const Node b = heap.top();
    heap.pop();
    const int64_t id = static_cast<int64_t>(parent.size());
    parent.push_back(-1);
    parent[static_cast<size_t>(a.second)] = id;
    parent[static_cast<size_t>(b.second)] = id;
    heap.emplace(a.first + b.first, id);  // counts sum to at most the tensor size: no overflow
  }
  // Depths: parents are created after their children, so one pass from the root down suffices.
  std::vector<int> depth(parent.size(), 0);
  for (int64_t id = static_cast<int64_t>(parent.size()) - 2; id >= 0; --id)
    depth[static_cast<size_t>(id)] = depth[static_cast<size_t>(parent[static_cast<size_t>(id)])] + 1;
  for (size_t s = 0; s < n; ++s) {
    if (leaf_of[s] < 0) continue;
    const int d = depth[static_cast<size_t>(leaf_of[s])];
    *longest = std::max(*longest, d);
    lengths[s] = static_cast<uint8_t>(std::min(d, 255));
  }
  return lengths;
}

}  // namespace

std::vector<uint8_t> huffman_code_lengths(const std::vector<uint64_t>& counts) {
  std::vector<uint64_t> c = counts;
  for (;;) {
    int longest = 0;
    std::vector<uint8_t> lengths = unlimited_lengths(c, &longest);
    if (longest <= kHuffmanMaxLength) return lengths;
    // Flattening the distribution shortens the longest codes; a few halvings always suffice (with
    // every count 1 the code is balanced: at most log2(2^16) = 16 bits for the largest alphabet).
    for (uint64_t& x : c)
      if (x > 0) x = (x + 1) / 2;
  }
}

int64_t huffman_section_bits(const std::vector<uint64_t>& counts) {
  const std::vector<uint8_t> lengths = huffman_code_lengths(counts);
  int64_t bits = static_cast<int64_t>(counts.size()) * kHuffmanLengthBits;
  for (size_t s = 0; s < counts.size(); ++s) bits += static_cast<int64_t>(counts[s]) * lengths[s];
  return bits;
}

HuffmanEncoder::HuffmanEncoder(std::vector<uint8_t> lengths) : lengths_(std::move(lengths)) {
  // Canonical codes (RFC 1951 section 3.2.2): the first code of each length follows the last of the
  // length before, shifted left.
  int bl_count[kHuffmanMaxLength + 1] = {};
  for (uint8_t l : lengths_) bl_count[l] += l > 0 ? 1 : 0;
  uint32_t next_code[kHuffmanMaxLength + 2] = {};
  uint32_t code = 0;
  for (int len = 1; len <= kHuffmanMaxLength; ++len) {
    code = (code + static_cast<uint32_t>(bl_count[len - 1])) << 1;
    next_code[len] = code;
  }
  reversed_.assign(lengths_.size(), 0);
  for (size_t s = 0; s < lengths_.size(); ++s) {
    const int len = lengths_[s];
    if (len == 0) continue;
    const uint32_t c = next_code[len]++;
    uint32_t r = 0;
    for (int i = 0; i < len; ++i) r |= ((c >> i) & 1u) << (len - 1 - i);
    reversed_[s] = r;
  }
}

void HuffmanEncoder::write_table(BitWriter& out) const {
  for (uint8_t l : lengths_) out.put(l, kHuffmanLengthBits);
}

HuffmanDecoder HuffmanDecoder::read(BitReader& in, int alphabet_bits, const char* field, int64_t symbols) {
  HuffmanDecoder d;
  d.field_ = field;
  const size_t n = size_t{1} << alphabet_bits;
  std::vector<uint8_t> lengths(n);
  for (size_t s = 0; s < n; ++s) {
    lengths[s] = static_cast<uint8_t>(in.get(kHuffmanLengthBits, field));
    INQ_CHECK(lengths[s] <= kHuffmanMaxLength,
              "Given {}, expected the {} Huffman table's code lengths in [0, {}], but symbol {} has length {}",
              in.what(), field, kHuffmanMaxLength, s, lengths[s]);
    d.count_[lengths[s]] += lengths[s] > 0 ? 1 : 0;
  }
  // Kraft: the code space left after each length must never go negative (over-subscribed) and must
  // end at exactly 0 (complete), the single-symbol code being the one allowed exception.
  int64_t left = 1;
  int64_t used = 0;
  for (int len = 1; len <= kHuffmanMaxLength; ++len) {
    left = left * 2 - d.count_[len];
    used += d.count_[len];
    INQ_CHECK(left >= 0, "Given {}, expected the {} Huffman table to be a prefix code, but its lengths are "
              "over-subscribed (more codes of length <= {} than fit)", in.what(), field, len);
  }
  d.single_ = used == 1 && d.count_[1] == 1;
  INQ_CHECK(left == 0 || d.single_ || used == 0,
            "Given {}, expected the {} Huffman table to be a complete prefix code, but its lengths leave codes "
            "unassigned", in.what(), field);
  INQ_CHECK(used > 0 || symbols == 0, "Given {}, expected the {} Huffman table to have a symbol for its {} codes, "
            "but every length is 0", in.what(), field, symbols);
  for (int len = 1; len <= kHuffmanMaxLength; ++len)
    for (size_t s = 0; s < n; ++s)
      if (lengths[s] == len) d.sorted_.push_back(static_cast<uint32_t>(s));
  // The lookup table: canonical codes are consecutive within a length, in sorted_ order. A code
  // arrives MSB first, so the stream bits that peek returns hold it bit-reversed in their low bits,
  // whatever follows above.
  d.fast_.assign(size_t{1} << kFastBits, 0);
  if (!d.single_) {
    uint32_t code = 0;
    size_t index = 0;
    for (int len = 1; len <= kFastBits; ++len) {
      for (int i = 0; i < d.count_[len]; ++i, ++index, ++code) {
        uint32_t reversed = 0;
        for (int b = 0; b < len; ++b) reversed |= ((code >> b) & 1u) << (len - 1 - b);
        for (uint32_t high = 0; high < (1u << (kFastBits - len)); ++high)
          d.fast_[reversed | (high << len)] = d.sorted_[index] << 5 | static_cast<uint32_t>(len);
      }
      code <<= 1;
    }
  }
  return d;
}

uint32_t HuffmanDecoder::get(BitReader& in) const {
  if (single_) {
    INQ_CHECK(in.bit(field_) == 0, "Given {}, expected a code of its one-symbol {} Huffman table (bit 0) at bit {}, "
              "but got bit 1", in.what(), field_, in.position() - 1);
    return sorted_[0];
  }
  if (const uint32_t entry = fast_[in.peek(kFastBits)]; entry != 0) {
    in.skip(static_cast<int>(entry & 31), field_);
    return entry >> 5;
  }
  // Canonical decoding (as zlib's puff does): `first` is the first code of the current length and
  // `index` the canonical position of that code; a complete code always ends within the longest length.
  int64_t code = 0;
  int64_t first = 0;
  int64_t index = 0;
  for (int len = 1; len <= kHuffmanMaxLength; ++len) {
    code |= in.bit(field_);
    const int64_t count = count_[len];
    if (code - first < count) return sorted_[static_cast<size_t>(index + code - first)];
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  throw Error(fmt::format("Given {}, expected a code of its {} Huffman table at bit {}", in.what(), field_,
                          in.position()));
}

}  // namespace inq
