#include "layers/concat.h"

#include <cstring>

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq {

namespace {

// Forward: for every sample, each input's (C_i * inner) block goes to its offset in the output block.
// A sample per iteration; the ranges are disjoint, so any thread split writes the same bytes.
void gather_blocks(float* out, const std::vector<const float*>& parts, const std::vector<int64_t>& part_sizes,
                   int64_t n_batch, int64_t out_block) {
#pragma omp parallel for schedule(static) if (n_batch * out_block > 65536)
  for (int64_t n = 0; n < n_batch; ++n) {
    int64_t offset = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const int64_t len = part_sizes[i];
      if (len > 0)
        std::memcpy(out + n * out_block + offset, parts[i] + n * len,
                    static_cast<size_t>(len) * sizeof(float));
      offset += len;
    }
  }
}

// Backward: the reverse copy; a null part (a branch that needs no gradient) is skipped.
void scatter_blocks(const std::vector<float*>& parts, const float* in, const std::vector<int64_t>& part_sizes,
                    int64_t n_batch, int64_t in_block) {
#pragma omp parallel for schedule(static) if (n_batch * in_block > 65536)
  for (int64_t n = 0; n < n_batch; ++n) {
    int64_t offset = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      const int64_t len = part_sizes[i];
      if (len > 0 && parts[i])
        std::memcpy(parts[i] + n * len, in + n * in_block + offset, static_cast<size_t>(len) * sizeof(float));
      offset += len;
    }
  }
}

struct ConcatChannelsBackward : Node {
  std::vector<Shape> shapes;
  std::vector<int64_t> part_sizes;  // C_i * inner per sample
  int64_t n_batch = 0, out_block = 0;

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    std::vector<Tensor> grads(shapes.size());
    std::vector<float*> parts(shapes.size(), nullptr);
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (!needs_input_grad(i)) continue;  // this branch needs no gradient
      grads[i] = Tensor::empty(shapes[i]);
      parts[i] = grads[i].data();
    }
    scatter_blocks(parts, grad_output.data(), part_sizes, n_batch, out_block);
    return grads;
  }
  std::string name() const override { return "ConcatChannelsBackward"; }
};

}  // namespace

Tensor concat_channels(const std::vector<Tensor>& xs) {
  INQ_CHECK(!xs.empty(), "Given concat_channels of no tensors, expected at least one");
  for (size_t i = 0; i < xs.size(); ++i)
    INQ_CHECK(xs[i].defined() && xs[i].dim() >= 2,
              "Given concat_channels input {} of shape {}, expected at least 2 dims (N, C, *)", i,
              xs[i].defined() ? shape_str(xs[i].shape()) : "undefined");
  const Shape& first = xs[0].shape();
  int64_t channels = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Shape& s = xs[i].shape();
    bool same = s.size() == first.size();
    for (size_t d = 0; same && d < s.size(); ++d) same = d == 1 || s[d] == first[d];
    INQ_CHECK(
        same,
        "Given concat_channels inputs of shapes {} (input 0) and {} (input {}), expected equal sizes in "
        "every dim but 1",
        shape_str(first), shape_str(s), i);
    channels += s[1];
  }
  Shape out_shape = first;
  out_shape[1] = channels;
  const int64_t n_batch = first[0];
  int64_t inner = 1;
  for (size_t d = 2; d < first.size(); ++d) inner *= first[d];

  Tensor y = Tensor::empty(out_shape);
  std::vector<const float*> parts;
  std::vector<int64_t> part_sizes;
  for (const Tensor& x : xs) {
    parts.push_back(x.data());
    part_sizes.push_back(x.size(1) * inner);
  }
  gather_blocks(y.data(), parts, part_sizes, n_batch, channels * inner);

  if (needs_grad(xs)) {
    auto node = std::make_shared<ConcatChannelsBackward>();
    for (const Tensor& x : xs) node->shapes.push_back(x.shape());
    node->part_sizes = part_sizes;
    node->n_batch = n_batch;
    node->out_block = channels * inner;
    std::vector<const Tensor*> inputs;
    for (const Tensor& x : xs) inputs.push_back(&x);
    record(y, node, inputs);
  }
  return y;
}

}  // namespace inq
