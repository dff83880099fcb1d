#include "inq/inq_state.h"

#include <algorithm>
#include <cmath>

#include "framework/error.h"
#include "inq/quantizer.h"

namespace inq {

void InqOptions::validate() const {
  INQ_CHECK(bits >= 2,
            "Given INQ bits = {}, expected b >= 2 (one bit encodes zero, so b = 1 leaves no bit for the "
            "non-zero powers of two and is undefined)",
            bits);
  INQ_CHECK(bits <= max_codebook_bits(),
            "Given INQ bits = {}, expected b <= {} (a wider codebook has more powers of two than float can "
            "represent)",
            bits, max_codebook_bits());
  validate_portions(resolved_portions());
  for (const auto& pattern : exclude)
    INQ_CHECK(!pattern.empty(), "Given INQ exclude patterns [{}], expected non-empty patterns",
              fmt::join(exclude, ", "));
}

std::vector<double> InqOptions::resolved_portions() const {
  return portions.empty() ? default_portions(bits) : portions;
}

InqState make_inq_state(const InqOptions& options) {
  InqState state;
  state.generator.seed(options.seed);
  return state;
}

bool glob_match(std::string_view pattern, std::string_view name) {
  // Greedy matching with one backtrack point (the last '*'), linear in practice.
  size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::vector<NamedParameter> select_quantized(const std::vector<NamedParameter>& params,
                                             const std::vector<std::string>& exclude) {
  std::vector<NamedParameter> out;
  std::vector<bool> used(exclude.size(), false);
  for (const auto& p : params) {
    if (p.role != ParamRole::Weight) continue;
    bool excluded = false;
    for (size_t i = 0; i < exclude.size(); ++i)
      if (glob_match(exclude[i], p.name)) excluded = used[i] = true;
    if (!excluded) out.push_back(p);
  }
  for (size_t i = 0; i < exclude.size(); ++i)
    INQ_CHECK(used[i],
              "Given INQ exclude pattern '{}', expected it to match the name of a weight parameter, but it "
              "matches none",
              exclude[i]);
  INQ_CHECK(!out.empty(),
            "Given {} parameters and exclude patterns [{}], expected at least one weight to quantize, "
            "but got none",
            params.size(), fmt::join(exclude, ", "));
  return out;
}

namespace {

std::vector<const NamedParameter*> sorted_by_name(const std::vector<NamedParameter>& quantized) {
  std::vector<const NamedParameter*> out;
  for (const auto& p : quantized) out.push_back(&p);
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (size_t i = 1; i < out.size(); ++i)
    INQ_CHECK(out[i]->name != out[i - 1]->name,
              "Given quantized parameters, expected unique names, but '{}' appears "
              "more than once",
              out[i]->name);
  return out;
}

// Indices of frozen entries (mask 0) whose value is not in the codebook.
std::vector<int64_t> frozen_offenders(const Tensor& w, const InqParamState& record) {
  std::vector<int64_t> bad;
  const float* p = w.data();
  const float* m = record.mask.data();
  for (int64_t i = 0; i < w.numel(); ++i)
    if (m[i] == 0 && !record.codebook.contains(p[i])) bad.push_back(i);
  return bad;
}

// Step 1 of a pruned model: every pruned weight (mask 0) is frozen at +0.0 from the start.
void start_from_pruning_mask(InqParamState& fresh, const Tensor& pruned, const NamedParameter& p) {
  INQ_CHECK(pruned.defined() && pruned.shape() == p.tensor.shape(), "Given tensor '{}' with shape {}, expected its "
            "pruning mask to have that shape, but it has {}", p.name, shape_str(p.tensor.shape()),
            pruned.defined() ? shape_str(pruned.shape()) : "none");
  const float* w = p.tensor.data();
  const float* m = pruned.data();
  float* f = fresh.mask.data();
  for (int64_t i = 0; i < p.tensor.numel(); ++i) {
    INQ_CHECK(m[i] == 0 || m[i] == 1, "Given the pruning mask of '{}', expected 0 and 1 only, but entry {} is {}",
              p.name, i, m[i]);
    if (m[i] != 0) continue;
    INQ_CHECK(w[i] == 0, "Given tensor '{}' and its pruning mask, expected every pruned weight to be 0, but entry {} "
              "is {}", p.name, i, w[i]);
    f[i] = 0.0f;
    ++fresh.pruned;
  }
  fresh.frozen = fresh.pruned;
}

}  // namespace

void apply_inq_step(InqState& state, const std::vector<NamedParameter>& quantized, const InqOptions& options,
                    int k) {
  options.validate();
  const std::vector<double> portions = options.resolved_portions();
  const int steps = static_cast<int>(portions.size());
  INQ_CHECK(
      k == state.steps_begun + 1 && k <= steps,
      "Given INQ step {}, expected step {} of {} (steps are applied once each, in order), but got {} instead",
      k, state.steps_begun + 1, steps, k);
  const auto params = sorted_by_name(quantized);
  for (const auto& entry : state.pruned) {
    const std::string& name = entry.first;  // a plain reference: lambdas cannot capture bindings before C++20
    INQ_CHECK(std::any_of(params.begin(), params.end(), [&](const NamedParameter* p) { return p->name == name; }),
              "Given a pruning mask for '{}', expected it to name a tensor INQ quantizes (an excluded or unknown "
              "tensor would let its pruned weights train again)", name);
  }
  INQ_CHECK(k > 1 || state.params.empty(),
            "Given INQ step 1, expected a state without records, but it has {}", state.params.size());
  if (k > 1) {
    std::vector<std::string> have, want;
    for (const auto& [name, record] : state.params) have.push_back(name);
    for (const auto* p : params) want.push_back(p->name);
    INQ_CHECK(have == want,
              "Given INQ step {} for tensors [{}], expected the tensors of the earlier steps [{}]", k,
              fmt::join(want, ", "), fmt::join(have, ", "));
  }

  // Pass 1: check everything and decide how many weights each tensor freezes; nothing changes yet.
  struct Plan {
    const NamedParameter* param;
    InqParamState fresh;  // step 1 only: the new record
    int64_t count;        // weights to freeze now
  };
  std::vector<Plan> plans;
  for (const NamedParameter* p : params) {
    Plan plan{p, {}, 0};
    const InqParamState* record = nullptr;
    if (k == 1) {
      plan.fresh.codebook = make_codebook(p->tensor, options.bits, p->name);
      plan.fresh.mask = Tensor::full(p->tensor.shape(), 1.0f);
      if (const auto pruned = state.pruned.find(p->name); pruned != state.pruned.end())
        start_from_pruning_mask(plan.fresh, pruned->second, *p);
      record = &plan.fresh;
    } else {
      record = &state.params.at(p->name);
      INQ_CHECK(record->mask.shape() == p->tensor.shape(),
                "Given tensor '{}' with shape {}, expected the shape of its INQ mask {}", p->name,
                shape_str(p->tensor.shape()), shape_str(record->mask.shape()));
      const float* w = p->tensor.data();
      const float* m = record->mask.data();
      for (int64_t i = 0; i < p->tensor.numel(); ++i)
        INQ_CHECK(m[i] == 0 || std::isfinite(w[i]),
                  "Given tensor '{}' with shape {}, expected finite weights, but entry {} is {}", p->name,
                  shape_str(p->tensor.shape()), i, w[i]);
      const auto bad = frozen_offenders(p->tensor, *record);
      INQ_CHECK(
          bad.empty(),
          "Given tensor '{}' at INQ step {}, expected its {} frozen weights to be values of its codebook "
          "(n1 = {}, n2 = {}), but {} are not (first: entry {} = {}); were the weights changed outside the "
          "optimizer?",
          p->name, k, record->frozen, record->codebook.n1, record->codebook.n2, bad.size(),
          bad.empty() ? 0 : bad[0], bad.empty() ? 0.0f : p->tensor.data()[bad[0]]);
    }
    // The portion is of the surviving weights; the pruned ones are frozen (at 0) throughout.
    const int64_t target =
        record->pruned + frozen_target(portions[static_cast<size_t>(k - 1)], p->tensor.numel() - record->pruned);
    plan.count = target - record->frozen;
    INQ_CHECK(plan.count >= 0, "Given tensor '{}' with {} frozen weights, expected at most {} before step {}",
              p->name, record->frozen, target, k);
    plans.push_back(std::move(plan));
  }

  // Pass 2: choose, quantize in place, freeze.
  for (Plan& plan : plans) {
    const NamedParameter& p = *plan.param;
    if (k == 1) state.params[p.name] = std::move(plan.fresh);
    InqParamState& record = state.params.at(p.name);
    const std::vector<int64_t> chosen =
        choose_partition(p.tensor, record.mask, plan.count, options.strategy, state.generator, p.name);
    Tensor w = p.tensor;
    if (k == 1 && record.pruned > 0) {  // a pruned -0.0 becomes the codebook's +0.0
      float* v = w.data();
      const float* m = record.mask.data();
      for (int64_t i = 0; i < w.numel(); ++i)
        if (m[i] == 0) v[i] = 0.0f;
    }
    record.saturated += quantize_entries_(w, chosen, record.codebook, p.name);
    float* m = record.mask.data();
    for (const int64_t i : chosen) m[i] = 0.0f;
    record.frozen += plan.count;
    record.step = k;
  }
  state.steps_begun = k;
}

InqState quantize_one_shot(const std::vector<NamedParameter>& params, int bits,
                           const std::vector<std::string>& exclude) {
  const InqOptions options{.bits = bits, .portions = {1.0}, .exclude = exclude};
  InqState state = make_inq_state(options);
  apply_inq_step(state, select_quantized(params, exclude), options, 1);
  return state;
}

}  // namespace inq
