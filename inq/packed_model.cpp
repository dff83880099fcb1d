#include "inq/packed_model.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "framework/json_value.h"
#include "framework/atomic_file.h"
#include "framework/error.h"
#include "inq/packed.h"

namespace inq {

namespace {

const std::string* metadata_value(const SafetensorsFile& file, const char* key) {
  auto it = file.metadata.find(key);
  return it == file.metadata.end() ? nullptr : &it->second;
}

// A shape read from the metadata: non-negative dimensions whose product fits in int64.
Shape packed_shape(const nlohmann::json& j, const std::string& what) {
  const Shape shape = json_value<std::vector<int64_t>>(j, what);
  int64_t numel = 1;
  for (int64_t d : shape) {
    INQ_CHECK(d >= 0 && !__builtin_mul_overflow(numel, d, &numel),
              "Given {} = {}, expected non-negative dimensions whose product fits in 64 bits", what, shape_str(shape));
  }
  return shape;
}

// The checksum's description of a quantized tensor: everything its entry says, so changing any field
// (a gap width, a count, the entropy stage) is caught like a changed code.
std::string quantized_description(const PackedLayout& l, const std::string& shape) {
  std::string d = fmt::format("codes {} bits {} n1 {} n2 {}", shape, l.codebook.bits, l.codebook.n1, l.codebook.n2);
  if (!l.has_encoding) return d;  // versions 1 and 2: exactly as they were written
  const TensorEncoding& e = l.encoding;
  d += fmt::format(" encoding {} entropy {}", layout_name(e.layout), e.huffman ? "huffman" : "none");
  if (e.layout != CodeLayout::Dense) d += fmt::format(" nonzeros {}", e.nonzeros);
  if (e.layout == CodeLayout::Gaps) d += fmt::format(" gap_bits {} entries {}", e.gap_bits, e.entries);
  return d;
}

// A "quantized" entry as written. Types are checked (json_value); with `strict` also the exact key
// set of the entry's version and layout, and every value's range. Throws inq::Error naming the file
// and tensor.
PackedLayout read_layout(const std::string& path, const std::string& name, const nlohmann::json& d, bool v3,
                         bool strict) {
  auto what = [&](const char* key) { return fmt::format("packed model '{}' tensor '{}' key '{}'", path, name, key); };
  INQ_CHECK(d.is_object() && d.contains("shape") && d.contains("bits") && d.contains("n1") && d.contains("n2"),
            "Given packed model '{}', expected tensor '{}' to be described by shape, bits, n1 and n2, but got {}", path,
            name, d.dump());
  PackedLayout l;
  l.shape = packed_shape(d.at("shape"), what("shape"));
  l.codebook = Codebook{.bits = json_value<int>(d.at("bits"), what("bits")),
                        .n1 = json_value<int>(d.at("n1"), what("n1")),
                        .n2 = json_value<int>(d.at("n2"), what("n2"))};
  l.has_encoding = v3 || (!strict && d.contains("encoding"));
  if (!l.has_encoding) {
    INQ_CHECK(!strict || d.size() == 4,
              "Given packed model '{}', expected tensor '{}' to be described by exactly shape, bits, n1 and n2, "
              "but got {}", path, name, d.dump());
    return l;
  }
  INQ_CHECK(d.contains("encoding") && d.contains("entropy"),
            "Given packed model '{}', expected tensor '{}' to have 'encoding' and 'entropy' (format version {}), "
            "but got {}", path, name, kPackedVersion, d.dump());
  const std::string encoding = json_value<std::string>(d.at("encoding"), what("encoding"));
  const std::optional<CodeLayout> layout = parse_layout_name(encoding);
  INQ_CHECK(layout.has_value(), "Given packed model '{}', expected tensor '{}' to have encoding 'dense', 'gaps' or "
            "'bitmap', but got '{}'", path, name, encoding);
  const std::string entropy = json_value<std::string>(d.at("entropy"), what("entropy"));
  INQ_CHECK(entropy == "none" || entropy == "huffman", "Given packed model '{}', expected tensor '{}' to have entropy "
            "'none' or 'huffman', but got '{}'", path, name, entropy);
  TensorEncoding& e = l.encoding;
  e.layout = *layout;
  e.huffman = entropy == "huffman";
  size_t keys = 6;
  auto count = [&](const char* key) {
    INQ_CHECK(d.contains(key), "Given packed model '{}', expected tensor '{}' of encoding '{}' to have '{}', but got {}",
              path, name, encoding, key, d.dump());
    ++keys;
    return json_value<int64_t>(d.at(key), what(key));
  };
  const int64_t numel = shape_numel(l.shape);
  if (e.layout != CodeLayout::Dense) {
    e.nonzeros = count("nonzeros");
    INQ_CHECK(!strict || (e.nonzeros >= 0 && e.nonzeros <= numel),
              "Given packed model '{}', expected tensor '{}' to have nonzeros in [0, {}] (its weights), but got {}",
              path, name, numel, e.nonzeros);
  }
  if (e.layout == CodeLayout::Gaps) {
    const int64_t g = count("gap_bits");
    INQ_CHECK(!strict || (g >= kMinGapBits && g <= kMaxGapBits),
              "Given packed model '{}', expected tensor '{}' to have gap_bits in [{}, {}], but got {}", path, name,
              kMinGapBits, kMaxGapBits, g);
    e.gap_bits = static_cast<int>(std::clamp<int64_t>(g, -1, 64));
    e.entries = count("entries");
    INQ_CHECK(!strict || (e.entries >= e.nonzeros && e.entries <= numel),
              "Given packed model '{}', expected tensor '{}' to have entries in [nonzeros = {}, {}] (one per non-zero "
              "plus the fillers, each at its own position), but got {}", path, name, e.nonzeros, numel, e.entries);
  }
  INQ_CHECK(!strict || d.size() == keys,
            "Given packed model '{}', expected tensor '{}' of encoding '{}' to be described by exactly {} keys, but "
            "got {}", path, name, encoding, keys, d.dump());
  return l;
}

}  // namespace

std::vector<uint8_t> dense_codes(const std::string& path, const std::string& name, const PackedLayout& layout,
                                 std::vector<uint8_t> stored) {
  return decode_to_dense(fmt::format("packed model '{}' tensor '{}'", path, name), shape_numel(layout.shape),
                         layout.codebook.bits, layout.encoding, std::move(stored));
}

std::string packed_model_checksum(const StoredTensors& tensors, const std::string& arch,
                                  const std::map<std::string, PackedLayout>& quantized) {
  uLong crc = crc32(0L, Z_NULL, 0);
  auto add = [&crc](const void* p, size_t n) {
    const auto* bytes = static_cast<const Bytef*>(p);
    while (n > 0) {  // crc32 takes uInt lengths
      const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
      crc = crc32(crc, bytes, static_cast<uInt>(chunk));
      bytes += chunk;
      n -= chunk;
    }
  };
  auto add_text = [&add](const std::string& text) { add(text.c_str(), text.size() + 1); };  // with its '\0'
  auto shape_text = [](const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ",")); };
  add_text(kPackedFormat);
  add_text(arch);
  std::vector<const std::pair<std::string, StoredTensor>*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* entry : sorted) {
    const auto& [name, t] = *entry;
    add_text(name);
    auto q = quantized.find(name);
    add_text(q != quantized.end() ? quantized_description(q->second, shape_text(q->second.shape))
                                  : fmt::format("{} {}", stored_dtype_name(t.dtype), shape_text(t.shape)));
    switch (t.dtype) {
      case StoredDtype::F32: add(t.f32.data(), static_cast<size_t>(t.f32.numel()) * sizeof(float)); break;
      case StoredDtype::I64: add(t.i64.data(), t.i64.size() * sizeof(int64_t)); break;
      case StoredDtype::U8: add(t.u8.data(), t.u8.size()); break;
    }
  }
  return fmt::format("crc32:{:08x}", static_cast<uint32_t>(crc));
}

