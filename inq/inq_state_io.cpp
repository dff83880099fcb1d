#include "inq/inq_state.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "framework/error.h"
#include "framework/json_value.h"

namespace inq {

using json = nlohmann::json;

namespace {
bool ends_with(const std::string& name, std::string_view suffix) {
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool is_inq_state_tensor(const std::string& name) {
  return ends_with(name, kInqMaskSuffix) || ends_with(name, kInqPruneMaskSuffix);
}

NamedTensorList inq_state_tensors(const InqState& state) {
  NamedTensorList out;
  for (const auto& [name, record] : state.params)
    out.emplace_back(name + kInqMaskSuffix, record.mask.clone());
  for (const auto& [name, mask] : state.pruned) out.emplace_back(name + kInqPruneMaskSuffix, mask.clone());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
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
  json out = j;
  if (!state.pruned.empty()) {
    json pruned = json::object();
    for (const auto& [name, r] : state.params) pruned[name] = r.pruned;
    // Before step 1 there are no records yet: the counts come from the masks themselves.
    for (const auto& [name, mask] : state.pruned)
      if (!pruned.contains(name)) {
        int64_t zeros = 0;
        for (int64_t i = 0; i < mask.numel(); ++i) zeros += mask.data()[i] == 0 ? 1 : 0;
        pruned[name] = zeros;
      }
    out["pruned"] = pruned;
  }
  return out.dump();
}
namespace {

// What one load_inq_state call checks against, and the problems it has found so far.
struct Load {
  const InqOptions& options;
  std::vector<double> portions;  // options.resolved_portions()
  std::vector<std::string> problems;
  std::map<std::string, int64_t> pruned = {};       // "pruned" counts of the metadata, by tensor
  std::map<std::string, Tensor> prune_masks = {};   // "<param>.prune_mask" tensors, by tensor

  int steps() const { return static_cast<int>(portions.size()); }
  template <class... Args>
  void problem(fmt::format_string<Args...> format, Args&&... args) {
    problems.push_back(fmt::format(format, std::forward<Args>(args)...));
  }
};

std::string text(int64_t v) { return std::to_string(v); }
std::string text(uint64_t v) { return std::to_string(v); }
std::string text(const std::string& v) { return v; }
std::string text(const std::vector<double>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }
std::string text(const std::vector<std::string>& v) { return fmt::format("[{}]", fmt::join(v, ", ")); }

template <class T>
void expect_option(Load& load, const char* what, const std::optional<T>& got, const T& want) {
  if (got && *got != want)
    load.problem("{} is {} in the state but {} in this run's options", what, text(*got), text(want));
}

// The format, and the options the state was built with, which must be this run's.
void check_options(JsonObjectReader& top, Load& load) {
  const auto format = top.required<std::string>("format");
  if (format && *format != kInqStateFormat)
    load.problem("metadata: format is '{}', not '{}'", *format, kInqStateFormat);
  const auto version = top.required<int64_t>("version");
  if (version && *version != kInqStateVersion)
    load.problem("metadata: version is {}, but this build reads version {}", *version, kInqStateVersion);
  const InqOptions& options = load.options;
  expect_option<int64_t>(load, "bits", top.required<int64_t>("bits"), options.bits);
  expect_option(load, "portions", top.required<std::vector<double>>("portions"), load.portions);
  expect_option<std::string>(load, "strategy", top.required<std::string>("strategy"),
                             partition_strategy_name(options.strategy));
  expect_option(load, "seed", top.required<uint64_t>("seed"), options.seed);
  expect_option(load, "exclude", top.required<std::vector<std::string>>("exclude"), options.exclude);
}

std::optional<int64_t> read_steps_begun(JsonObjectReader& top, Load& load) {
  const auto steps_begun = top.required<int64_t>("steps_begun");
  if (steps_begun && (*steps_begun < 0 || *steps_begun > load.steps()))
    load.problem("metadata: steps_begun is {}, expected 0..{}", *steps_begun, load.steps());
  return steps_begun;
}

void read_generator(JsonObjectReader& top, InqState& state, Load& load) {
  const auto generator = top.required<std::string>("generator");
  if (!generator) return;
  try {
    state.generator.set_state(*generator);
  } catch (const Error& e) {
    load.problem("metadata: generator state is not valid: {}", e.what());
  }
}

// The masks by parameter name; every tensor given must be one, given once.
std::map<std::string, Tensor> masks_by_parameter(const NamedTensorList& tensors, Load& load) {
  std::map<std::string, Tensor> masks;
  for (const auto& [name, t] : tensors) {
    if (ends_with(name, kInqPruneMaskSuffix)) {
      const std::string param = name.substr(0, name.size() - std::string_view(kInqPruneMaskSuffix).size());
      if (!load.prune_masks.emplace(param, t).second) load.problem("'{}' appears more than once", name);
      continue;
    }
    if (!is_inq_state_tensor(name)) {
      load.problem("'{}' is not '<parameter>{}' or '<parameter>{}'", name, kInqMaskSuffix, kInqPruneMaskSuffix);
      continue;
    }
    const std::string param = name.substr(0, name.size() - std::string_view(kInqMaskSuffix).size());
    if (!masks.emplace(param, t).second) load.problem("'{}' appears more than once", name);
  }
  return masks;
}

// One tensor's entry under "tensors".
struct TensorEntry {
  int64_t numel;
  int bits, n1, n2;
  int64_t step, frozen, saturated;
};

std::optional<TensorEntry> read_tensor_entry(JsonObjectReader& entry) {
  const auto numel = entry.required<int64_t>("numel");
  const auto bits = entry.required<int>("bits");
  const auto n1 = entry.required<int>("n1");
  const auto n2 = entry.required<int>("n2");
  const auto step = entry.required<int64_t>("step");
  const auto frozen = entry.required<int64_t>("frozen");
  const auto saturated = entry.required<int64_t>("saturated");
  entry.reject_unknown();
  if (!numel || !bits || !n1 || !n2 || !step || !frozen || !saturated) return std::nullopt;
  return TensorEntry{*numel, *bits, *n1, *n2, *step, *frozen, *saturated};
}

// The entry against its parameter and this run's options; returns its codebook.
Codebook check_tensor_entry(const TensorEntry& t, const NamedParameter& p, int64_t steps_begun, Load& load) {
  const std::string where = fmt::format("tensor '{}'", p.name);
  const int64_t n = p.tensor.numel();
  if (t.numel != n) load.problem("{}: numel is {}, but the parameter has {}", where, t.numel, n);
  if (t.bits != load.options.bits)
    load.problem("{}: bits is {}, but this run's bits are {}", where, t.bits, load.options.bits);
  if (t.step != steps_begun)
    load.problem("{}: step is {}, but steps_begun is {}", where, t.step, steps_begun);
  const Codebook cb{.bits = t.bits, .n1 = t.n1, .n2 = t.n2};
  try {
    cb.validate(p.name);
  } catch (const Error& e) {
    load.problem("{}: {}", where, e.what());
  }
  const auto pruned_it = load.pruned.find(p.name);
  const int64_t pruned = pruned_it == load.pruned.end() ? 0 : pruned_it->second;
  if (t.step >= 1 && t.step <= load.steps() && pruned >= 0 && pruned <= n) {
    const int64_t target = pruned + frozen_target(load.portions[static_cast<size_t>(t.step - 1)], n - pruned);
    if (t.frozen != target)
      load.problem("{}: frozen is {}, but step {} of portions {} freezes {} of {} weights ({} of them pruned)", where,
                   t.frozen, t.step, text(load.portions), target, n, pruned);
  }
  if (t.saturated < 0 || t.saturated > t.frozen)
    load.problem("{}: saturated is {}, expected 0..frozen ({})", where, t.saturated, t.frozen);
  return cb;
}

// The mask of `p`: the parameter's shape, only 0 and 1, `frozen` zeros.
void check_mask(const Tensor& mask, const NamedParameter& p, int64_t frozen, Load& load) {
  if (!mask.defined() || mask.shape() != p.tensor.shape()) {
    load.problem("'{}{}' has shape {} but the parameter has shape {}", p.name, kInqMaskSuffix,
                 mask.defined() ? shape_str(mask.shape()) : "undefined", shape_str(p.tensor.shape()));
    return;
  }
  int64_t zeros = 0, others = 0;
  const float* m = mask.data();
  for (int64_t i = 0; i < mask.numel(); ++i) {
    zeros += m[i] == 0 ? 1 : 0;
    others += (m[i] != 0 && m[i] != 1) ? 1 : 0;
  }
  if (others != 0)
    load.problem("'{}{}' holds {} values other than 0 and 1", p.name, kInqMaskSuffix, others);
  else if (zeros != frozen)
    load.problem("'{}{}' has {} frozen entries, but the metadata says {}", p.name, kInqMaskSuffix, zeros,
                 frozen);
}

// The record of `p` from its entry and mask, or nothing when either has a problem.
std::optional<InqParamState> load_record(JsonObjectReader& entry, const NamedParameter& p,
                                         int64_t steps_begun, const std::map<std::string, Tensor>& masks,
                                         Load& load) {
  const auto t = read_tensor_entry(entry);
  if (!t) return std::nullopt;
  const size_t before = load.problems.size();
  const Codebook cb = check_tensor_entry(*t, p, steps_begun, load);
  const auto mask = masks.find(p.name);
  if (mask == masks.end()) {
    load.problem("'{}{}' is missing", p.name, kInqMaskSuffix);
    return std::nullopt;
  }
  check_mask(mask->second, p, t->frozen, load);
  if (load.problems.size() != before) return std::nullopt;
  // Every pruned weight is frozen (mask 0) from step 1 on.
  int64_t pruned = 0;
  if (const auto pm = load.prune_masks.find(p.name); pm != load.prune_masks.end() && pm->second.defined() &&
                                                     pm->second.shape() == mask->second.shape()) {
    const float* pmask = pm->second.data();
    const float* m = mask->second.data();
    int64_t released = 0;
    for (int64_t i = 0; i < pm->second.numel(); ++i) {
      pruned += pmask[i] == 0 ? 1 : 0;
      released += (pmask[i] == 0 && m[i] != 0) ? 1 : 0;
    }
    if (released > 0)
      load.problem("'{}{}' marks {} pruned weights as still float", p.name, kInqMaskSuffix, released);
  }
  if (load.problems.size() != before) return std::nullopt;
  InqParamState record{
      .codebook = cb, .mask = mask->second.clone(), .frozen = t->frozen, .pruned = pruned,
      .step = static_cast<int>(t->step), .saturated = t->saturated};
  // -0.0 counts as frozen above (it equals 0); store the canonical value.
  float* m = record.mask.data();
  for (int64_t i = 0; i < record.mask.numel(); ++i) m[i] = m[i] == 0 ? 0.0f : 1.0f;
  return record;
}

// The records of "tensors": none before step 1, then one per quantized parameter and no other.
void load_records(JsonObjectReader& entries, int64_t steps_begun,
                  const std::vector<NamedParameter>& quantized, const std::map<std::string, Tensor>& masks,
                  Load& load, InqState& state) {
  if (steps_begun <= 0) {  // below 0 is a problem already
    if (!entries.value().empty())
      load.problem("metadata: tensors must be empty before step 1 (steps_begun is 0)");
    return;
  }
  std::set<std::string> names;
  for (const auto& p : quantized) names.insert(p.name);
  for (const auto& item : entries.value().items())
    if (!names.count(item.key()))
      load.problem("metadata: tensor '{}' is not a quantized parameter of this optimizer", item.key());
  for (const auto& p : quantized) {
    if (!entries.has(p.name)) {
      load.problem("metadata: quantized parameter '{}' has no entry", p.name);
      continue;
    }
    auto entry = entries.object(p.name, fmt::format("tensor '{}'", p.name));
    if (!entry) continue;
    if (auto record = load_record(*entry, p, steps_begun, masks, load))
      state.params[p.name] = std::move(*record);
  }
}

// Every mask must belong to a quantized parameter of a started state.
void check_masks_claimed(const std::map<std::string, Tensor>& masks, bool started,
                         const std::vector<NamedParameter>& quantized, Load& load) {
  // A named variable rather than a structured binding: clang 14 (the fuzz build) cannot capture
  // structured bindings in lambdas.
  for (const auto& mask_entry : masks) {
    const std::string& param = mask_entry.first;
    if (!started ||
        std::none_of(quantized.begin(), quantized.end(), [&](const auto& p) { return p.name == param; }))
      load.problem("'{}{}' names no quantized parameter of this INQ state", param, kInqMaskSuffix);
  }
}

// The pruning masks: one per "pruned" count and no other, each of a quantized parameter's shape,
// 0 and 1 only, with that many zeros. Accepted ones go into state.pruned.
void check_pruning_masks(const std::vector<NamedParameter>& quantized, Load& load, InqState& state) {
  for (const auto& count : load.pruned)
    if (!load.prune_masks.count(count.first))
      load.problem("metadata: pruned names '{}', but '{}{}' is missing", count.first, count.first, kInqPruneMaskSuffix);
  for (const auto& [binding_name, mask] : load.prune_masks) {
    const std::string& name = binding_name;  // lambdas cannot capture structured bindings before C++20
    const auto p = std::find_if(quantized.begin(), quantized.end(), [&](const auto& q) { return q.name == name; });
    const auto count = load.pruned.find(name);
    if (p == quantized.end() || count == load.pruned.end()) {
      load.problem("'{}{}' names no quantized parameter with a pruned count in the metadata", name,
                   kInqPruneMaskSuffix);
      continue;
    }
    if (!mask.defined() || mask.shape() != p->tensor.shape()) {
      load.problem("'{}{}' has shape {} but the parameter has shape {}", name, kInqPruneMaskSuffix,
                   mask.defined() ? shape_str(mask.shape()) : "undefined", shape_str(p->tensor.shape()));
      continue;
    }
    int64_t zeros = 0, others = 0;
    for (int64_t i = 0; i < mask.numel(); ++i) {
      zeros += mask.data()[i] == 0 ? 1 : 0;
      others += (mask.data()[i] != 0 && mask.data()[i] != 1) ? 1 : 0;
    }
    if (others > 0 || zeros != count->second) {
      load.problem("'{}{}' has {} pruned entries and {} values other than 0 and 1, but the metadata says {} pruned",
                   name, kInqPruneMaskSuffix, zeros, others, count->second);
      continue;
    }
    state.pruned[name] = mask.clone();
  }
}

}  // namespace

InqState load_inq_state(const NamedTensorList& tensors, const std::string& metadata,
                        const InqOptions& options, const std::vector<NamedParameter>& quantized) {
  options.validate();
  Load load{.options = options, .portions = options.resolved_portions(), .problems = {}};
  const json root = parse_json_object(metadata, "INQ state metadata");
  InqState state = make_inq_state(options);
  JsonObjectReader top = JsonObjectReader::collecting(root, "metadata", load.problems);
  check_options(top, load);
  const auto steps_begun = read_steps_begun(top, load);
  read_generator(top, state, load);
  auto entries = top.object("tensors");
  // Only an INQ run that started from a pruned model has "pruned": {"<param>": count, ...}.
  if (auto pruned = top.optional_object("pruned")) {
    for (const auto& item : pruned->value().items())
      if (const auto n = pruned->required<int64_t>(item.key())) {
        if (*n < 0) load.problem("metadata: pruned count of '{}' is {}, expected >= 0", item.key(), *n);
        load.pruned[item.key()] = *n;
      }
  }
  top.reject_unknown();
  const std::map<std::string, Tensor> masks = masks_by_parameter(tensors, load);
  check_pruning_masks(quantized, load, state);
  if (entries && steps_begun) load_records(*entries, *steps_begun, quantized, masks, load, state);
  check_masks_claimed(masks, steps_begun && *steps_begun > 0, quantized, load);

  if (!load.problems.empty()) {
    std::string m =
        "Given an INQ state (masks and metadata), expected one matching this run's options and "
        "quantized parameters, but got:";
    for (const auto& line : load.problems) m += "\n  " + line;
    throw Error(m);
  }
  state.steps_begun = static_cast<int>(*steps_begun);
  return state;
}

}  // namespace inq
