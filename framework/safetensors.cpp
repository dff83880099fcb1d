#include "framework/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "framework/atomic_file.h"
#include "framework/error.h"
#include "framework/json_value.h"

namespace inq {

// The format is little-endian; values are copied byte for byte, which is only right on a
// little-endian host (every platform this project targets).
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

using json = nlohmann::json;

// Every reader error names the file first: "Given safetensors file 'x', expected ...".
#define FILE_CHECK(cond, source, message, ...) \
  INQ_CHECK(cond, "Given safetensors file '{}', " message, source __VA_OPT__(, ) __VA_ARGS__)
#define FILE_ERROR(source, message, ...) \
  ::inq::Error(fmt::format("Given safetensors file '{}', " message, source __VA_OPT__(, ) __VA_ARGS__))

const char* stored_dtype_name(StoredDtype dtype) {
  switch (dtype) {
    case StoredDtype::F32: return "F32";
    case StoredDtype::I64: return "I64";
    case StoredDtype::U8: return "U8";
  }
  return "?";
}

int64_t stored_dtype_size(StoredDtype dtype) {
  switch (dtype) {
    case StoredDtype::F32: return 4;
    case StoredDtype::I64: return 8;
    case StoredDtype::U8: return 1;
  }
  return 0;
}

StoredTensor StoredTensor::from_tensor(const Tensor& t) {
  StoredTensor s;
  s.dtype = StoredDtype::F32;
  s.shape = t.shape();
  s.f32 = t;
  return s;
}

StoredTensor StoredTensor::from_int64(const Shape& shape, std::vector<int64_t> values) {
  StoredTensor s;
  s.dtype = StoredDtype::I64;
  s.shape = shape;
  s.i64 = std::move(values);
  s.validate("<from_int64>");
  return s;
}

StoredTensor StoredTensor::from_uint8(const Shape& shape, std::vector<uint8_t> values) {
  StoredTensor s;
  s.dtype = StoredDtype::U8;
  s.shape = shape;
  s.u8 = std::move(values);
  s.validate("<from_uint8>");
  return s;
}

int64_t StoredTensor::numel() const { return shape_numel(shape); }

void StoredTensor::validate(const std::string& name) const {
  const int64_t n = numel();
  if (dtype == StoredDtype::F32) {
    INQ_CHECK(f32.defined(),
              "Given the F32 tensor '{}', expected defined values, but got an undefined tensor", name);
    INQ_CHECK(f32.shape() == shape,
              "Given the F32 tensor '{}' of shape {}, expected values of that shape, but got {} instead",
              name, shape_str(shape), shape_str(f32.shape()));
  } else {
    const size_t size = dtype == StoredDtype::I64 ? i64.size() : u8.size();
    INQ_CHECK(static_cast<int64_t>(size) == n, "Given the {} tensor '{}' of shape {}, expected {} values, but got {} "
              "instead", stored_dtype_name(dtype), name, shape_str(shape), n, size);
  }
}

const StoredTensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

namespace {

constexpr const char* kMetadataKey = "__metadata__";

// Position of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or npos when the text is valid.
size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// One validated header entry.
struct Entry {
  std::string name;
  StoredDtype dtype;
  Shape shape;
  uint64_t begin, end;  // relative to the buffer
};

struct Header {
  std::map<std::string, std::string> metadata;
  std::vector<Entry> entries;  // sorted by offset
};

// Rejects header lengths that are too large or that do not fit in the file, before anything of
// that size is allocated.
void check_header_length(const std::string& source, uint64_t n, uint64_t file_size) {
  FILE_CHECK(file_size >= 8, source, "expected at least the 8-byte header length, but the file has {} bytes",
             file_size);
  FILE_CHECK(n <= kSafetensorsMaxHeaderBytes, source,
             "expected a header length of at most {} bytes, but got {} instead", kSafetensorsMaxHeaderBytes,
             n);
  FILE_CHECK(n <= file_size - 8, source,
             "expected a header length of at most {} (file size - 8), but got {} instead", file_size - 8, n);
}

StoredDtype parse_dtype(const std::string& source, const std::string& name, const std::string& d) {
  if (d == "F32") return StoredDtype::F32;
  if (d == "I64") return StoredDtype::I64;
  if (d == "U8") return StoredDtype::U8;
  throw FILE_ERROR(source, "expected the dtype of tensor '{}' to be F32, I64 or U8, but got '{}' instead",
                   name, d);
}

// The entry of tensor `name` in the header: exactly the keys dtype, shape and data_offsets.
Entry parse_entry(const std::string& source, JsonObjectReader& header, const std::string& name) {
  JsonObjectReader v = *header.object(name, fmt::format("tensor '{}'", name));
  Entry e;
  e.name = name;
  const std::string d = *v.required<std::string>("dtype");
  e.dtype = parse_dtype(source, name, d);
  e.shape = *v.indices("shape");
  const std::vector<int64_t> offsets = *v.indices("data_offsets", 2, "[begin, end]");
  v.reject_unknown();

  int64_t numel = 1;
  for (int64_t dim : e.shape) {
    FILE_CHECK(!__builtin_mul_overflow(numel, dim, &numel), source,
               "expected the element count of tensor '{}' with shape {} to fit in 64 bits, but it overflows",
               name, shape_str(e.shape));
  }
  int64_t nbytes = 0;
  FILE_CHECK(!__builtin_mul_overflow(numel, stored_dtype_size(e.dtype), &nbytes), source,
             "expected the byte size of tensor '{}' with shape {} to fit in 64 bits, but it overflows", name,
             shape_str(e.shape));

  e.begin = static_cast<uint64_t>(offsets[0]);
  e.end = static_cast<uint64_t>(offsets[1]);
  FILE_CHECK(e.begin <= e.end, source,
             "expected data_offsets [begin, end] of tensor '{}' with begin <= end, but got [{}, {}] instead",
             name, e.begin, e.end);
  FILE_CHECK(e.end - e.begin == static_cast<uint64_t>(nbytes), source,
             "expected tensor '{}' ({} {}) to span {} bytes, but its data_offsets [{}, {}] span {} instead",
             name, d, shape_str(e.shape), nbytes, e.begin, e.end, e.end - e.begin);
  return e;
}

Header parse_header(const std::string& source, std::string_view text, uint64_t buffer_size) {
  const size_t bad = find_invalid_utf8(text);
  FILE_CHECK(bad == std::string_view::npos, source,
             "expected a UTF-8 header, but got an invalid byte sequence at header byte {}", bad);
  // JSON text never contains a raw NUL (control characters in strings must be escaped), but
  // nlohmann's lexer takes one as the end of input and would ignore whatever follows it.
  const size_t nul = text.find('\0');
  FILE_CHECK(nul == std::string_view::npos, source,
             "expected a JSON header, but got a NUL byte at header byte {}", nul);

  // The valid structure is at most three levels deep (root / entry / shape), so deeper nesting is
  // refused as soon as it opens, which also bounds the work on hostile input.
  const std::string given = fmt::format("safetensors file '{}'", source);
  const json root = parse_json_object(text, given, {.document = "header", .max_levels = 3});
  JsonObjectReader header = JsonObjectReader::throwing(root, given, "the header");

  Header h;
  if (auto metadata = header.optional_object(kMetadataKey, kMetadataKey)) {
    for (const auto& [mk, mv] : metadata->value().items()) {
      FILE_CHECK(json_is<std::string>(mv), source,
                 "expected __metadata__ values to be strings, but '{}' is {}", mk, json_excerpt(mv));
      h.metadata[mk] = mv.get<std::string>();
    }
  }
  for (const auto& item : root.items())
    if (item.key() != kMetadataKey) h.entries.push_back(parse_entry(source, header, item.key()));

  // The buffer must be covered exactly once: sorted by offset, each tensor starts where the previous
  // one ended, the first at 0 and the last at the buffer's end.
  std::sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected_begin = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : h.entries) {
    if (e.begin != expected_begin) {
      const std::string after =
          previous ? fmt::format("right after tensor '{}'", previous->name) : "at the buffer start";
      throw FILE_ERROR(
          source, "expected tensor '{}' to start at buffer offset {} ({}), but it starts at {} instead ({})",
          e.name, expected_begin, after, e.begin, e.begin > expected_begin ? "a gap" : "an overlap");
    }
    expected_begin = e.end;
    previous = &e;
  }
  FILE_CHECK(expected_begin == buffer_size, source,
             "expected the data buffer to end at the end of the file ({} bytes of data), but the tensors "
             "cover {} bytes ({})",
             buffer_size, expected_begin, expected_begin < buffer_size ? "trailing bytes" : "missing bytes");
  return h;
}

// Allocates the tensors of a validated header (sizes are now known to fit inside the file).
StoredTensor allocate(const Entry& e) {
  StoredTensor t;
  t.dtype = e.dtype;
  t.shape = e.shape;
  const auto n = static_cast<size_t>(shape_numel(e.shape));
  switch (e.dtype) {
    case StoredDtype::F32: t.f32 = Tensor::empty(e.shape); break;
    case StoredDtype::I64: t.i64.resize(n); break;
    case StoredDtype::U8: t.u8.resize(n); break;
  }
  return t;
}

const void* data_of(const StoredTensor& t) {
  switch (t.dtype) {
    case StoredDtype::F32: return t.f32.data();
    case StoredDtype::I64: return t.i64.data();
    case StoredDtype::U8: return t.u8.data();
  }
  return nullptr;
}

void* data_of(StoredTensor& t) { return const_cast<void*>(data_of(static_cast<const StoredTensor&>(t))); }

// Closes a descriptor on every path out of read_safetensors.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

void read_exact(int fd, const std::string& path, void* dst, size_t count, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(dst);
  while (count > 0) {
    ssize_t n = ::pread(fd, p, std::min<size_t>(count, size_t(1) << 30), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    FILE_CHECK(n >= 0, path, "expected to read it, but got: {}", std::strerror(errno));
    FILE_CHECK(n > 0, path,
               "expected {} more bytes at offset {}, but the file ended (was it truncated while being read?)",
               count, offset);
    p += n;
    count -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

}  // namespace

SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, const std::string& source) {
  const uint64_t file_size = bytes.size();
  check_header_length(source, file_size >= 8 ? read_u64_le(bytes.data()) : 0, file_size);
  const uint64_t n = read_u64_le(bytes.data());
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  const uint64_t buffer_start = 8 + n;
  Header h = parse_header(source, text, file_size - buffer_start);

  SafetensorsFile file;
  file.source = source;
  file.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    StoredTensor t = allocate(e);
    if (e.end > e.begin) std::memcpy(data_of(t), bytes.data() + buffer_start + e.begin, e.end - e.begin);
    file.tensors.emplace_back(e.name, std::move(t));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  FdCloser fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  FILE_CHECK(fd.fd >= 0, path, "expected to open it, but got: {}", std::strerror(errno));
  struct stat st {};
  FILE_CHECK(::fstat(fd.fd, &st) == 0, path, "expected to stat it, but got: {}", std::strerror(errno));
  FILE_CHECK(S_ISREG(st.st_mode), path, "expected a regular file, but it is not");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);

  uint8_t prefix[8] = {};
  if (file_size >= 8) read_exact(fd.fd, path, prefix, 8, 0);
  const uint64_t n = read_u64_le(prefix);
  check_header_length(path, n, file_size);
  std::string text(n, '\0');
  read_exact(fd.fd, path, text.data(), n, 8);
  const uint64_t buffer_start = 8 + n;
  Header h = parse_header(path, text, file_size - buffer_start);

  SafetensorsFile file;
  file.source = path;
  file.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) {
    StoredTensor t = allocate(e);
    read_exact(fd.fd, path, data_of(t), e.end - e.begin, buffer_start + e.begin);
    file.tensors.emplace_back(e.name, std::move(t));
  }
  return file;
}