std::string packed_model_checksum(const SafetensorsFile& packed) {
  const std::string* arch = metadata_value(packed, "arch");
  const std::string* quantized = metadata_value(packed, "quantized");
  INQ_CHECK(arch != nullptr && quantized != nullptr,
            "Given packed model '{}', expected metadata keys 'arch' and 'quantized'", packed.source);
  std::map<std::string, PackedLayout> layouts;
  nlohmann::json described;
  try {
    described = nlohmann::json::parse(*quantized);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("Given packed model '{}', expected JSON in its 'quantized' metadata: {}", packed.source,
                            e.what()));
  }
  INQ_CHECK(described.is_object(), "Given packed model '{}', expected 'quantized' to be a JSON object", packed.source);
  for (const auto& item : described.items())
    layouts[item.key()] = read_layout(packed.source, item.key(), item.value(), /*v3=*/false, /*strict=*/false);
  return packed_model_checksum(packed.tensors, *arch, layouts);
}

bool is_packed_model(const SafetensorsFile& file) {
  const std::string* format = metadata_value(file, "format");
  return format != nullptr && *format == kPackedFormat;
}

PackSummary pack_model(const SafetensorsFile& model, const std::map<std::string, Codebook>& codebooks,
                       const std::string& arch, const std::string& out, const PackOptions& options) {
  const std::string& source = model.source;
  PackSummary summary;
  StoredTensors tensors;
  nlohmann::json described = nlohmann::json::object();
  std::map<std::string, PackedLayout> layouts;
  for (const auto& [name, stored] : model.tensors) {
    auto cb = codebooks.find(name);
    if (cb == codebooks.end()) {
      tensors.emplace_back(name, stored);
      continue;
    }
    const PackedTensor packed = pack_tensor(name, stored.f32, cb->second);
    const int64_t numel = stored.f32.numel();
    EncodedCodes encoded = encode_codes(dense_code_values(packed.codes, numel, cb->second.bits), cb->second.bits,
                                        options.sparse, options.entropy_coding);
    const TensorEncoding& e = encoded.encoding;
    nlohmann::json entry = {{"shape", packed.shape}, {"bits", cb->second.bits}, {"n1", cb->second.n1},
                            {"n2", cb->second.n2}, {"encoding", layout_name(e.layout)},
                            {"entropy", e.huffman ? "huffman" : "none"}};
    if (e.layout != CodeLayout::Dense) entry["nonzeros"] = e.nonzeros;
    if (e.layout == CodeLayout::Gaps) {
      entry["gap_bits"] = e.gap_bits;
      entry["entries"] = e.entries;
    }
    described[name] = std::move(entry);
    layouts[name] = PackedLayout{.shape = packed.shape, .codebook = cb->second, .encoding = e, .has_encoding = true};
    summary.quantized_tensors += 1;
    summary.quantized_weights += numel;
    summary.sparse_tensors += e.layout != CodeLayout::Dense ? 1 : 0;
    summary.entropy_tensors += e.huffman ? 1 : 0;
    summary.code_bytes += static_cast<int64_t>(encoded.bytes.size());
    summary.code_float_bytes += numel * static_cast<int64_t>(sizeof(float));
    const Shape bytes_shape{static_cast<int64_t>(encoded.bytes.size())};
    tensors.emplace_back(name, StoredTensor::from_uint8(bytes_shape, std::move(encoded.bytes)));
  }
  INQ_CHECK(summary.quantized_tensors == static_cast<int64_t>(codebooks.size()),
            "Given '{}', expected every quantized tensor among its model tensors", source);
  const std::map<std::string, std::string> metadata = {{"format", kPackedFormat},
                                                       {"format_version", std::to_string(kPackedVersion)},
                                                       {"arch", arch},
                                                       {"quantized", described.dump()},
                                                       {"checksum", packed_model_checksum(tensors, arch, layouts)}};
  // Read back before anything is written: what lands at `out` is known to unpack to this model.
  const std::vector<uint8_t> bytes = serialize_safetensors(tensors, metadata);
  const UnpackedModel check = unpack_model(parse_safetensors(bytes, out));
  for (const auto& [name, t] : check.weights.tensors) {
    const StoredTensor* original = model.find(name);
    const bool same = original != nullptr && original->dtype == t.dtype && original->shape == t.shape &&
                      (t.dtype == StoredDtype::F32 ? std::memcmp(original->f32.data(), t.f32.data(),
                                                                 static_cast<size_t>(t.numel()) * sizeof(float)) == 0
                                                   : original->i64 == t.i64);
    INQ_CHECK(same, "Given '{}', expected its packed form to unpack to the same '{}', but it does not", source,
              name);
  }
  write_file_atomically(out, bytes);
  summary.file_bytes = static_cast<int64_t>(bytes.size());
  summary.float_file_bytes = static_cast<int64_t>(serialize_safetensors(check.weights.tensors).size());
  return summary;
}

