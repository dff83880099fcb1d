#include "inq/inq_config.h"

#include "framework/config_fields.h"
#include "inq/codebook.h"
#include "inq/partition.h"

namespace inq {

InqOptions InqConfig::options(uint64_t seed) const {
  return InqOptions{.bits = bits,
                    .portions = portions,
                    .strategy = parse_partition_strategy(strategy),
                    .seed = seed,
                    .exclude = exclude};
}

void InqConfig::validate() const {
  if (bits != 0) check_config_range("inq_bits", bits, 2, max_codebook_bits());
  for (double p : portions) check_config_real("an INQ portion", p, 0.0, 1.0);
  check_config_range<int64_t>("epochs_per_step", epochs_per_step, 0, kMaxEpochs);
  check_config_range<int64_t>("bn_batches", bn_batches, 0, kMaxBnBatches);
  check_config_range<int64_t>("final_epochs", final_epochs, 0, kMaxEpochs);
}

}  // namespace inq
