#include "layers/flatten.h"

#include "framework/error.h"
#include "framework/ops.h"

namespace inq {

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  INQ_CHECK(x.defined(), "Given flatten of an undefined tensor, expected a defined one");
  const int64_t rank = x.dim();
  if (rank == 0) return ops::reshape(x, {1});
  const int64_t s = start_dim < 0 ? start_dim + rank : start_dim;
  const int64_t e = end_dim < 0 ? end_dim + rank : end_dim;
  INQ_CHECK(s >= 0 && s < rank && e >= 0 && e < rank && s <= e,
            "Given flatten of shape {} from dim {} to dim {}, expected dims in [{}, {}) with start <= end",
            shape_str(x.shape()), start_dim, end_dim, -rank, rank);
  Shape out;
  for (int64_t d = 0; d < s; ++d) out.push_back(x.size(d));
  int64_t merged = 1;
  for (int64_t d = s; d <= e; ++d) merged *= x.size(d);
  out.push_back(merged);
  for (int64_t d = e + 1; d < rank; ++d) out.push_back(x.size(d));
  return ops::reshape(x, out);
}

}  // namespace inq
