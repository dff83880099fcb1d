#include "data/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "framework/error.h"

namespace inq {

namespace {

// A source of bytes. read() fills up to n bytes and returns fewer only at the end of the content.
class ByteReader {
 public:
  virtual ~ByteReader() = default;
  virtual size_t read(uint8_t* dst, size_t n) = 0;
};

class FileReader final : public ByteReader {
 public:
  explicit FileReader(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    INQ_CHECK(file_ != nullptr, "Given IDX file '{}', expected a readable file, but opening it failed: {}",
              path, std::strerror(errno));
  }
  ~FileReader() override { std::fclose(file_); }
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  size_t read(uint8_t* dst, size_t n) override {
    const size_t got = std::fread(dst, 1, n, file_);
    INQ_CHECK(got == n || !std::ferror(file_),
              "Given IDX file '{}', expected to read it, but reading failed: {}", path_,
              std::strerror(errno));
    return got;
  }
  void rewind() {
    INQ_CHECK(std::fseek(file_, 0, SEEK_SET) == 0,
              "Given IDX file '{}', expected a seekable file, but seeking failed: {}", path_,
              std::strerror(errno));
    std::clearerr(file_);
  }
  // Size of a regular file, or -1 when it cannot be known up front (a pipe).
  int64_t size() const {
    struct stat st;
    if (fstat(fileno(file_), &st) != 0 || !S_ISREG(st.st_mode)) return -1;
    return static_cast<int64_t>(st.st_size);
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

class MemoryReader final : public ByteReader {
 public:
  MemoryReader(const uint8_t* bytes, size_t size) : bytes_(bytes), size_(size) {}
  size_t read(uint8_t* dst, size_t n) override {
    const size_t got = std::min(n, size_ - pos_);
    if (got > 0) std::memcpy(dst, bytes_ + pos_, got);
    pos_ += got;
    return got;
  }

 private:
  const uint8_t* bytes_;
  size_t size_;
  size_t pos_ = 0;
};

// Inflates gzip members from `raw`. End of content is reported only after a member ended cleanly
// (its CRC and length verified by zlib) and the raw input is exhausted; a stream cut short, a
// corrupt member or non-gzip bytes after the last member throw.
class GzipReader final : public ByteReader {
 public:
  GzipReader(ByteReader& raw, const std::string& name) : raw_(raw), name_(name), in_(size_t{1} << 16) {
    std::memset(&zs_, 0, sizeof(zs_));
    // 16 + MAX_WBITS: gzip wrapper only (we have already seen its magic).
    const int ret = inflateInit2(&zs_, 16 + MAX_WBITS);
    INQ_CHECK(ret == Z_OK, "Given IDX file '{}', expected zlib to initialise, but inflateInit2 returned {}",
              name_, ret);
  }
  ~GzipReader() override { inflateEnd(&zs_); }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  size_t read(uint8_t* dst, size_t n) override {
    size_t produced = 0;
    while (produced < n) {
      if (member_ended_) {
        if (!refill()) return produced;  // clean end after a complete member
        INQ_CHECK(zs_.next_in[0] == 0x1f,
                  "Given IDX file '{}', expected the gzip stream to end the file, but {} unexpected byte(s) "
                  "follow it",
                  name_, trailing_count());
        inflateReset(&zs_);
        member_ended_ = false;
      }
      INQ_CHECK(zs_.avail_in > 0 || refill(),
                "Given IDX file '{}', expected a complete gzip stream, but the compressed data is truncated",
                name_);
      const size_t want = std::min<size_t>(n - produced, std::numeric_limits<uInt>::max());
      zs_.next_out = dst + produced;
      zs_.avail_out = static_cast<uInt>(want);
      const int ret = inflate(&zs_, Z_NO_FLUSH);
      produced += want - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        member_ended_ = true;
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        // Z_BUF_ERROR only means "no progress without more input": the loop refills.
        throw Error(fmt::format("Given IDX file '{}', expected valid gzip data, but zlib reports: {}", name_,
                                zs_.msg != nullptr ? zs_.msg : "error " + std::to_string(ret)));
      }
    }
    return produced;
  }

 private:
  // Makes input available if there is any left; false at the end of the raw content.
  bool refill() {
    if (zs_.avail_in > 0) return true;
    if (raw_eof_) return false;
    const size_t got = raw_.read(in_.data(), in_.size());
    if (got < in_.size()) raw_eof_ = true;
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(got);
    return got > 0;
  }
  // Counts (and consumes) the raw bytes left, for the trailing-garbage message.
  uint64_t trailing_count() {
    uint64_t count = zs_.avail_in;
    zs_.avail_in = 0;
    while (!raw_eof_) {
      const size_t got = raw_.read(in_.data(), in_.size());
      if (got < in_.size()) raw_eof_ = true;
      count += got;
    }
    return count;
  }

  ByteReader& raw_;
  std::string name_;
  std::vector<uint8_t> in_;
  z_stream zs_;
  bool member_ended_ = false;
  bool raw_eof_ = false;
};

size_t element_size(IdxType type) {
  switch (type) {
    case IdxType::UInt8:
    case IdxType::Int8:
      return 1;
    case IdxType::Int16:
      return 2;
    case IdxType::Int32:
    case IdxType::Float32:
      return 4;
    case IdxType::Float64:
      return 8;
  }
  return 0;
}

uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Parses the (decompressed) content. `known_size` is the exact content size when it is known
// before reading (plain files), else -1.
IdxArray parse(ByteReader& content, int64_t known_size, bool gzipped, const std::string& name,
               int expected_ndims, uint64_t max_bytes) {
  INQ_CHECK(expected_ndims >= 1 && expected_ndims <= 255,
            "Given IDX file '{}', expected the caller to ask for 1 to 255 dimensions, but got {} instead",
            name, expected_ndims);
  const char* what = gzipped ? "decompressed content" : "file";

  uint8_t magic[4];
  const size_t magic_got = content.read(magic, 4);
  INQ_CHECK(magic_got == 4,
            "Given IDX file '{}', expected a 4-byte magic number, but the {} is only {} bytes "
            "long instead",
            name, what, magic_got);
  INQ_CHECK(magic[0] == 0 && magic[1] == 0,
            "Given IDX file '{}', expected a magic number starting with 00 00, but got {:02x} {:02x} instead "
            "(not an IDX file?)",
            name, magic[0], magic[1]);
  INQ_CHECK(magic[2] == static_cast<uint8_t>(IdxType::UInt8),
            "Given IDX file '{}', expected element type {}, but got type {} instead", name,
            idx_type_str(static_cast<uint8_t>(IdxType::UInt8)), idx_type_str(magic[2]));
  const IdxType type = static_cast<IdxType>(magic[2]);
  const int ndims = magic[3];
  INQ_CHECK(ndims == expected_ndims,
            "Given IDX file '{}', expected {} dimension(s), but the header declares {} "
            "instead",
            name, expected_ndims, ndims);

  std::vector<uint8_t> dim_bytes(4 * static_cast<size_t>(ndims));
  const size_t dims_got = content.read(dim_bytes.data(), dim_bytes.size());
  INQ_CHECK(dims_got == dim_bytes.size(),
            "Given IDX file '{}', expected a {}-byte header, but the {} ends after "
            "{} bytes instead",
            name, 4 + dim_bytes.size(), what, 4 + dims_got);

  IdxArray array;
  array.type = type;
  array.dims.resize(static_cast<size_t>(ndims));
  for (int d = 0; d < ndims; ++d)
    array.dims[static_cast<size_t>(d)] = load_be32(&dim_bytes[4 * static_cast<size_t>(d)]);
  // A zero dimension makes the payload empty however large the others are, even when their
  // product alone would overflow (possible from 3 dimensions on).
  const bool empty = std::find(array.dims.begin(), array.dims.end(), 0u) != array.dims.end();
  uint64_t payload = empty ? 0 : element_size(type);
  bool overflow = false;
  for (int d = 0; d < ndims && !empty; ++d)
    overflow =
        overflow || __builtin_mul_overflow(payload, uint64_t{array.dims[static_cast<size_t>(d)]}, &payload);
  INQ_CHECK(
      !overflow && payload <= max_bytes,
      "Given IDX file '{}', expected at most {} bytes of data, but its dimensions {} declare {} instead",
      name, max_bytes, fmt::join(array.dims, "x"),
      overflow ? std::string("more than 2^64") : std::to_string(payload));
  const uint64_t header = 4 + dim_bytes.size();
  const uint64_t total = header + payload;
  // Plain files: the exact size is checked before the payload is allocated.
  INQ_CHECK(
      known_size < 0 || static_cast<uint64_t>(known_size) == total,
      "Given IDX file '{}', expected exactly {} bytes ({}-byte header + {} bytes for dimensions {}), but the "
      "file has {} bytes instead",
      name, total, header, payload, fmt::join(array.dims, "x"), known_size);

  // Grow the buffer as bytes arrive, so a header that lies about a gzip stream's size allocates no
  // more than the stream really holds (at most twice that).
  size_t have = 0;
  const size_t target = static_cast<size_t>(payload);
  while (have < target) {
    const size_t want = known_size >= 0 ? target : std::min(target, std::max(2 * have, size_t{1} << 20));
    array.data.resize(want);
    const size_t got = content.read(array.data.data() + have, want - have);
    have += got;
    INQ_CHECK(have == want,
              "Given IDX file '{}', expected {} bytes ({}-byte header + {} bytes for dimensions {}), "
              "but the {} is truncated after {} bytes instead",
              name, total, header, payload, fmt::join(array.dims, "x"), what, header + have);
  }
  // Anything after the data is an error; for gzip this also runs zlib to the end of the stream,
  // which verifies the CRC.
  uint8_t probe[4096];
  uint64_t extra = 0;
  for (size_t got; (got = content.read(probe, sizeof(probe))) > 0 && extra < (uint64_t{1} << 20);)
    extra += got;
  INQ_CHECK(extra == 0,
            "Given IDX file '{}', expected exactly {} bytes ({}-byte header + {} bytes for dimensions "
            "{}), but the {} has {}{} extra trailing bytes instead",
            name, total, header, payload, fmt::join(array.dims, "x"), what,
            extra >= (uint64_t{1} << 20) ? "at least " : "", extra);
  return array;
}

}  // namespace

int64_t IdxArray::numel() const {
  // Zero first: the reader accepts dimensions like 4e9 x 4e9 x 0, whose leading product alone
  // would overflow.
  if (std::find(dims.begin(), dims.end(), 0u) != dims.end()) return 0;
  int64_t n = 1;
  for (uint32_t d : dims)
    INQ_CHECK(!__builtin_mul_overflow(n, int64_t{d}, &n),
              "Given IDX dimensions {}, expected an element count that fits in 64 bits, but it overflows",
              fmt::join(dims, "x"));
  return n;
}

std::string idx_type_str(uint8_t type) {
  const char* name = "unknown";
  switch (type) {
    case 0x08:
      name = "unsigned byte";
      break;
    case 0x09:
      name = "signed byte";
      break;
    case 0x0B:
      name = "int16";
      break;
    case 0x0C:
      name = "int32";
      break;
    case 0x0D:
      name = "float32";
      break;
    case 0x0E:
      name = "float64";
      break;
    default:
      break;
  }
  return fmt::format("0x{:02x} ({})", type, name);
}

IdxArray read_idx(const std::string& path, int expected_ndims, uint64_t max_bytes) {
  FileReader file(path);
  uint8_t head[2] = {0, 0};
  const size_t got = file.read(head, 2);
  file.rewind();
  if (got == 2 && head[0] == 0x1f && head[1] == 0x8b) {
    GzipReader gz(file, path);
    return parse(gz, -1, true, path, expected_ndims, max_bytes);
  }
  return parse(file, file.size(), false, path, expected_ndims, max_bytes);
}

IdxArray read_idx_from_memory(const uint8_t* bytes, size_t size, const std::string& name, int expected_ndims,
                              uint64_t max_bytes) {
  MemoryReader raw(bytes, size);
  if (size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    GzipReader gz(raw, name);
    return parse(gz, -1, true, name, expected_ndims, max_bytes);
  }
  return parse(raw, static_cast<int64_t>(size), false, name, expected_ndims, max_bytes);
}

}  // namespace inq