CheckedPackedModel check_packed_model(const SafetensorsFile& packed) {
  const std::string& path = packed.source;
  INQ_CHECK(is_packed_model(packed), "Given '{}', expected an INQ packed model (metadata format = '{}')", path,
            kPackedFormat);
  auto get = [&](const char* key) -> const std::string& {
    const std::string* v = metadata_value(packed, key);
    INQ_CHECK(v != nullptr, "Given packed model '{}', expected metadata key '{}', but it is missing", path, key);
    return *v;
  };
  const std::string& version = get("format_version");
  const bool without_checksum = version == std::to_string(kPackedVersionWithoutChecksum);
  const bool v3 = version == std::to_string(kPackedVersion);
  INQ_CHECK(v3 || version == std::to_string(kPackedVersionDense) || without_checksum,
            "Given packed model '{}', expected format version {} (or {}, dense only, or {}, without a checksum), but "
            "got '{}'", path, kPackedVersion, kPackedVersionDense, kPackedVersionWithoutChecksum, version);
  CheckedPackedModel out;
  out.arch = get("arch");
  nlohmann::json described;
  try {
    described = nlohmann::json::parse(get("quantized"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("Given packed model '{}', expected JSON in its 'quantized' metadata: {}", path, e.what()));
  }
  INQ_CHECK(described.is_object(), "Given packed model '{}', expected 'quantized' to be a JSON object", path);

  // Shape and codebook of every packed tensor.
  for (const auto& item : described.items()) {
    const std::string& name = item.key();
    PackedLayout& p = out.quantized[name];
    p = read_layout(path, name, item.value(), v3, /*strict=*/true);
    try {
      p.codebook.validate(name);
    } catch (const Error& e) {
      throw Error(fmt::format("Given packed model '{}': {}", path, e.what()));
    }
    const StoredTensor* codes = packed.find(name);
    INQ_CHECK(codes != nullptr && codes->dtype == StoredDtype::U8 && codes->shape.size() == 1,
              "Given packed model '{}', expected the codes of '{}' as a one-dimensional U8 tensor", path, name);
  }
  // The checksum covers every code, every other tensor and the metadata that gives the codes their
  // meaning, so one valid code changed into another, or n1 and n2 shifted together, is caught here.
  if (without_checksum) {
    INQ_CHECK(metadata_value(packed, "checksum") == nullptr,
              "Given packed model '{}' of format version {}, expected no 'checksum' (versions {} and {} have one)",
              path, version, kPackedVersionDense, kPackedVersion);
    std::fprintf(stderr,
                 "warning: packed model '%s' is format version %d, without a checksum: its codes cannot be checked "
                 "for corruption; re-pack it from its checkpoint with inq pack\n",
                 path.c_str(), kPackedVersionWithoutChecksum);
  } else {
    const std::string& stored = get("checksum");
    const std::string computed = packed_model_checksum(packed.tensors, out.arch, out.quantized);
    INQ_CHECK(stored == computed,
              "Given packed model '{}', expected its checksum '{}' to match its contents, but they give '{}': the "
              "file is corrupt (a code, a tensor or the metadata changed after packing)",
              path, stored, computed);
    out.checksum = stored;
  }
  for (const auto& [name, t] : packed.tensors)
    INQ_CHECK(t.dtype != StoredDtype::U8 || out.quantized.count(name) != 0,
              "Given packed model '{}', expected every U8 tensor to be described in 'quantized', but '{}' is not",
              path, name);
  return out;
}

UnpackedModel unpack_model(const SafetensorsFile& packed) {
  const std::string& path = packed.source;
  const CheckedPackedModel checked = check_packed_model(packed);
  UnpackedModel out;
  out.arch = checked.arch;
  out.checksum = checked.checksum;
  for (const auto& [name, layout] : checked.quantized) {
    out.codebooks.emplace(name, layout.codebook);
    out.quantized_weights += shape_numel(layout.shape);
  }
  for (const auto& [name, t] : packed.tensors) {
    auto it = checked.quantized.find(name);
    if (it == checked.quantized.end()) {
      out.weights.tensors.emplace_back(name, t);
      continue;
    }
    // dense_codes names the file itself; unpack_tensor's messages get it added.
    PackedTensor p{.shape = it->second.shape, .codebook = it->second.codebook,
                   .codes = dense_codes(path, name, it->second, t.u8)};
    try {
      out.weights.tensors.emplace_back(name, StoredTensor::from_tensor(unpack_tensor(name, p)));
    } catch (const Error& e) {
      throw Error(fmt::format("Given packed model '{}': {}", path, e.what()));
    }
  }
  out.weights.source = path;
  out.weights.metadata = {{"arch", out.arch}};
  return out;
}

}  // namespace inq
