// libFuzzer target: the IDX reader (data/idx.h) on plain and gzipped bytes; every accepted plain
// file must read the same once gzipped.
// See tests/fuzz/README.md; what one input goes through is in tests/fuzz/fuzz_inputs.h.
#include "tests/fuzz/fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return inq::fuzz::run_one_input([&] { inq::fuzz::idx_input({data, size}); });
}
