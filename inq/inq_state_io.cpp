#include "inq/inq_state.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "framework/error.h"

namespace inq {

using json = nlohmann::json;

bool is_inq_state_tensor(const std::string& name) {
  const std::string_view suffix = kInqMaskSuffix;
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

NamedTensorList inq_state_tensors(const InqState& state) {
  NamedTensorList out;
  for (const auto& [name, record] : state.params)
    out.emplace_back(name + kInqMaskSuffix, record.mask.clone());
  return out;
}

std::string inq_state_metadata(const InqState& state, const InqOptions& options) {
  json tensors = json::object();
  for (const auto& [name, r] : state.params)
    tensors[name] = {{"numel", r.mask.numel()}, {"bits", r.codebook.bits}, {"n1", r.codebook.n1},
                     {"n2", r.codebook.n2},     {"step", r.step},          {"frozen", r.frozen},
                     {"saturated", r.saturated}};
  const json j = {{"format", kInqStateFormat},
                  {"version", kInqStateVersion},
                  {"bits", options.bits},
                  {"portions", options.resolved_portions()},
                  {"strategy", partition_strategy_name(options.strategy)},
                  {"seed", options.seed},
                  {"exclude", options.exclude},
                  {"steps_begun", state.steps_begun},
                  {"generator", state.generator.state()},
                  {"tensors", tensors}};
  return j.dump();
}

namespace {

// nlohmann keeps the last of duplicate keys silently; the callback refuses them instead.
json parse_json_strict(const std::string& text) {
  std::vector<std::set<std::string>> open;
  auto callback = [&](int, json::parse_event_t event, json& parsed) -> bool {
    if (event == json::parse_event_t::object_start) open.emplace_back();
    if (event == json::parse_event_t::object_end) open.pop_back();
    if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      INQ_CHECK(open.back().insert(key).second,
                "Given INQ state metadata, expected unique keys, but '{}' appears more than once", key);
    }
    return true;
  };
  try {
    return json::parse(text, callback);
  } catch (const json::exception& e) {
    throw Error(
        fmt::format("Given INQ state metadata, expected a JSON object, but parsing failed: {}", e.what()));
  }
}

// Reads the fields of one JSON object, recording a problem for each missing, mistyped or unknown key.
class Fields {
 public:
  Fields(const json& object, std::string where, std::vector<std::string>& problems)
      : object_(object), where_(std::move(where)), problems_(problems) {}

  std::optional<int64_t> integer(const char* key) {
    const json* v = take(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_integer()) return wrong(key, "an integer", *v);
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      return wrong(key, "an integer in int64 range", *v);
    return v->get<int64_t>();
  }
  std::optional<uint64_t> unsigned_integer(const char* key) {
    const json* v = take(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_number_unsigned()) return wrong(key, "a non-negative integer", *v);
    return v->get<uint64_t>();
  }
  std::optional<std::string> string(const char* key) {
    const json* v = take(key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) return wrong(key, "a string", *v);
    return v->get<std::string>();
  }
  std::optional<std::vector<double>> numbers(const char* key) {
    const json* v = take(key);
    if (v == nullptr) return std::nullopt;
    std::vector<double> out;
    if (!v->is_array()) return wrong(key, "an array of numbers", *v);
    for (const auto& x : *v) {
      if (!x.is_number()) return wrong(key, "an array of numbers", *v);
      out.push_back(x.get<double>());
    }
    return out;
  }
  std::optional<std::vector<std::string>> strings(const char* key) {
    const json* v = take(key);
    if (v == nullptr) return std::nullopt;
    std::vector<std::string> out;
    if (!v->is_array()) return wrong(key, "an array of strings", *v);
    for (const auto& x : *v) {
      if (!x.is_string()) return wrong(key, "an array of strings", *v);
      out.push_back(x.get<std::string>());
    }
    return out;
  }
  const json* object(const char* key) {
    const json* v = take(key);
    if (v == nullptr || v->is_object()) return v;
    wrong(key, "an object", *v);
    return nullptr;
  }
  // Records every key that no accessor asked for.
  void reject_unknown() {
    for (const auto& [key, value] : object_.items())
      if (!asked_.count(key)) problems_.push_back(fmt::format("{}: unknown key '{}'", where_, key));
  }

 private:
  const json* take(const char* key) {
    asked_.insert(key);
    const auto it = object_.find(key);
    if (it == object_.end()) {
      problems_.push_back(fmt::format("{}: missing key '{}'", where_, key));
      return nullptr;
    }
    return &*it;
  }
  std::nullopt_t wrong(const char* key, const char* expected, const json& v) {
    problems_.push_back(fmt::format("{}: '{}' should be {}, but is {}", where_, key, expected, v.dump()));
    return std::nullopt;
  }

  const json& object_;
  std::string where_;
  std::vector<std::string>& problems_;
  std::set<std::string> asked_;
};

template <class T>
void expect_equal(std::vector<std::string>& problems, const char* what, const std::optional<T>& got,
                  const T& want, const std::string& got_text, const std::string& want_text) {
  if (got && *got != want)
    problems.push_back(
        fmt::format("{} is {} in the state but {} in this run's options", what, got_text, want_text));
}

std::string join_doubles(const std::vector<double>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }
std::string join_strings(const std::vector<std::string>& v) {
  return fmt::format("[{}]", fmt::join(v, ", "));
}

}  // namespace

InqState load_inq_state(const NamedTensorList& tensors, const std::string& metadata,
                        const InqOptions& options, const std::vector<NamedParameter>& quantized) {
  options.validate();
  const std::vector<double> portions = options.resolved_portions();
  const int steps = static_cast<int>(portions.size());
  const json root = parse_json_strict(metadata);
  INQ_CHECK(root.is_object(), "Given INQ state metadata, expected a JSON object, but got {} instead",
            root.type_name());

  std::vector<std::string> problems;
  InqState state = make_inq_state(options);
  Fields top(root, "metadata", problems);
  const auto format = top.string("format");
  if (format && *format != kInqStateFormat)
    problems.push_back(fmt::format("metadata: format is '{}', not '{}'", *format, kInqStateFormat));
  const auto version = top.integer("version");
  if (version && *version != kInqStateVersion)
    problems.push_back(
        fmt::format("metadata: version is {}, but this build reads version {}", *version, kInqStateVersion));
  const auto bits = top.integer("bits");
  expect_equal<int64_t>(problems, "bits", bits, options.bits, bits ? std::to_string(*bits) : "",
                        std::to_string(options.bits));
  const auto got_portions = top.numbers("portions");
  expect_equal(problems, "portions", got_portions, portions, got_portions ? join_doubles(*got_portions) : "",
               join_doubles(portions));
  const auto strategy = top.string("strategy");
  const std::string want_strategy = partition_strategy_name(options.strategy);
  expect_equal(problems, "strategy", strategy, want_strategy, strategy.value_or(""), want_strategy);
  const auto seed = top.unsigned_integer("seed");
  expect_equal(problems, "seed", seed, options.seed, seed ? std::to_string(*seed) : "",
               std::to_string(options.seed));
  const auto exclude = top.strings("exclude");
  expect_equal(problems, "exclude", exclude, options.exclude, exclude ? join_strings(*exclude) : "",
               join_strings(options.exclude));
  const auto steps_begun = top.integer("steps_begun");
  if (steps_begun && (*steps_begun < 0 || *steps_begun > steps))
    problems.push_back(fmt::format("metadata: steps_begun is {}, expected 0..{}", *steps_begun, steps));
  const auto generator = top.string("generator");
  if (generator) {
    try {
      state.generator.set_state(*generator);
    } catch (const Error& e) {
      problems.push_back(fmt::format("metadata: generator state is not valid: {}", e.what()));
    }
  }
  const json* entries = top.object("tensors");
  top.reject_unknown();

  // Masks by parameter name; every tensor given must be one.
  std::map<std::string, Tensor> masks;
  for (const auto& [name, t] : tensors) {
    if (!is_inq_state_tensor(name)) {
      problems.push_back(fmt::format("'{}' is not '<parameter>{}'", name, kInqMaskSuffix));
      continue;
    }
    const std::string param = name.substr(0, name.size() - std::string_view(kInqMaskSuffix).size());
    if (!masks.emplace(param, t).second) problems.push_back(fmt::format("'{}' appears more than once", name));
  }

  const bool started = steps_begun && *steps_begun > 0;
  if (entries != nullptr && steps_begun) {
    std::set<std::string> names;
    for (const auto& p : quantized) names.insert(p.name);
    if (!started && !entries->empty())
      problems.push_back("metadata: tensors must be empty before step 1 (steps_begun is 0)");
    for (const auto& [name, value] : entries->items())
      if (started && !names.count(name))
        problems.push_back(
            fmt::format("metadata: tensor '{}' is not a quantized parameter of this optimizer", name));
    for (const auto& p : quantized) {
      if (!started) break;
      const auto it = entries->find(p.name);
      if (it == entries->end()) {
        problems.push_back(fmt::format("metadata: quantized parameter '{}' has no entry", p.name));
        continue;
      }
      if (!it->is_object()) {
        problems.push_back(
            fmt::format("metadata: tensor '{}' should be an object, but is {}", p.name, it->dump()));
        continue;
      }
      const std::string where = fmt::format("tensor '{}'", p.name);
      Fields f(*it, where, problems);
      const auto numel = f.integer("numel");
      const auto t_bits = f.integer("bits");
      const auto n1 = f.integer("n1");
      const auto n2 = f.integer("n2");
      const auto step = f.integer("step");
      const auto frozen = f.integer("frozen");
      const auto saturated = f.integer("saturated");
      f.reject_unknown();
      if (!numel || !t_bits || !n1 || !n2 || !step || !frozen || !saturated) continue;
      const size_t before = problems.size();
      const int64_t n = p.tensor.numel();
      if (*numel != n)
        problems.push_back(fmt::format("{}: numel is {}, but the parameter has {}", where, *numel, n));
      if (*t_bits != options.bits)
        problems.push_back(
            fmt::format("{}: bits is {}, but this run's bits are {}", where, *t_bits, options.bits));
      if (*step != *steps_begun)
        problems.push_back(fmt::format("{}: step is {}, but steps_begun is {}", where, *step, *steps_begun));
      Codebook cb;
      if (*n1 < INT32_MIN || *n1 > INT32_MAX || *n2 < INT32_MIN || *n2 > INT32_MAX) {
        problems.push_back(fmt::format("{}: n1 = {} or n2 = {} is out of range", where, *n1, *n2));
      } else {
        cb = Codebook{
            .bits = static_cast<int>(*t_bits), .n1 = static_cast<int>(*n1), .n2 = static_cast<int>(*n2)};
        try {
          cb.validate(p.name);
        } catch (const Error& e) {
          problems.push_back(fmt::format("{}: {}", where, e.what()));
        }
      }
      if (*step >= 1 && *step <= steps &&
          *frozen != frozen_target(portions[static_cast<size_t>(*step - 1)], n))
        problems.push_back(fmt::format(
            "{}: frozen is {}, but step {} of portions {} freezes {} of {} weights", where, *frozen, *step,
            join_doubles(portions), frozen_target(portions[static_cast<size_t>(*step - 1)], n), n));
      if (*saturated < 0 || *saturated > *frozen)
        problems.push_back(
            fmt::format("{}: saturated is {}, expected 0..frozen ({})", where, *saturated, *frozen));
      const auto mask_it = masks.find(p.name);
      if (mask_it == masks.end()) {
        problems.push_back(fmt::format("'{}{}' is missing", p.name, kInqMaskSuffix));
        continue;
      }
      const Tensor& mask = mask_it->second;
      if (!mask.defined() || mask.shape() != p.tensor.shape()) {
        problems.push_back(fmt::format("'{}{}' has shape {} but the parameter has shape {}", p.name,
                                       kInqMaskSuffix, mask.defined() ? shape_str(mask.shape()) : "undefined",
                                       shape_str(p.tensor.shape())));
        continue;
      }
      int64_t zeros = 0, others = 0;
      const float* m = mask.data();
      for (int64_t i = 0; i < mask.numel(); ++i) {
        zeros += m[i] == 0 ? 1 : 0;
        others += (m[i] != 0 && m[i] != 1) ? 1 : 0;
      }
      if (others != 0)
        problems.push_back(
            fmt::format("'{}{}' holds {} values other than 0 and 1", p.name, kInqMaskSuffix, others));
      else if (zeros != *frozen)
        problems.push_back(fmt::format("'{}{}' has {} frozen entries, but the metadata says {}", p.name,
                                       kInqMaskSuffix, zeros, *frozen));
      if (problems.size() != before) continue;
      InqParamState record{.codebook = cb,
                           .mask = mask.clone(),
                           .frozen = *frozen,
                           .step = static_cast<int>(*step),
                           .saturated = *saturated};
      // -0.0 counts as frozen above (it equals 0); store the canonical value.
      float* mm = record.mask.data();
      for (int64_t i = 0; i < record.mask.numel(); ++i) mm[i] = mm[i] == 0 ? 0.0f : 1.0f;
      state.params[p.name] = std::move(record);
    }
  }
  // A named variable rather than a structured binding: clang 14 (the fuzz build) cannot capture
  // structured bindings in lambdas.
  for (const auto& mask_entry : masks) {
    const std::string& param = mask_entry.first;
    if (!started ||
        std::none_of(quantized.begin(), quantized.end(), [&](const auto& p) { return p.name == param; }))
      problems.push_back(
          fmt::format("'{}{}' names no quantized parameter of this INQ state", param, kInqMaskSuffix));
  }

  if (!problems.empty()) {
    std::string m =
        "Given an INQ state (masks and metadata), expected one matching this run's options and "
        "quantized parameters, but got:";
    for (const auto& line : problems) m += "\n  " + line;
    throw Error(m);
  }
  state.steps_begun = static_cast<int>(*steps_begun);
  return state;
}

}  // namespace inq
