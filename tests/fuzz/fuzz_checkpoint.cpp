// libFuzzer target: weights and checkpoint files as --weights, --resume and `inq verify` read
// them (train/checkpoint.h, inq/inq_state.h, the optimizers' state loaders).
// See tests/fuzz/README.md; what one input goes through is in tests/fuzz/fuzz_inputs.h.
#include <cstring>
#include <optional>
#include <random>

#include "tests/fuzz/fuzz_inputs.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

// The safetensors file `bytes` with one metadata value (a JSON document of the checkpoint) or one
// tensor's bytes mutated by libFuzzer, written back as a valid container; nullopt when `bytes` does
// not parse or the result cannot be written (e.g. the mutation broke UTF-8) or is too long.
// Byte mutations of the whole file almost never get past the container: any change in the header's
// length moves the data buffer, and the reader then rejects the offsets.
std::optional<std::vector<uint8_t>> mutate_inside(std::span<const uint8_t> bytes, size_t max_size,
                                                  std::minstd_rand& rng) {
  using namespace inq;
  SafetensorsFile file;
  try {
    file = parse_safetensors(bytes);
  } catch (const Error&) {
    return std::nullopt;
  }
  const size_t choices = file.metadata.size() + file.tensors.size();
  if (choices == 0) return std::nullopt;
  const size_t pick = rng() % choices;
  if (pick < file.metadata.size()) {
    std::string& value = std::next(file.metadata.begin(), static_cast<long>(pick))->second;
    const size_t size = value.size();
    value.resize(2 * size + 64);  // room to grow
    value.resize(LLVMFuzzerMutate(reinterpret_cast<uint8_t*>(value.data()), size, value.size()));
  } else {
    StoredTensor& t = file.tensors[pick - file.metadata.size()].second;
    const size_t nbytes = static_cast<size_t>(t.numel() * stored_dtype_size(t.dtype));
    if (nbytes == 0) return std::nullopt;
    // The size is fixed by the shape: a shorter mutation keeps the old tail.
    auto* data = t.dtype == StoredDtype::F32   ? reinterpret_cast<uint8_t*>(t.f32.data())
                 : t.dtype == StoredDtype::I64 ? reinterpret_cast<uint8_t*>(t.i64.data())
                                               : t.u8.data();
    LLVMFuzzerMutate(data, nbytes, nbytes);
  }
  try {
    std::vector<uint8_t> out = serialize_safetensors(file.tensors, file.metadata);
    if (out.size() > max_size) return std::nullopt;
    return out;
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace

// Three mutations in four change what is inside the container; the rest change the raw bytes, so the
// container's own checks keep being fuzzed too.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::minstd_rand rng(seed);
  if (rng() % 4 != 0) {
    if (const auto mutated = mutate_inside({data, size}, max_size, rng)) {
      std::memcpy(data, mutated->data(), mutated->size());
      return mutated->size();
    }
  }
  return LLVMFuzzerMutate(data, size, max_size);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return inq::fuzz::run_one_input([&] { inq::fuzz::checkpoint_input({data, size}); });
}
