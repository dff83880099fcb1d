#include "inq/prune.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "framework/error.h"
#include "inq/inq_state.h"
#include "inq/partition.h"

namespace inq {

const char* prune_method_name(PruneMethod m) { return m == PruneMethod::Dns ? "dns" : "magnitude"; }

PruneMethod parse_prune_method(const std::string& name) {
  if (name == "dns") return PruneMethod::Dns;
  if (name == "magnitude") return PruneMethod::Magnitude;
  throw Error(fmt::format("Given pruning method '{}', expected 'dns' or 'magnitude'", name));
}

const char* sparsity_scope_name(SparsityScope s) { return s == SparsityScope::Layer ? "layer" : "global"; }

SparsityScope parse_sparsity_scope(const std::string& name) {
  if (name == "layer") return SparsityScope::Layer;
  if (name == "global") return SparsityScope::Global;
  throw Error(fmt::format("Given sparsity scope '{}', expected 'layer' or 'global'", name));
}

void PruneOptions::validate() const {
  const bool has_sparsity = sparsity >= 0;
  INQ_CHECK(std::isfinite(sparsity) && sparsity < 1,
            "Given pruning sparsity {}, expected a fraction in [0, 1) (or none: negative)", sparsity);
  INQ_CHECK(method != PruneMethod::Magnitude || has_sparsity,
            "Given magnitude pruning without a sparsity, expected a target sparsity in [0, 1)");
  INQ_CHECK(std::isfinite(rate) && std::fabs(rate) <= 100, "Given DNS rate {}, expected a finite c in [-100, 100]",
            rate);
  INQ_CHECK(std::isfinite(gamma) && gamma >= 0, "Given DNS gamma {}, expected a finite value >= 0", gamma);
  INQ_CHECK(std::isfinite(power) && power >= 0, "Given DNS power {}, expected a finite value >= 0", power);
  INQ_CHECK(stop_iteration >= 0, "Given DNS stop iteration {}, expected >= 0 (0: never stops)", stop_iteration);
  for (const auto& pattern : exclude)
    INQ_CHECK(!pattern.empty(), "Given pruning exclude patterns [{}], expected non-empty patterns",
              fmt::join(exclude, ", "));
  for (const auto& entry : layer_sparsity) parse_layer_sparsity(entry);
  INQ_CHECK(layer_sparsity.empty() || (has_sparsity && scope == SparsityScope::Layer),
            "Given per-layer sparsity targets [{}], expected them with a sparsity (the other layers' target) and the "
            "layer scope", fmt::join(layer_sparsity, ", "));
}

std::pair<std::string, double> parse_layer_sparsity(const std::string& entry) {
  const size_t eq = entry.rfind('=');
  INQ_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < entry.size(),
            "Given per-layer sparsity '{}', expected NAME=FRACTION (NAME may be a glob)", entry);
  const std::string value = entry.substr(eq + 1);
  double fraction = 0;
  size_t used = 0;
  try {
    fraction = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  INQ_CHECK(used == value.size() && std::isfinite(fraction) && fraction >= 0 && fraction < 1,
            "Given per-layer sparsity '{}', expected a fraction in [0, 1) after '='", entry);
  return {entry.substr(0, eq), fraction};
}

double PruneOptions::target_for(const std::string& name) const {
  for (const auto& entry : layer_sparsity) {
    const auto [pattern, fraction] = parse_layer_sparsity(entry);
    if (glob_match(pattern, name)) return fraction;
  }
  return sparsity;
}

PruneState make_prune_state(const PruneOptions& options) {
  PruneState state;
  state.generator.seed(options.seed);
  return state;
}

double dns_update_probability(const PruneOptions& options, int64_t iteration) {
  if (options.stop_iteration > 0 && iteration >= options.stop_iteration) return 0.0;
  return std::pow(1.0 + options.gamma * static_cast<double>(iteration), -options.power);
}

namespace {

// The tensors in name order, names checked unique.
std::vector<const NamedParameter*> by_name(const std::vector<NamedParameter>& params) {
  std::vector<const NamedParameter*> out;
  for (const auto& p : params) out.push_back(&p);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (size_t i = 1; i < out.size(); ++i)
    INQ_CHECK(out[i]->name != out[i - 1]->name, "Given pruned parameters, expected unique names, but '{}' appears "
              "more than once", out[i]->name);
  return out;
}

void check_finite(const NamedParameter& p) {
  const float* w = p.tensor.data();
  for (int64_t i = 0; i < p.tensor.numel(); ++i)
    INQ_CHECK(std::isfinite(w[i]), "Given tensor '{}' with shape {}, expected finite weights to prune, but entry {} "
              "is {}", p.name, shape_str(p.tensor.shape()), i, w[i]);
}

// mu and sigma (population) of |w| over the non-zero entries, as the DNS authors' layers compute
// them (an exact zero counts as pruned already, so DNS can start from a pruned model).
std::pair<double, double> abs_mean_std(const Tensor& t) {
  const float* w = t.data();
  double sum = 0, sum_sq = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (w[i] == 0) continue;
    const double a = std::fabs(static_cast<double>(w[i]));
    sum += a;
    sum_sq += a * a;
    ++n;
  }
  if (n == 0) return {0.0, 0.0};
  const double mu = sum / static_cast<double>(n);
  return {mu, std::sqrt(std::max(0.0, sum_sq / static_cast<double>(n) - mu * mu))};
}

// The smallest t with 0.9 t >= q in double, so that |w| = q is pruned by "|w| <= 0.9 t" exactly.
double threshold_pruning_up_to(double q) {
  double t = q / 0.9;
  while (0.9 * t < q) t = std::nextafter(t, std::numeric_limits<double>::infinity());
  return t;
}

// The rate c from which weight |w| = a of a layer with (mu, sigma) is pruned by the first mask.
double rate_pruning(double a, double mu, double sigma) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  if (a == 0) return -inf;  // t >= 0 always prunes an exact zero
  if (sigma == 0) return a / 0.9 <= mu ? -inf : inf;
  return (a / 0.9 - mu) / sigma;
}

