// libFuzzer target: weights and checkpoint files as --weights, --resume and `inq verify` read
// them (apps/checkpoint.h, inq/inq_state.h, the optimizers' state loaders).
// See tests/fuzz/README.md; what one input goes through is in tests/fuzz/fuzz_inputs.h.
#include "tests/fuzz/fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return inq::fuzz::run_one_input([&] { inq::fuzz::checkpoint_input({data, size}); });
}
