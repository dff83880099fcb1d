#pragma once
// What `inq pack` and `inq verify` do with the files a run writes: packing a finished INQ checkpoint
// (inq/packed_model.h) and checking that every quantized weight of a checkpoint or packed model is in
// its codebook (docs/INQ_SPEC.md section 7).
#include <cstdio>
#include <string>

#include "inq/packed_model.h"

namespace inq {

// Packs the model of a finished INQ checkpoint (every quantized weight frozen and in its codebook)
// into `out`, atomically; the optimizer state does not ship. Throws inq::Error naming the file
// otherwise.
PackSummary pack_checkpoint(const std::string& checkpoint, const std::string& out, const PackOptions& options = {});

// Exit status of `inq verify` when some quantized weight is not in its codebook.
inline constexpr int kVerifyFailed = 3;

// Prints the verification of an INQ checkpoint or packed model to `out`; returns the exit status
// (0 or kVerifyFailed). Throws inq::Error when the file is not one of those.
int verify_checkpoint(const std::string& path, std::FILE* out);

}  // namespace inq
