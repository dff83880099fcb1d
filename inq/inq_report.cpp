#include "inq/inq_state.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "framework/error.h"

namespace inq {

namespace {

// Index of a codebook value in levels() order, or -1 for anything else.
int64_t level_index(float v, const Codebook& cb) {
  if (!cb.contains(v)) return -1;
  if (v == 0) return cb.exponent_count();
  int e = 0;
  std::frexp(std::fabs(v), &e);
  const int64_t offset = (e - 1) - cb.n2;  // 0 .. exponent_count - 1
  return v > 0 ? cb.exponent_count() + 1 + offset : cb.exponent_count() - 1 - offset;
}

}  // namespace

std::vector<InqTensorReport> inq_report(const InqState& state, const std::vector<NamedParameter>& quantized) {
  std::map<std::string, const NamedParameter*> by_name;
  for (const auto& p : quantized) by_name[p.name] = &p;
  std::vector<InqTensorReport> rows;
  for (const auto& [name, record] : state.params) {
    const auto it = by_name.find(name);
    INQ_CHECK(it != by_name.end(),
              "Given an INQ state with tensor '{}', expected it among the tensors to report", name);
    const Tensor& w = it->second->tensor;
    INQ_CHECK(w.shape() == record.mask.shape(),
              "Given tensor '{}' with shape {}, expected its INQ mask's shape {}", name, shape_str(w.shape()),
              shape_str(record.mask.shape()));
    std::vector<bool> seen(static_cast<size_t>(record.codebook.level_count()), false);
    const float* p = w.data();
    const float* m = record.mask.data();
    for (int64_t i = 0; i < w.numel(); ++i) {
      if (m[i] != 0) continue;
      const int64_t level = level_index(p[i], record.codebook);
      if (level >= 0) seen[static_cast<size_t>(level)] = true;
    }
    InqTensorReport row;
    row.name = name;
    row.numel = w.numel();
    row.bits = record.codebook.bits;
    row.n1 = record.codebook.n1;
    row.n2 = record.codebook.n2;
    row.step = record.step;
    row.frozen = record.frozen;
    row.frozen_fraction =
        w.numel() == 0 ? 1.0 : static_cast<double>(record.frozen) / static_cast<double>(w.numel());
    row.levels_used = std::count(seen.begin(), seen.end(), true);
    row.saturated = record.saturated;
    rows.push_back(row);
  }
  return rows;
}

std::string format_inq_report(const std::vector<InqTensorReport>& rows) {
  size_t width = std::string_view("tensor").size();
  for (const auto& r : rows) width = std::max(width, r.name.size());
  std::string out = fmt::format("{:<{}}  {:>10}  {:>4}  {:>4}  {:>4}  {:>4}  {:>8}  {:>6}  {:>9}\n", "tensor",
                                width, "numel", "bits", "n1", "n2", "step", "frozen", "levels", "saturated");
  for (const auto& r : rows)
    out += fmt::format("{:<{}}  {:>10}  {:>4}  {:>4}  {:>4}  {:>4}  {:>7.2f}%  {:>6}  {:>9}\n", r.name, width,
                       r.numel, r.bits, r.n1, r.n2, r.step, 100.0 * r.frozen_fraction, r.levels_used,
                       r.saturated);
  return out;
}

std::vector<OffendingWeight> verify_quantized(const NamedTensorList& tensors,
                                              const std::map<std::string, Codebook>& codebooks) {
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    INQ_CHECK(names.insert(name).second,
              "Given tensors to verify, expected unique names, but '{}' appears twice", name);
    INQ_CHECK(codebooks.count(name) == 1,
              "Given tensor '{}' to verify, expected a codebook for it, but there is none", name);
  }
  for (const auto& [name, cb] : codebooks)
    INQ_CHECK(names.count(name) == 1, "Given a codebook for '{}', expected a tensor of that name to verify",
              name);
  std::vector<OffendingWeight> bad;
  for (const auto& [name, t] : tensors) {
    const Codebook& cb = codebooks.at(name);
    const float* p = t.data();
    for (int64_t i = 0; i < t.numel(); ++i)
      if (!cb.contains(p[i])) bad.push_back({name, i, p[i]});
  }
  return bad;
}

void check_quantized(const NamedTensorList& tensors, const std::map<std::string, Codebook>& codebooks) {
  const auto bad = verify_quantized(tensors, codebooks);
  if (bad.empty()) return;
  // Enough lines to see the pattern; the count says how many there are in all.
  constexpr size_t kListed = 10;
  std::string m = fmt::format(
      "Given a quantized model, expected every quantized weight to be 0 or +-2^k with n2 <= k <= n1 of its "
      "tensor, but {} weights are not:",
      bad.size());
  for (size_t i = 0; i < std::min(bad.size(), kListed); ++i) {
    const Codebook& cb = codebooks.at(bad[i].name);
    m += fmt::format("\n  {}[{}] = {} (n1 = {}, n2 = {})", bad[i].name, bad[i].index, bad[i].value, cb.n1,
                     cb.n2);
  }
  if (bad.size() > kListed) m += fmt::format("\n  ... and {} more", bad.size() - kListed);
  throw Error(m);
}

std::map<std::string, Codebook> codebooks_of(const InqState& state) {
  std::map<std::string, Codebook> out;
  for (const auto& [name, record] : state.params) out[name] = record.codebook;
  return out;
}

}  // namespace inq
