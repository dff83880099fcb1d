// libFuzzer target: the safetensors reader (framework/safetensors.h); every accepted file must
// also survive the writer and a second reading unchanged.
// See tests/fuzz/README.md; what one input goes through is in tests/fuzz/fuzz_inputs.h.
#include "tests/fuzz/fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return inq::fuzz::run_one_input([&] { inq::fuzz::safetensors_input({data, size}); });
}