// The k-th smallest |w| (1-based) of a tensor.
double kth_smallest_abs(const Tensor& t, int64_t k) {
  std::vector<float> a(static_cast<size_t>(t.numel()));
  const float* w = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) a[static_cast<size_t>(i)] = std::fabs(w[i]);
  std::nth_element(a.begin(), a.begin() + (k - 1), a.end());
  return a[static_cast<size_t>(k - 1)];
}

void zero_pruned(const PruneParamState& record, Tensor w) {
  float* p = w.data();
  const float* m = record.mask.data();
  // An explicit +0.0 rather than w * 0, which is -0.0 for a negative w.
  for (int64_t i = 0; i < w.numel(); ++i)
    if (m[i] == 0) p[i] = 0.0f;
}

// Magnitude: which flat indices of each tensor (in `params` name order) are pruned.
void magnitude_masks(PruneState& state, const std::vector<const NamedParameter*>& params,
                     const PruneOptions& options) {
  // (|w|, tensor position, flat index): ascending is the pruning order, ties by name then index.
  using Entry = std::tuple<float, size_t, int64_t>;
  std::vector<std::vector<Entry>> groups;
  std::vector<int64_t> counts;
  if (options.scope == SparsityScope::Global) groups.emplace_back();
  int64_t total = 0;
  for (size_t j = 0; j < params.size(); ++j) {
    if (options.scope == SparsityScope::Layer) groups.emplace_back();
    const float* w = params[j]->tensor.data();
    for (int64_t i = 0; i < params[j]->tensor.numel(); ++i) groups.back().emplace_back(std::fabs(w[i]), j, i);
    total += params[j]->tensor.numel();
    if (options.scope == SparsityScope::Layer) {
      const double target = options.target_for(params[j]->name);
      counts.push_back(target > 0 ? frozen_target(target, params[j]->tensor.numel()) : 0);
    }
  }
  if (options.scope == SparsityScope::Global) counts.push_back(options.sparsity > 0 ? frozen_target(options.sparsity, total) : 0);
  for (const NamedParameter* p : params) state.params[p->name].mask = Tensor::full(p->tensor.shape(), 1.0f);
  for (size_t g = 0; g < groups.size(); ++g) {
    auto& entries = groups[g];
    const auto k = static_cast<size_t>(counts[g]);
    if (k < entries.size()) std::nth_element(entries.begin(), entries.begin() + static_cast<ptrdiff_t>(k), entries.end());
    for (size_t e = 0; e < k; ++e) {
      const auto& [a, j, i] = entries[e];
      PruneParamState& r = state.params.at(params[j]->name);
      r.mask.data()[i] = 0.0f;
      ++r.pruned;
    }
  }
}

