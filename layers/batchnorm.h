#pragma once
// Batch normalization over the channels of an NCHW tensor (after PyTorch's BatchNorm2d).
//   x, y           (N, C, H, W)
//   weight, bias   (C)        the affine transform (gamma, beta); undefined means 1 and 0
//   running_mean   (C)        buffers, updated in training mode
//   running_var    (C)
// Training: y = (x - mean_B) / sqrt(var_B + eps) * weight + bias with the batch statistics over
// (N, H, W), var_B biased; the running statistics move as running = (1 - m) * running + m * batch,
// using the UNBIASED batch variance (var_B * M / (M - 1), M = N*H*W), as PyTorch does.
// Eval: the same formula with the running statistics. Backward is exact in both modes (in training
// it goes through the batch statistics).
#include <cstdint>
#include <vector>

#include "framework/communicator.h"
#include "framework/tensor.h"
#include "layers/module.h"

namespace inq {

// Batch statistics over the batches of every rank of a data-parallel run (PyTorch's
// SyncBatchNorm; docs/DISTRIBUTED.md). In training mode the forward pass all-reduces the
// per-channel sums and centered sums of squares, so every rank normalizes with the statistics of
// the global batch, and the backward pass all-reduces the per-channel sums of dy and dy * x_hat.
// `weight` is this rank's share n_r / n of the global batch: each rank's loss is the mean over its
// own examples and the gradient reducer scales its gradients by that share before summing them,
// so the backward sums are weighted the same way (with equal shards this is the plain sum).
struct BatchNormSync {
  Communicator* comm = nullptr;  // an independent one (split_off): it runs inside backward
  double weight = 1.0;
};

// ---- kernels (no autograd; contiguous NCHW buffers, plane = H*W) ----
//   x, y, dy, dx        (N, C, H, W)
//   weight, bias, dw, db, mean, invstd, running_mean, running_var   (C)
// Forward: writes y, and the statistics it normalized with (mean, invstd = 1/sqrt(var + eps): the
// batch's when `training`, then running_mean/var, if not null, move by `momentum`; the running ones
// otherwise). weight, bias may be null (1 and 0). fuse_relu: y = max(y, 0) in the same pass (NaN kept).
void batch_norm2d_forward(float* y, float* mean, float* invstd, const float* x, const float* weight,
                          const float* bias, float* running_mean, float* running_var, int64_t N, int64_t C,
                          int64_t plane, bool training, double momentum, double eps, bool fuse_relu);
// Backward given dy and the forward's mean/invstd; dx, dw, db may each be null and are WRITTEN.
// y: the forward's output when it fused the ReLU (the gradient is then dy where y > 0, else 0), or
// null. `training`: the statistics were the batch's (dx then includes the paths through them).
void batch_norm2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* y,
                           const float* weight, const float* mean, const float* invstd, int64_t N, int64_t C,
                           int64_t plane, bool training);

// Functional form. `training` selects batch statistics; when it is set and running_mean/running_var
// are defined they are updated in place (never recorded by autograd). When `training` is false the
// running statistics must be defined. weight and bias may be undefined (no affine transform).
// With `sync` (training only) the statistics are those of every rank's batch together.
Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5,
                    const BatchNormSync* sync = nullptr);
// relu(batch_norm2d(...)) in one pass over memory forward and one backward, with bit-identical
// results (same arithmetic in the same order); its output is what backward needs for the ReLU
// mask, so it saves no more than the unfused pair. The naive twin is that composition.
Tensor batch_norm2d_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                         Tensor running_var, bool training, double momentum = 0.1, double eps = 1e-5,
                         const BatchNormSync* sync = nullptr);

struct BatchNorm2dOptions {
  int64_t num_features = 0;         // C, > 0
  double eps = 1e-5;                // > 0
  double momentum = 0.1;            // in [0, 1]
  bool affine = true;               // learn weight and bias
  bool track_running_stats = true;  // without them, batch statistics are used in eval mode too
};

// Parameters "weight" (init 1) and "bias" (init 0), role Norm, present when affine.
// Buffers "running_mean" (0), "running_var" (1), "num_batches_tracked" (rank-0, counts training
// batches), present when track_running_stats. Names match torchvision.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(const BatchNorm2dOptions& options);
  explicit BatchNorm2d(int64_t num_features)
      : BatchNorm2d(BatchNorm2dOptions{.num_features = num_features}) {}

  Tensor forward(const Tensor& input) override;  // (N, C, H, W) -> (N, C, H, W); the input itself when folded
  // relu(forward(input)) fused (batch_norm2d_relu), with the same statistics bookkeeping: what the
  // models call where a BatchNorm feeds a ReLU.
  Tensor forward_relu(const Tensor& input);
  std::string type_name() const override { return "BatchNorm2d"; }
  const BatchNorm2dOptions& options() const { return options_; }

  // Re-estimating the running statistics once the weights are final (INQ's last step):
  // reset_running_stats() sets mean 0, variance 1 and the batch count 0; with the cumulative
  // average on, the k-th training batch after that moves the statistics by 1/k instead of by
  // `momentum`, so after K batches they are exactly the mean of the K batch statistics (PyTorch's
  // momentum=None). Both need track_running_stats.
  void reset_running_stats();
  void set_cumulative_average(bool on);
  bool cumulative_average() const { return cumulative_average_; }
  // Synchronized batch statistics in training mode (nullptr: this process's batch alone). The
  // object must outlive every forward and backward pass that uses it.
  void set_sync(const BatchNormSync* sync) { sync_ = sync; }
  const BatchNormSync* sync() const { return sync_; }
  // Folded into the convolution before it (prepare_for_inference, layers/fold_batchnorm.h): the
  // layer then passes its input through (forward_relu: relu of it), in eval mode only, and its
  // tensors are no longer read. Training a folded layer throws.
  void set_folded() { folded_ = true; }
  bool folded() const { return folded_; }

  Tensor weight, bias;               // (C) or undefined when !affine
  Tensor running_mean, running_var;  // (C) or undefined when !track_running_stats
  Tensor num_batches_tracked;        // () float

 private:
  Tensor normalize(const Tensor& input, bool fuse_relu);

  BatchNorm2dOptions options_;
  bool cumulative_average_ = false;
  bool folded_ = false;
  const BatchNormSync* sync_ = nullptr;
};

// Every BatchNorm2d inside `model` (itself included), in registration order.
std::vector<BatchNorm2d*> batchnorm_layers(Module& model);

}  // namespace inq
