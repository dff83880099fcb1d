#include "framework/state_dict.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "framework/error.h"

namespace inq {

std::string LoadStateReport::message(const std::string& source) const {
  if (ok()) return "";
  auto quoted = [](const std::vector<std::string>& names) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) s += (i ? ", \"" : "\"") + names[i] + "\"";
    return s;
  };
  std::string m = fmt::format(
      "Given weights '{}', expected every tensor to match the model by name and shape, but got:", source);
  if (!missing.empty()) m += fmt::format("\n  Missing key(s) in file: {}.", quoted(missing));
  if (!unexpected.empty()) m += fmt::format("\n  Unexpected key(s) in file: {}.", quoted(unexpected));
  for (const auto& line : mismatched) m += "\n  " + line;
  return m;
}

std::string LoadStateReport::optional_missing_note(const std::string& source) const {
  if (optional_missing.empty()) return "";
  std::vector<std::string> groups;
  for (const auto& name : optional_missing) {
    const std::string group = name.substr(0, name.find('.')) + ".*";
    if (std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(group);
  }
  return fmt::format("=> note: weights '{}' have no {} ({} tensors); the model keeps its initial values there", source,
                     fmt::join(groups, ", "), optional_missing.size());
}

namespace {

// Why `stored` cannot go into `dst`, or "" when it can.
std::string mismatch(const std::string& name, const StoredTensor& stored, const Tensor& dst) {
  if (stored.shape != dst.shape())
    return fmt::format(
        "size mismatch for {}: copying a {} tensor with shape {} from the file, the shape in the model is "
        "{}.",
        name, stored_dtype_name(stored.dtype), shape_str(stored.shape), shape_str(dst.shape()));
  if (stored.dtype == StoredDtype::U8)
    return fmt::format("dtype mismatch for {}: a U8 tensor (bit-packed codes?) cannot be loaded into a float "
                       "tensor; unpack an INQ packed model first.", name);
  if (stored.dtype == StoredDtype::I64) {
    for (int64_t v : stored.i64) {
      // Exact round trip through float, checked without converting an out-of-range float back.
      const float f = static_cast<float>(v);
      if (!(std::fabs(f) < 9.2e18f) || static_cast<int64_t>(f) != v)
        return fmt::format(
            "value mismatch for {}: the I64 value {} cannot be represented exactly as a float.", name, v);
    }
  }
  return "";
}

}  // namespace

LoadStateReport load_state_dict(const NamedTensorList& destination, const SafetensorsFile& file,
                                bool strict, const NamePredicate& optional) {
  auto is_optional = [&](const std::string& name) { return optional && optional(name); };
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : destination) {
    INQ_CHECK(
        by_name.emplace(name, &t).second,
        "Given a model to load '{}' into, expected unique tensor names, but '{}' appears more than once",
        file.source, name);
    INQ_CHECK(t.defined(), "Given a model to load '{}' into, expected defined tensors, but '{}' is undefined",
              file.source, name);
  }

  LoadStateReport report;
  std::vector<std::pair<const StoredTensor*, Tensor>> copies;
  std::map<std::string, bool> found;
  for (const auto& [name, stored] : file.tensors) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      (is_optional(name) ? report.optional_ignored : report.unexpected).push_back(name);
      continue;
    }
    found[name] = true;
    std::string why = mismatch(name, stored, *it->second);
    if (!why.empty()) {
      report.mismatched.push_back(why);
      continue;
    }
    copies.emplace_back(&stored, *it->second);
    report.loaded.push_back(name);
  }
  // The destination's optional names come all or none: a file with part of them is incomplete.
  const bool optional_in_file = std::any_of(destination.begin(), destination.end(), [&](const auto& d) {
    return found.count(d.first) && is_optional(d.first);
  });
  for (const auto& [name, t] : destination) {
    if (found.count(name)) continue;
    (is_optional(name) && !optional_in_file ? report.optional_missing : report.missing).push_back(name);
  }

  if (!report.mismatched.empty() || (strict && !report.ok())) throw Error(report.message(file.source));

  for (auto& [stored, dst] : copies) {
    float* out = dst.data();
    if (stored->dtype == StoredDtype::F32) {
      dst.copy_from(stored->f32);
    } else {
      for (size_t i = 0; i < stored->i64.size(); ++i) out[i] = static_cast<float>(stored->i64[i]);
    }
  }
  return report;
}

}  // namespace inq