// DNS: the threshold of every tensor from its statistics and rate, then the first mask.
void dns_start(PruneState& state, const std::vector<const NamedParameter*>& params, const PruneOptions& options,
               const std::vector<NamedParameter>& given) {
  std::map<std::string, double> rates;
  if (options.sparsity >= 0) rates = dns_rates(given, options);
  for (const NamedParameter* p : params) {
    PruneParamState r;
    r.mask = Tensor::full(p->tensor.shape(), 1.0f);
    r.dense = p->tensor.clone();
    std::tie(r.mu, r.sigma) = abs_mean_std(p->tensor);
    const int64_t n = p->tensor.numel();
    if (options.sparsity >= 0 && options.scope == SparsityScope::Layer) {
      // The threshold is set from the k-th smallest |w| directly (the rate is its record), so the
      // first mask prunes at least k weights whatever the rounding of (t - mu) / sigma.
      const double target = options.target_for(p->name);
      const int64_t k = target > 0 ? frozen_target(target, n) : 0;
      r.threshold = k == 0 ? 0.0 : threshold_pruning_up_to(kth_smallest_abs(p->tensor, k));
      r.rate = rates.at(p->name);
    } else {
      r.rate = options.sparsity >= 0 ? rates.at(p->name) : options.rate;
      r.threshold = std::max(r.mu + r.rate * r.sigma, 0.0);
    }
    // Iteration 0's mask update (probability 1): every entry starts at T = 1.
    const float* w = p->tensor.data();
    float* m = r.mask.data();
    const double below = 0.9 * r.threshold;
    for (int64_t i = 0; i < n; ++i)
      if (std::fabs(static_cast<double>(w[i])) <= below) {
        m[i] = 0.0f;
        ++r.pruned;
      }
    state.params[p->name] = std::move(r);
  }
}

}  // namespace

std::map<std::string, double> dns_rates(const std::vector<NamedParameter>& params, const PruneOptions& options) {
  INQ_CHECK(options.sparsity >= 0 && options.sparsity < 1, "Given DNS sparsity {}, expected a fraction in [0, 1) to "
            "choose the rates from", options.sparsity);
  const auto sorted = by_name(params);
  std::map<std::string, double> out;
  if (options.scope == SparsityScope::Layer) {
    for (const NamedParameter* p : sorted) {
      check_finite(*p);
      const auto [mu, sigma] = abs_mean_std(p->tensor);
      const double target = options.target_for(p->name);
      const int64_t k = target > 0 ? frozen_target(target, p->tensor.numel()) : 0;
      const double t = k == 0 ? 0.0 : threshold_pruning_up_to(kth_smallest_abs(p->tensor, k));
      out[p->name] = sigma > 0 ? (t - mu) / sigma : 0.0;
    }
    return out;
  }
  // Global: the rate at which each weight becomes pruned; the K-th smallest prunes K weights.
  std::vector<double> at;
  std::vector<std::pair<double, double>> stats;
  for (const NamedParameter* p : sorted) {
    check_finite(*p);
    stats.push_back(abs_mean_std(p->tensor));
    const float* w = p->tensor.data();
    for (int64_t i = 0; i < p->tensor.numel(); ++i)
      at.push_back(rate_pruning(std::fabs(static_cast<double>(w[i])), stats.back().first, stats.back().second));
  }
  const int64_t k = options.sparsity > 0 ? frozen_target(options.sparsity, static_cast<int64_t>(at.size())) : 0;
  double c = -std::numeric_limits<double>::infinity();
  if (k > 0) {
    std::nth_element(at.begin(), at.begin() + (k - 1), at.end());
    c = at[static_cast<size_t>(k - 1)];
  }
  // -inf (only exact zeros pruned) and +inf (a layer of equal weights) are not rates: clamp to the
  // range validate() accepts, which gives the same thresholds for any realistic layer.
  c = std::clamp(c, -100.0, 100.0);
  // A relative nudge upwards so that rounding in mu + c * sigma does not spare the K-th weight.
  c += 1e-12 * std::max(1.0, std::fabs(c));
  for (const NamedParameter* p : sorted) out[p->name] = c;
  return out;
}

void start_pruning(PruneState& state, const std::vector<NamedParameter>& params, const PruneOptions& options) {
  options.validate();
  INQ_CHECK(!state.started, "Given a pruning state that has started already, expected a fresh one");
  const auto sorted = by_name(params);
  for (const NamedParameter* p : sorted) check_finite(*p);
  for (const auto& entry : options.layer_sparsity) {
    const std::string pattern = parse_layer_sparsity(entry).first;
    std::vector<std::string> names;
    bool matched = false;
    for (const NamedParameter* p : sorted) {
      names.push_back(p->name);
      matched = matched || glob_match(pattern, p->name);
    }
    INQ_CHECK(matched, "Given per-layer sparsity '{}', expected '{}' to match a pruned tensor: {}", entry, pattern,
              fmt::join(names, ", "));
  }
  PruneState next = state;
  if (options.method == PruneMethod::Magnitude)
    magnitude_masks(next, sorted, options);
  else
    dns_start(next, sorted, options, params);
  next.started = true;
  state = std::move(next);
  apply_prune_masks(state, params);
}

