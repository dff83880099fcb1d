#pragma once
// The pruning section of a run's configuration (`inq prune`): a method turns a run into pruning
// with re-training of its initial weights (docs/INQ_SPEC.md section 6). Its keys sit in config.json
// and checkpoints beside the other sections' (framework/config_fields.h), and only in runs that
// prune: a plain or INQ run's configuration has none of them.
#include <cstdint>
#include <string>
#include <vector>

#include "inq/prune.h"

namespace inq {

struct PruneConfig {
  std::string method;              // "dns" or "magnitude"; empty: not a pruning run
  double sparsity = -1;            // target fraction pruned in [0, 1); negative: not given
  std::string scope = "layer";     // "layer" or "global"
  double rate = 0;                 // DNS's c when no sparsity is given
  double gamma = 1e-4, power = 1;  // DNS's update probability (1 + gamma * iter)^(-power)
  int64_t stop_iteration = 0;      // DNS: no mask update from this iteration on; 0 = never stops
  std::vector<std::string> exclude;  // weight names (globs) left unpruned
  std::vector<std::string> layer_sparsity;  // "glob=fraction" per-layer targets (layer scope)

  bool enabled() const { return !method.empty(); }
  // The PruneSgd options of this section; `seed` seeds DNS's draws.
  PruneOptions options(uint64_t seed) const;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& v) {
    v("prune_method", s.method), v("prune_sparsity", s.sparsity), v("prune_scope", s.scope);
    v("dns_rate", s.rate), v("dns_gamma", s.gamma), v("dns_power", s.power);
    v("dns_stop_iteration", s.stop_iteration), v("prune_exclude", s.exclude);
    v("prune_layer_sparsity", s.layer_sparsity);
  }
  // Empty, or a method and options PruneOptions::validate accepts. Throws naming the key.
  void validate() const;
};

}  // namespace inq
