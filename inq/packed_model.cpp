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

}  // namespace

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
    add_text(q != quantized.end() ? fmt::format("codes {} bits {} n1 {} n2 {}", shape_text(q->second.shape),
                                                q->second.codebook.bits, q->second.codebook.n1, q->second.codebook.n2)
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
  for (const auto& item : described.items()) {
    auto what = [&](const char* key) {
      return fmt::format("packed model '{}' tensor '{}' key '{}'", packed.source, item.key(), key);
    };
    const nlohmann::json& d = item.value();
    INQ_CHECK(d.is_object() && d.contains("shape") && d.contains("bits") && d.contains("n1") && d.contains("n2"),
              "Given packed model '{}', expected tensor '{}' to be described by shape, bits, n1 and n2",
              packed.source, item.key());
    PackedLayout& l = layouts[item.key()];
    l.shape = packed_shape(item.value().at("shape"), what("shape"));
    l.codebook = Codebook{.bits = json_value<int>(item.value().at("bits"), what("bits")),
                          .n1 = json_value<int>(item.value().at("n1"), what("n1")),
                          .n2 = json_value<int>(item.value().at("n2"), what("n2"))};
  }
  return packed_model_checksum(packed.tensors, *arch, layouts);
}

bool is_packed_model(const SafetensorsFile& file) {
  const std::string* format = metadata_value(file, "format");
  return format != nullptr && *format == kPackedFormat;
}

PackSummary pack_model(const SafetensorsFile& model, const std::map<std::string, Codebook>& codebooks,
                       const std::string& arch, const std::string& out, const PackOptions& options) {
  const std::string& source = model.source;
  INQ_CHECK(!options.entropy_coding, "Given '{}', expected no entropy coding: not built yet (issue 14)", source);
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
    PackedTensor packed = pack_tensor(name, stored.f32, cb->second);
    described[name] = {{"shape", packed.shape}, {"bits", cb->second.bits}, {"n1", cb->second.n1},
                       {"n2", cb->second.n2}};
    layouts[name] = PackedLayout{packed.shape, cb->second};
    summary.quantized_tensors += 1;
    summary.quantized_weights += stored.f32.numel();
    summary.code_bytes += static_cast<int64_t>(packed.codes.size());
    summary.code_float_bytes += stored.f32.numel() * static_cast<int64_t>(sizeof(float));
    const Shape bytes_shape{static_cast<int64_t>(packed.codes.size())};
    tensors.emplace_back(name, StoredTensor::from_uint8(bytes_shape, std::move(packed.codes)));
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
  INQ_CHECK(version == std::to_string(kPackedVersion) || without_checksum,
            "Given packed model '{}', expected format version {} (or {}, without a checksum), but got '{}'", path,
            kPackedVersion, kPackedVersionWithoutChecksum, version);
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
    const nlohmann::json& d = item.value();
    auto what = [&](const char* key) { return fmt::format("packed model '{}' tensor '{}' key '{}'", path, name, key); };
    INQ_CHECK(d.is_object() && d.size() == 4 && d.contains("shape") && d.contains("bits") && d.contains("n1") &&
                  d.contains("n2"),
              "Given packed model '{}', expected tensor '{}' to be described by exactly shape, bits, n1 and n2, "
              "but got {}", path, name, d.dump());
    PackedLayout& p = out.quantized[name];
    p.shape = packed_shape(d.at("shape"), what("shape"));
    p.codebook = Codebook{.bits = json_value<int>(d.at("bits"), what("bits")),
                          .n1 = json_value<int>(d.at("n1"), what("n1")),
                          .n2 = json_value<int>(d.at("n2"), what("n2"))};
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
              "Given packed model '{}' of format version {}, expected no 'checksum' (version {} has one)", path,
              version, kPackedVersion);
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
    const PackedTensor p{.shape = it->second.shape, .codebook = it->second.codebook, .codes = t.u8};
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