namespace {

// The padded header text for `tensors` laid out contiguously in the given order.
std::string build_header(const StoredTensors& tensors, const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    INQ_CHECK(name != kMetadataKey,
              "Given a tensor named '{}', expected a name other than the reserved __metadata__", name);
    INQ_CHECK(find_invalid_utf8(name) == std::string_view::npos,
              "Given a tensor name that is not valid UTF-8 (invalid at byte {}), expected UTF-8 names",
              find_invalid_utf8(name));
    INQ_CHECK(names.insert(name).second,
              "Given tensors to write, expected unique names, but '{}' appears more than once", name);
    t.validate(name);
  }
  for (const auto& [k, v] : metadata)
    INQ_CHECK(
        find_invalid_utf8(k) == std::string_view::npos && find_invalid_utf8(v) == std::string_view::npos,
        "Given __metadata__ entry '{}', expected valid UTF-8 key and value", k);

  // ordered_json keeps insertion order, so the header lists tensors in buffer order with the keys
  // of each entry in the order the reference implementation writes them.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t nbytes = static_cast<uint64_t>(t.numel() * stored_dtype_size(t.dtype));
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = stored_dtype_name(t.dtype);
    entry["shape"] = t.shape;
    entry["data_offsets"] = {offset, offset + nbytes};
    header[name] = std::move(entry);
    offset += nbytes;
  }
  std::string text = header.dump();
  // Pad with spaces (valid JSON whitespace) so the buffer starts 8-byte aligned in the file.
  text.resize((text.size() + 7) / 8 * 8, ' ');
  return text;
}

