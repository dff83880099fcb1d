#include "models/image_input.h"

#include "framework/error.h"

namespace inq {

void check_image_batch(const std::string& arch, const Tensor& x, int64_t channels, int64_t min_size) {
  INQ_CHECK(x.defined(), "Given an undefined input to {}, expected a (N, {}, H, W) batch", arch, channels);
  INQ_CHECK(x.dim() == 4, "Given {} input of shape {}, expected a 4-d (N, {}, H, W) batch, but got {} dims instead",
            arch, shape_str(x.shape()), channels, x.dim());
  INQ_CHECK(x.size(1) == channels,
            "Given {} input of shape {}, expected {} channels (the model's in_channels), but got {} instead", arch,
            shape_str(x.shape()), channels, x.size(1));
  INQ_CHECK(x.size(2) >= min_size && x.size(3) >= min_size,
            "Given {} input of shape {}, expected H and W of at least {} (smaller images shrink to nothing "
            "before the classifier), but got {}x{} instead",
            arch, shape_str(x.shape()), min_size, x.size(2), x.size(3));
}

}  // namespace inq
