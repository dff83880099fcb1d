#include "inq/prune_sgd.h"

#include <algorithm>

#include "framework/error.h"
#include "inq/inq_state.h"

namespace inq {

namespace {

std::vector<NamedParameter> all_parameters(const std::vector<ParamGroup>& groups) {
  std::vector<NamedParameter> out;
  for (const auto& g : groups) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

const PruneOptions& validated(const PruneOptions& options) {
  options.validate();
  return options;
}

}  // namespace

PruneSgd::PruneSgd(std::vector<ParamGroup> groups, const SgdOptions& sgd, const PruneOptions& options)
    : Sgd(std::move(groups), sgd),
      options_(validated(options)),
      pruned_(select_quantized(all_parameters(groups_), options_.exclude)),
      state_prune_(make_prune_state(options_)) {}

void PruneSgd::start() { start_pruning(state_prune_, pruned_, options_); }

int PruneSgd::before_forward(int64_t iteration) {
  if (options_.method != PruneMethod::Dns) return 0;
  const int updated = dns_update_masks(state_prune_, options_, iteration);
  apply_prune_masks(state_prune_, pruned_);
  return updated;
}

void PruneSgd::after_backward() {
  if (options_.method == PruneMethod::Dns) restore_dense_weights(state_prune_, pruned_);
}

void PruneSgd::after_step() {
  if (options_.method == PruneMethod::Dns) capture_dense_weights(state_prune_, pruned_);
  // Magnitude: the update mask already kept pruned entries at 0; re-applying costs one pass and
  // keeps the invariant (pruned entries are +0.0) whatever changed the weights in between.
  apply_prune_masks(state_prune_, pruned_);
}

NamedTensorList PruneSgd::state_tensors() const {
  NamedTensorList out = Sgd::state_tensors();
  for (auto& entry : prune_state_tensors(state_prune_)) out.push_back(std::move(entry));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

std::string PruneSgd::prune_metadata() const { return prune_state_metadata(state_prune_, options_); }

void PruneSgd::load_state(const NamedTensorList& state, const std::string& prune_metadata) {
  NamedTensorList prune_entries, sgd_entries;
  for (const auto& entry : state) (is_prune_state_tensor(entry.first) ? prune_entries : sgd_entries).push_back(entry);
  INQ_CHECK(!prune_metadata.empty(), "Given optimizer state of a pruning run without its pruning metadata, expected "
            "the 'prune_state' that prune_metadata() wrote with it");
  PruneState loaded = load_prune_state(prune_entries, prune_metadata, options_, pruned_);
  Sgd::load_state_tensors(sgd_entries);  // changes nothing when it throws; nothing below throws
  state_prune_ = std::move(loaded);
}

void PruneSgd::load_state_tensors(const NamedTensorList&) {
  throw Error("Given a pruning optimizer, expected its state through load_state(tensors, metadata): the masks "
              "need their metadata");
}

Tensor PruneSgd::update_mask(const NamedParameter& p) const {
  if (options_.method != PruneMethod::Magnitude) return Tensor();
  const auto it = state_prune_.params.find(p.name);
  return it == state_prune_.params.end() ? Tensor() : it->second.mask;
}

}  // namespace inq
