#pragma once
// Loading stored tensors into live tensors by name, with PyTorch's strict load_state_dict report:
// every missing, unexpected and mis-shaped name is listed in one message, not just the first.
// framework/ cannot see layers/, so the destination is a plain list of (dotted name, tensor); a
// Module's state_dict() converts to it with one loop.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "framework/safetensors.h"
#include "framework/tensor.h"

namespace inq {

using NamedTensorList = std::vector<std::pair<std::string, Tensor>>;
// Says which names a load may do without (load_state_dict's `optional`); empty: none.
using NamePredicate = std::function<bool(const std::string&)>;

struct LoadStateReport {
  std::vector<std::string> missing;     // destination names absent from the file
  std::vector<std::string> unexpected;  // file names absent from the destination
  std::vector<std::string> mismatched;  // one line per name whose shape or values cannot be loaded
  std::vector<std::string> loaded;      // names copied
  std::vector<std::string> optional_missing;  // optional destination names absent from the file (left as they were)
  std::vector<std::string> optional_ignored;  // optional file names absent from the destination (not loaded)
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // Multi-line description of every problem, PyTorch style; empty when ok().
  std::string message(const std::string& source) const;
  // One line saying which optional destination tensors the file lacked, by their first name
  // component ("aux1.*, aux2.*"), and that they keep their initial values; empty when none.
  std::string optional_missing_note(const std::string& source) const;
};

// Copies every file tensor into the destination tensor of the same name.
// - F32 copies need equal shapes. I64 tensors (BatchNorm's rank-0 num_batches_tracked) load into
//   float tensors of the same shape when every value is exactly representable as a float.
// - Shape or value mismatches throw in both modes (as in PyTorch); so does a duplicated destination
//   name. Nothing is copied when anything throws.
// - strict: missing or unexpected names throw too, with the full report.
//   Non-strict: the matching tensors are loaded and the report lists the rest.
// - optional: names for which it returns true may be absent from the file (the destination tensor
//   keeps its values; report.optional_missing) or from the destination (the file's tensor is not
//   loaded; report.optional_ignored), in both modes. The destination's optional names come all or
//   none: a file that has some of them has the others reported as missing.
LoadStateReport load_state_dict(const NamedTensorList& destination, const SafetensorsFile& file,
                                bool strict = true, const NamePredicate& optional = {});

}  // namespace inq
