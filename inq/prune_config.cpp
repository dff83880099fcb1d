#include "inq/prune_config.h"

#include "framework/config_fields.h"
#include "framework/error.h"

namespace inq {

PruneOptions PruneConfig::options(uint64_t seed) const {
  return PruneOptions{.method = parse_prune_method(method),
                      .sparsity = sparsity,
                      .scope = parse_sparsity_scope(scope),
                      .rate = rate,
                      .gamma = gamma,
                      .power = power,
                      .stop_iteration = stop_iteration,
                      .seed = seed,
                      .exclude = exclude,
                      .layer_sparsity = layer_sparsity};
}

void PruneConfig::validate() const {
  if (!enabled()) return;
  INQ_CHECK(method == "dns" || method == "magnitude", "Given prune_method '{}', expected 'dns' or 'magnitude'",
            method);
  INQ_CHECK(scope == "layer" || scope == "global", "Given prune_scope '{}', expected 'layer' or 'global'", scope);
  if (sparsity >= 0) check_config_real("prune_sparsity", sparsity, 0.0, 0.999999);
  options(0).validate();
}

}  // namespace inq
