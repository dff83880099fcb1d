#include "inq/packed_model.h"

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

bool is_packed_model(const SafetensorsFile& file) {
  const std::string* format = metadata_value(file, "format");
  return format != nullptr && *format == kPackedFormat;
}

PackSummary pack_model(const SafetensorsFile& model, const std::map<std::string, Codebook>& codebooks,
                       const std::string& arch, const std::string& out) {
  const std::string& source = model.source;
  PackSummary summary;
  StoredTensors tensors;
  nlohmann::json described = nlohmann::json::object();
  for (const auto& [name, stored] : model.tensors) {
    auto cb = codebooks.find(name);
    if (cb == codebooks.end()) {
      tensors.emplace_back(name, stored);
      continue;
    }
    PackedTensor packed = pack_tensor(name, stored.f32, cb->second);
    described[name] = {{"shape", packed.shape}, {"bits", cb->second.bits}, {"n1", cb->second.n1},
                       {"n2", cb->second.n2}};
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
                                                       {"quantized", described.dump()}};
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

UnpackedModel unpack_model(const SafetensorsFile& packed) {
  const std::string& path = packed.source;
  INQ_CHECK(is_packed_model(packed), "Given '{}', expected an INQ packed model (metadata format = '{}')", path,
            kPackedFormat);
  auto get = [&](const char* key) -> const std::string& {
    const std::string* v = metadata_value(packed, key);
    INQ_CHECK(v != nullptr, "Given packed model '{}', expected metadata key '{}', but it is missing", path, key);
    return *v;
  };
  INQ_CHECK(get("format_version") == std::to_string(kPackedVersion),
            "Given packed model '{}', expected format version {}, but got '{}'", path, kPackedVersion,
            get("format_version"));
  UnpackedModel out;
  out.arch = get("arch");
  nlohmann::json described;
  try {
    described = nlohmann::json::parse(get("quantized"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("Given packed model '{}', expected JSON in its 'quantized' metadata: {}", path, e.what()));
  }
  INQ_CHECK(described.is_object(), "Given packed model '{}', expected 'quantized' to be a JSON object", path);

  // Shape and codebook of every packed tensor; the codes are read in file order below.
  std::map<std::string, PackedTensor> layout;
  for (const auto& item : described.items()) {
    const std::string& name = item.key();
    const nlohmann::json& d = item.value();
    auto what = [&](const char* key) { return fmt::format("packed model '{}' tensor '{}' key '{}'", path, name, key); };
    INQ_CHECK(d.is_object() && d.size() == 4 && d.contains("shape") && d.contains("bits") && d.contains("n1") &&
                  d.contains("n2"),
              "Given packed model '{}', expected tensor '{}' to be described by exactly shape, bits, n1 and n2, "
              "but got {}", path, name, d.dump());
    PackedTensor& p = layout[name];
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
    out.codebooks.emplace(name, p.codebook);
    out.quantized_weights += shape_numel(p.shape);
  }
  for (const auto& [name, t] : packed.tensors) {
    auto it = layout.find(name);
    if (it == layout.end()) {
      INQ_CHECK(t.dtype != StoredDtype::U8,
                "Given packed model '{}', expected every U8 tensor to be described in 'quantized', but '{}' is not",
                path, name);
      out.weights.tensors.emplace_back(name, t);
      continue;
    }
    PackedTensor& p = it->second;
    p.codes = t.u8;
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
