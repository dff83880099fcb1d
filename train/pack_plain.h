#pragma once
// `inq pack --bits B --arch NAME`: packing a model quantized elsewhere. Apart from train/inq_files.h
// because it needs the model registry (for --arch), which the fuzz build's copy of inq_files.cpp
// does not link (tests/fuzz/CMakeLists.txt).
#include <string>

#include "inq/packed_model.h"

namespace inq {

// Packs a plain weights file (no INQ state: a model quantized elsewhere, e.g. by INQ-pytorch or
// one-shot) as `arch`: every F32 tensor of rank >= 2 whose name ends in "weight" (the Conv2d and
// Linear weights) must be 0 or +-2^k inside the `bits`-bit codebook its max |w| implies
// (inq/codebook.h), and is stored as codes; the rest as it is. Throws inq::Error naming the file,
// and for a weight outside its codebook the tensor, the index and the value; also for a checkpoint
// or packed model (a checkpoint carries its own bit-widths: pack it without --bits), an unknown arch,
// or a file with no such weight.
PackSummary pack_plain_weights(const std::string& weights, int bits, const std::string& arch, const std::string& out,
                               const PackOptions& options = {});

}  // namespace inq
