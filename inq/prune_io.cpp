// Saving and loading the pruning state (inq/prune.h): the masks and DNS's dense weights as tensors,
// everything else as one JSON object read strictly (framework/json_value.h), every problem listed.
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "framework/error.h"
#include "framework/json_value.h"
#include "inq/prune.h"

namespace inq {

using json = nlohmann::json;

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool is_prune_state_tensor(const std::string& name) {
  return ends_with(name, kPruneMaskSuffix) || ends_with(name, kDnsWeightSuffix);
}

NamedTensorList prune_state_tensors(const PruneState& state) {
  NamedTensorList out;
  for (const auto& [name, r] : state.params) {
    if (r.dense.defined()) out.emplace_back(name + kDnsWeightSuffix, r.dense.clone());
    out.emplace_back(name + kPruneMaskSuffix, r.mask.clone());
  }
  return out;
}

std::string prune_state_metadata(const PruneState& state, const PruneOptions& options) {
  json tensors = json::object();
  for (const auto& [name, r] : state.params)
    tensors[name] = {{"numel", r.mask.numel()}, {"pruned", r.pruned}, {"mu", r.mu},
                     {"sigma", r.sigma},        {"rate", r.rate},     {"threshold", r.threshold}};
  const json j = {{"format", kPruneStateFormat},
                  {"version", kPruneStateVersion},
                  {"method", prune_method_name(options.method)},
                  {"sparsity", options.sparsity},
                  {"scope", sparsity_scope_name(options.scope)},
                  {"rate", options.rate},
                  {"gamma", options.gamma},
                  {"power", options.power},
                  {"stop_iteration", options.stop_iteration},
                  {"seed", options.seed},
                  {"exclude", options.exclude},
                  {"layer_sparsity", options.layer_sparsity},
                  {"started", state.started},
                  {"generator", state.generator.state()},
                  {"tensors", tensors}};
  return j.dump();
}

namespace {

template <class T>
void expect_same(std::vector<std::string>& problems, const char* key, const std::optional<T>& got, const T& want) {
  if (got && *got != want)
    problems.push_back(fmt::format("{} is {} in the state but {} in this run's options", key, json(*got).dump(),
                                   json(want).dump()));
}

// Tensors by parameter, one map per suffix; anything else is a problem.
void split_tensors(const NamedTensorList& tensors, std::map<std::string, Tensor>& masks,
                   std::map<std::string, Tensor>& dense, std::vector<std::string>& problems) {
  for (const auto& [name, t] : tensors) {
    const bool is_mask = ends_with(name, kPruneMaskSuffix);
    if (!is_mask && !ends_with(name, kDnsWeightSuffix)) {
      problems.push_back(fmt::format("'{}' is not '<parameter>{}' or '<parameter>{}'", name, kPruneMaskSuffix,
                                     kDnsWeightSuffix));
      continue;
    }
    const size_t cut = std::string_view(is_mask ? kPruneMaskSuffix : kDnsWeightSuffix).size();
    auto& into = is_mask ? masks : dense;
    if (!into.emplace(name.substr(0, name.size() - cut), t).second)
      problems.push_back(fmt::format("'{}' appears more than once", name));
  }
}

// Zeros in a 0/1 mask, or -1 (and a problem) when it holds another value.
int64_t count_pruned(const Tensor& mask, const std::string& label, std::vector<std::string>& problems) {
  int64_t zeros = 0, others = 0;
  const float* m = mask.data();
  for (int64_t i = 0; i < mask.numel(); ++i) {
    zeros += m[i] == 0 ? 1 : 0;
    others += (m[i] != 0 && m[i] != 1) ? 1 : 0;
  }
  if (others == 0) return zeros;
  problems.push_back(fmt::format("'{}' holds {} values other than 0 and 1", label, others));
  return -1;
}

}  // namespace

PruneState load_prune_state(const NamedTensorList& tensors, const std::string& metadata,
                            const PruneOptions& options, const std::vector<NamedParameter>& params) {
  options.validate();
  std::vector<std::string> problems;
  const json root = parse_json_object(metadata, "pruning state metadata");
  JsonObjectReader top = JsonObjectReader::collecting(root, "metadata", problems);
  const auto format = top.required<std::string>("format");
  if (format && *format != kPruneStateFormat)
    problems.push_back(fmt::format("metadata: format is '{}', not '{}'", *format, kPruneStateFormat));
  const auto version = top.required<int64_t>("version");
  if (version && *version != kPruneStateVersion)
    problems.push_back(fmt::format("metadata: version is {}, but this build reads version {}", *version,
                                   kPruneStateVersion));
  expect_same<std::string>(problems, "method", top.required<std::string>("method"), prune_method_name(options.method));
  expect_same(problems, "sparsity", top.required<double>("sparsity"), options.sparsity);
  expect_same<std::string>(problems, "scope", top.required<std::string>("scope"), sparsity_scope_name(options.scope));
  expect_same(problems, "rate", top.required<double>("rate"), options.rate);
  expect_same(problems, "gamma", top.required<double>("gamma"), options.gamma);
  expect_same(problems, "power", top.required<double>("power"), options.power);
  expect_same(problems, "stop_iteration", top.required<int64_t>("stop_iteration"), options.stop_iteration);
  expect_same(problems, "seed", top.required<uint64_t>("seed"), options.seed);
  expect_same(problems, "exclude", top.required<std::vector<std::string>>("exclude"), options.exclude);
  // Optional: states written before per-layer targets existed have none.
  expect_same(problems, "layer_sparsity",
              std::optional(top.optional<std::vector<std::string>>("layer_sparsity").value_or(std::vector<std::string>{})),
              options.layer_sparsity);
  const auto started = top.required<bool>("started");
  PruneState state = make_prune_state(options);
  if (const auto generator = top.required<std::string>("generator")) {
    try {
      state.generator.set_state(*generator);
    } catch (const Error& e) {
      problems.push_back(fmt::format("metadata: generator state is not valid: {}", e.what()));
    }
  }
  auto entries = top.object("tensors");
  top.reject_unknown();

  std::map<std::string, Tensor> masks, dense;
  split_tensors(tensors, masks, dense, problems);
  const bool dns = options.method == PruneMethod::Dns;
  std::set<std::string> names;
  for (const auto& p : params) names.insert(p.name);
  for (const auto* by : {&masks, &dense})
    for (const auto& entry : *by)
      if (!names.count(entry.first) || !(started && *started))
        problems.push_back(fmt::format("'{}' has a pruning record but names no pruned parameter of a started state",
                                       entry.first));
  if (entries && started && !*started && !entries->value().empty())
    problems.push_back("metadata: tensors must be empty before pruning starts (started is false)");
  if (entries && started && *started) {
    for (const auto& item : entries->value().items())
      if (!names.count(item.key()))
        problems.push_back(fmt::format("metadata: tensor '{}' is not a pruned parameter", item.key()));
    for (const auto& p : params) {
      const std::string where = fmt::format("tensor '{}'", p.name);
      if (!entries->has(p.name)) {
        problems.push_back(fmt::format("metadata: pruned parameter '{}' has no entry", p.name));
        continue;
      }
      auto entry = entries->object(p.name, where);
      if (!entry) continue;
      PruneParamState r;
      const auto numel = entry->required<int64_t>("numel");
      const auto pruned = entry->required<int64_t>("pruned");
      const auto mu = entry->required<double>("mu"), sigma = entry->required<double>("sigma");
      const auto rate = entry->required<double>("rate"), threshold = entry->required<double>("threshold");
      entry->reject_unknown();
      if (!numel || !pruned || !mu || !sigma || !rate || !threshold) continue;
      if (*numel != p.tensor.numel())
        problems.push_back(fmt::format("{}: numel is {}, but the parameter has {}", where, *numel, p.tensor.numel()));
      const auto mask = masks.find(p.name);
      if (mask == masks.end() || mask->second.shape() != p.tensor.shape()) {
        problems.push_back(fmt::format("'{}{}' is missing or does not have the parameter's shape {}", p.name,
                                       kPruneMaskSuffix, shape_str(p.tensor.shape())));
        continue;
      }
      const int64_t zeros = count_pruned(mask->second, p.name + kPruneMaskSuffix, problems);
      if (zeros >= 0 && zeros != *pruned)
        problems.push_back(fmt::format("'{}{}' has {} pruned entries, but the metadata says {}", p.name,
                                       kPruneMaskSuffix, zeros, *pruned));
      r.mask = mask->second.clone();
      r.pruned = *pruned;
      r.mu = *mu, r.sigma = *sigma, r.rate = *rate, r.threshold = *threshold;
      const auto d = dense.find(p.name);
      if (dns && (d == dense.end() || d->second.shape() != p.tensor.shape())) {
        problems.push_back(fmt::format("'{}{}' (DNS's dense weights) is missing or does not have the parameter's "
                                       "shape {}", p.name, kDnsWeightSuffix, shape_str(p.tensor.shape())));
        continue;
      }
      if (!dns && d != dense.end())
        problems.push_back(fmt::format("'{}{}' is given, but magnitude pruning keeps no dense weights", p.name,
                                       kDnsWeightSuffix));
      if (dns) {
        r.dense = d->second.clone();
        const float* dv = r.dense.data();
        for (int64_t i = 0; i < r.dense.numel(); ++i)
          if (!std::isfinite(dv[i])) {
            problems.push_back(fmt::format("'{}{}' entry {} is {}, expected finite dense weights", p.name,
                                           kDnsWeightSuffix, i, dv[i]));
            break;
          }
      }
      // The parameter must hold w * mask: pruned entries exactly 0, the others DNS's dense values.
      const float* w = p.tensor.data();
      const float* m = r.mask.data();
      const float* dw = dns ? r.dense.data() : nullptr;
      int64_t wrong = 0, first = -1;
      for (int64_t i = 0; i < p.tensor.numel(); ++i) {
        const bool ok = m[i] == 0 ? w[i] == 0 : (!dns || w[i] == dw[i]);
        if (!ok && wrong++ == 0) first = i;
      }
      if (wrong > 0)
        problems.push_back(fmt::format("{}: {} weights differ from the dense weights times the mask (first: entry {} "
                                       "= {}, mask {})", where, wrong, first, w[first], m[first]));
      state.params[p.name] = std::move(r);
    }
  }
  if (!problems.empty()) {
    std::string message = "Given a pruning state (masks and metadata), expected one matching this run's options and "
                          "pruned parameters, but got:";
    for (const auto& line : problems) message += "\n  " + line;
    throw Error(message);
  }
  state.started = *started;
  return state;
}

std::map<std::string, Tensor> prune_masks_from(const NamedTensorList& optimizer_tensors, const std::string& source) {
  std::map<std::string, Tensor> out;
  std::vector<std::string> problems;
  for (const auto& [name, t] : optimizer_tensors) {
    if (!ends_with(name, kPruneMaskSuffix)) continue;
    const std::string param = name.substr(0, name.size() - std::string_view(kPruneMaskSuffix).size());
    if (count_pruned(t, name, problems) >= 0) out[param] = t.clone();
  }
  INQ_CHECK(problems.empty(), "Given '{}', expected pruning masks of 0 and 1, but {}", source,
            fmt::join(problems, "; "));
  return out;
}

}  // namespace inq