std::vector<uint8_t> length_prefix(const std::string& header) {
  std::vector<uint8_t> out(8);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out;
}

}  // namespace

std::vector<uint8_t> serialize_safetensors(const StoredTensors& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  const std::string header = build_header(tensors, metadata);
  size_t total = 8 + header.size();
  for (const auto& [name, t] : tensors) total += static_cast<size_t>(t.numel() * stored_dtype_size(t.dtype));
  std::vector<uint8_t> out(total);
  const std::vector<uint8_t> prefix = length_prefix(header);
  std::memcpy(out.data(), prefix.data(), 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  size_t at = 8 + header.size();
  for (const auto& [name, t] : tensors) {
    const size_t nbytes = static_cast<size_t>(t.numel() * stored_dtype_size(t.dtype));
    if (nbytes > 0) std::memcpy(out.data() + at, data_of(t), nbytes);
    at += nbytes;
  }
  return out;
}

void write_safetensors(const std::string& path, const StoredTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string header = build_header(tensors, metadata);
  const std::vector<uint8_t> prefix = length_prefix(header);
  // Tensor data is written straight from the tensors' storage, never copied into one big buffer.
  std::vector<std::span<const uint8_t>> pieces;
  pieces.emplace_back(prefix);
  pieces.emplace_back(reinterpret_cast<const uint8_t*>(header.data()), header.size());
  for (const auto& [name, t] : tensors)
    pieces.emplace_back(static_cast<const uint8_t*>(data_of(t)),
                        static_cast<size_t>(t.numel() * stored_dtype_size(t.dtype)));
  write_file_atomically(path, pieces);
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  StoredTensors stored;
  stored.reserve(tensors.size());
  for (const auto& [name, t] : tensors) stored.emplace_back(name, StoredTensor::from_tensor(t));
  write_safetensors(path, stored, metadata);
}

}  // namespace inq
