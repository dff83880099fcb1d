#pragma once
// Helpers of the DataLoader tests.
#include <cstdint>
#include <vector>

#include "data/dataloader.h"

namespace inq::test {

// Every batch of one epoch, from batch `start_batch` on (a resumed epoch).
inline std::vector<Batch> run_epoch(DataLoader& loader, int64_t epoch, int64_t start_batch = 0) {
  loader.start_epoch(epoch, start_batch);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

}  // namespace inq::test
