#include "inq/inq_sgd.h"

#include <algorithm>

#include "framework/error.h"

namespace inq {

namespace {

InqOptions resolve(const InqOptions& options) {
  options.validate();
  InqOptions out = options;
  out.portions = options.resolved_portions();
  return out;
}

std::vector<NamedParameter> all_parameters(const std::vector<ParamGroup>& groups) {
  std::vector<NamedParameter> out;
  for (const auto& g : groups) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

}  // namespace

InqSgd::InqSgd(std::vector<ParamGroup> groups, const SgdOptions& sgd, const InqOptions& inq)
    : Sgd(std::move(groups), sgd),
      inq_options_(resolve(inq)),
      quantized_(select_quantized(all_parameters(groups_), inq_options_.exclude)),
      state_inq_(make_inq_state(inq_options_)) {}

void InqSgd::begin_step(int k) {
  apply_inq_step(state_inq_, quantized_, inq_options_, k);
  // The frozen set grew; the buffers hold momentum of weights that are now frozen, and the spec
  // restarts re-training at every step.
  reset_state();
}

void InqSgd::set_pruned(std::map<std::string, Tensor> masks) {
  INQ_CHECK(steps_begun() == 0, "Given pruning masks at INQ step {}, expected them before step 1", steps_begun());
  state_inq_.pruned = std::move(masks);
}

const InqParamState* InqSgd::inq_record(const std::string& name) const {
  const auto it = state_inq_.params.find(name);
  return it == state_inq_.params.end() ? nullptr : &it->second;
}

std::vector<InqTensorReport> InqSgd::report() const { return inq_report(state_inq_, quantized_); }

std::vector<OffendingWeight> InqSgd::verify() const {
  INQ_CHECK(steps_begun() > 0, "Given an INQ optimizer before step 1, expected codebooks to verify against");
  NamedTensorList tensors;
  for (const auto& p : quantized_) tensors.emplace_back(p.name, p.tensor);
  return verify_quantized(tensors, codebooks_of(state_inq_));
}

NamedTensorList InqSgd::state_tensors() const {
  NamedTensorList out = Sgd::state_tensors();
  for (auto& entry : inq_state_tensors(state_inq_)) out.push_back(std::move(entry));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::string InqSgd::inq_metadata() const { return inq_state_metadata(state_inq_, inq_options_); }

void InqSgd::load_state(const NamedTensorList& state, const std::string& inq_metadata) {
  NamedTensorList inq_entries, sgd_entries;
  for (const auto& entry : state)
    (is_inq_state_tensor(entry.first) ? inq_entries : sgd_entries).push_back(entry);
  InqState loaded = make_inq_state(inq_options_);
  if (inq_metadata.empty()) {
    std::vector<std::string> names;
    for (const auto& [name, t] : inq_entries) names.push_back(name);
    INQ_CHECK(names.empty(),
              "Given optimizer state with INQ masks [{}] but no INQ metadata, expected the metadata that "
              "inq_metadata() wrote with them (an empty metadata string means INQ has not started)",
              fmt::join(names, ", "));
  } else {
    loaded = load_inq_state(inq_entries, inq_metadata, inq_options_, quantized_);
  }
  // All-or-nothing: Sgd's loader changes nothing when it throws, and nothing below can throw.
  Sgd::load_state_tensors(sgd_entries);
  state_inq_ = std::move(loaded);
}

void InqSgd::load_state_tensors(const NamedTensorList& state) { load_state(state, ""); }

Tensor InqSgd::update_mask(const NamedParameter& p) const {
  const auto it = state_inq_.params.find(p.name);
  return it == state_inq_.params.end() ? Tensor() : it->second.mask;
}

}  // namespace inq
