// libFuzzer target: the CIFAR-10 binary reader (data/cifar10.h: parse_cifar10_records).
// See tests/fuzz/README.md; what one input goes through is in tests/fuzz/fuzz_inputs.h.
#include "tests/fuzz/fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return inq::fuzz::run_one_input([&] { inq::fuzz::cifar10_input({data, size}); });
}
