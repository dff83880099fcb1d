// libFuzzer target: JPEG and PNG decoding (data/image.h: read_image_header, then decode_image).
// See tests/fuzz/README.md; what one input goes through is in tests/fuzz/fuzz_inputs.h.
#include "tests/fuzz/fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return inq::fuzz::run_one_input([&] { inq::fuzz::image_input({data, size}); });
}