int dns_update_masks(PruneState& state, const PruneOptions& options, int64_t iteration) {
  if (options.method != PruneMethod::Dns || !state.started) return 0;
  const double probability = dns_update_probability(options, iteration);
  if (probability <= 0) return 0;  // stopped: no draw either
  int updated = 0;
  for (auto& [name, r] : state.params) {
    if (!(state.generator.uniform_double() < probability)) continue;
    ++updated;
    const double below = 0.9 * r.threshold, above = 1.1 * r.threshold;
    const float* w = r.dense.data();
    float* m = r.mask.data();
    int64_t pruned = 0;
    for (int64_t i = 0; i < r.mask.numel(); ++i) {
      const double a = std::fabs(static_cast<double>(w[i]));
      if (m[i] != 0 && a <= below) m[i] = 0.0f;        // prune
      else if (m[i] == 0 && a > above) m[i] = 1.0f;    // splice back
      pruned += m[i] == 0 ? 1 : 0;
    }
    r.pruned = pruned;
  }
  return updated;
}

namespace {

const PruneParamState& record_of(const PruneState& state, const NamedParameter& p) {
  const auto it = state.params.find(p.name);
  INQ_CHECK(it != state.params.end(), "Given parameter '{}', expected a pruning record for it", p.name);
  INQ_CHECK(it->second.mask.shape() == p.tensor.shape(), "Given parameter '{}' with shape {}, expected the shape of "
            "its pruning mask {}", p.name, shape_str(p.tensor.shape()), shape_str(it->second.mask.shape()));
  return it->second;
}

}  // namespace

void apply_prune_masks(const PruneState& state, const std::vector<NamedParameter>& params) {
  if (!state.started) return;
  for (const auto& p : params) {
    const PruneParamState& r = record_of(state, p);
    Tensor w = p.tensor;
    if (r.dense.defined()) std::copy(r.dense.data(), r.dense.data() + r.dense.numel(), w.data());
    zero_pruned(r, w);
  }
}

void restore_dense_weights(const PruneState& state, const std::vector<NamedParameter>& params) {
  if (!state.started) return;
  for (const auto& p : params) {
    const PruneParamState& r = record_of(state, p);
    if (!r.dense.defined()) continue;
    Tensor w = p.tensor;
    std::copy(r.dense.data(), r.dense.data() + r.dense.numel(), w.data());
  }
}

void capture_dense_weights(PruneState& state, const std::vector<NamedParameter>& params) {
  if (!state.started) return;
  for (const auto& p : params) {
    record_of(state, p);
    PruneParamState& r = state.params.at(p.name);
    if (!r.dense.defined()) continue;
    std::copy(p.tensor.data(), p.tensor.data() + p.tensor.numel(), r.dense.data());
  }
}

std::vector<PruneTensorReport> prune_report(const PruneState& state) {
  std::vector<PruneTensorReport> rows;
  for (const auto& [name, r] : state.params) {
    const int64_t n = r.mask.numel();
    rows.push_back({.name = name, .numel = n, .pruned = r.pruned,
                    .sparsity = n > 0 ? static_cast<double>(r.pruned) / static_cast<double>(n) : 0.0,
                    .mu = r.mu, .sigma = r.sigma, .rate = r.rate, .threshold = r.threshold});
  }
  return rows;
}

std::string format_prune_report(const std::vector<PruneTensorReport>& rows, PruneMethod method) {
  size_t width = 6;
  for (const auto& r : rows) width = std::max(width, r.name.size());
  const bool dns = method == PruneMethod::Dns;
  std::string out = fmt::format("{:<{}}  {:>10}  {:>10}  {:>8}", "tensor", width, "weights", "pruned", "sparsity");
  if (dns) out += fmt::format("  {:>10}  {:>10}  {:>8}  {:>10}", "mu", "sigma", "rate c", "t");
  out += "\n";
  int64_t total = 0, pruned = 0;
  for (const auto& r : rows) {
    out += fmt::format("{:<{}}  {:>10}  {:>10}  {:>7.2f}%", r.name, width, r.numel, r.pruned, 100.0 * r.sparsity);
    if (dns) out += fmt::format("  {:>10.4g}  {:>10.4g}  {:>8.4f}  {:>10.4g}", r.mu, r.sigma, r.rate, r.threshold);
    out += "\n";
    total += r.numel;
    pruned += r.pruned;
  }
  out += fmt::format("{:<{}}  {:>10}  {:>10}  {:>7.2f}%  ({:.1f}x fewer weights)\n", "total", width, total, pruned,
                     total > 0 ? 100.0 * static_cast<double>(pruned) / static_cast<double>(total) : 0.0,
                     static_cast<double>(total) / static_cast<double>(std::max<int64_t>(total - pruned, 1)));
  return out;
}

double overall_sparsity(const PruneState& state) {
  int64_t total = 0, pruned = 0;
  for (const auto& [name, r] : state.params) {
    total += r.mask.numel();
    pruned += r.pruned;
  }
  return total > 0 ? static_cast<double>(pruned) / static_cast<double>(total) : 0.0;
}

}  // namespace inq
