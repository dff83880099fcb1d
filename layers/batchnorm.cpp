#include "layers/batchnorm.h"

#include <cmath>
#include <vector>

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq {

namespace {

void check_channel_vector(const Tensor& t, const char* what, int64_t channels, const Shape& x_shape) {
  if (!t.defined()) return;
  INQ_CHECK(t.shape() == Shape{channels},
            "Given batch_norm2d input of shape {}, expected {} of shape [{}], but got {} instead",
            shape_str(x_shape), what, channels, shape_str(t.shape()));
}

// Reductions over one (H*W) plane, in double, in an order fixed by the code rather than by the
// compiler: kLanes independent accumulators (so the adds can run as vector operations without
// -ffast-math), summed at the end. Each plane is reduced by one thread, so the result does not
// depend on the thread count. A single running double sum is bound by add latency; this was ~12%
// of a ResNet-20 training step.
constexpr int kLanes = 8;

template <class Term>
double plane_sum(int64_t count, Term term) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  double total = 0.0;
  for (; i < count; ++i) total += term(i);
  for (int j = 0; j < kLanes; ++j) total += acc[j];
  return total;
}

// Everything backward needs: the input (an alias, no copy), the statistics the forward pass
// normalized with, and the weight. x_hat is recomputed from them rather than stored, so training
// keeps no extra activation-sized buffer.
struct BatchNorm2dBackward : Node {
  Tensor x;                   // (N, C, H, W) detached
  Tensor weight;              // (C) detached, or undefined (treated as 1)
  std::vector<float> mean;    // (C)
  std::vector<float> invstd;  // (C)
  bool training = true;       // whether mean/invstd were batch statistics (then they depend on x)
  const BatchNormSync* sync = nullptr;  // synchronized statistics: the mean terms are over every rank
  int64_t m_total = 0;                  // values per channel over every rank (sync)

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    if (sync != nullptr && training) return synced_backward(grad_output);
    const int64_t n_batch = x.size(0), channels = x.size(1);
    const int64_t plane = x.size(2) * x.size(3);
    const int64_t m = n_batch * plane;
    const bool want_dx = needs_input_grad(0);
    const bool want_dw = needs_input_grad(1);
    const bool want_db = needs_input_grad(2);

    Tensor dx = want_dx ? Tensor::empty(x.shape()) : Tensor();
    Tensor dw = want_dw ? Tensor::empty({channels}) : Tensor();
    Tensor db = want_db ? Tensor::empty({channels}) : Tensor();
    const float* px = x.data();
    const float* pg = grad_output.data();
    const float* pw = weight.defined() ? weight.data() : nullptr;
    float* pdx = want_dx ? dx.data() : nullptr;
    float* pdw = want_dw ? dw.data() : nullptr;
    float* pdb = want_db ? db.data() : nullptr;

    // One channel per iteration: its reductions run in a fixed order whatever the thread count.
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
    for (int64_t c = 0; c < channels; ++c) {
      const float mu = mean[c], is = invstd[c];
      double sum_g = 0.0, sum_g_xhat = 0.0;
      for (int64_t n = 0; n < n_batch; ++n) {
        const float* xs = px + (n * channels + c) * plane;
        const float* gs = pg + (n * channels + c) * plane;
        sum_g += plane_sum(plane, [&](int64_t i) { return static_cast<double>(gs[i]); });
        sum_g_xhat +=
            plane_sum(plane, [&](int64_t i) { return static_cast<double>(gs[i]) * ((xs[i] - mu) * is); });
      }
      if (pdw) pdw[c] = static_cast<float>(sum_g_xhat);
      if (pdb) pdb[c] = static_cast<float>(sum_g);
      if (!pdx) continue;
      const float scale = (pw ? pw[c] : 1.0f) * is;
      if (training) {
        // dx = w*invstd * (g - mean(g) - x_hat * mean(g * x_hat)): the two mean terms are the paths
        // through the batch mean and the batch variance.
        const float mean_g = static_cast<float>(sum_g / static_cast<double>(m));
        const float mean_g_xhat = static_cast<float>(sum_g_xhat / static_cast<double>(m));
        for (int64_t n = 0; n < n_batch; ++n) {
          const float* xs = px + (n * channels + c) * plane;
          const float* gs = pg + (n * channels + c) * plane;
          float* ds = pdx + (n * channels + c) * plane;
          for (int64_t i = 0; i < plane; ++i)
            ds[i] = scale * (gs[i] - mean_g - (xs[i] - mu) * is * mean_g_xhat);
        }
      } else {
        for (int64_t n = 0; n < n_batch; ++n) {
          const float* gs = pg + (n * channels + c) * plane;
          float* ds = pdx + (n * channels + c) * plane;
          for (int64_t i = 0; i < plane; ++i) ds[i] = scale * gs[i];
        }
      }
    }
    return {dx, dw, db};
  }
  // SyncBatchNorm's backward: this rank's per-channel sums of dy and dy * x_hat give dweight and
  // dbias (the gradient reducer sums those over ranks); dx needs the sums over every rank, as the
  // statistics it goes through are the global batch's.
  std::vector<Tensor> synced_backward(const Tensor& grad_output) {
    const int64_t n_batch = x.size(0), channels = x.size(1);
    const int64_t plane = x.size(2) * x.size(3);
    Tensor dx = needs_input_grad(0) ? Tensor::empty(x.shape()) : Tensor();
    Tensor dw = needs_input_grad(1) ? Tensor::empty({channels}) : Tensor();
    Tensor db = needs_input_grad(2) ? Tensor::empty({channels}) : Tensor();
    const float* px = x.data();
    const float* pg = grad_output.data();
    const float* pw = weight.defined() ? weight.data() : nullptr;
    // sums[c] = sum of dy, sums[channels + c] = sum of dy * x_hat over this rank's batch.
    std::vector<double> sums(static_cast<size_t>(2 * channels));
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
    for (int64_t c = 0; c < channels; ++c) {
      const float mu = mean[c], is = invstd[c];
      double sum_g = 0.0, sum_g_xhat = 0.0;
      for (int64_t n = 0; n < n_batch; ++n) {
        const float* xs = px + (n * channels + c) * plane;
        const float* gs = pg + (n * channels + c) * plane;
        sum_g += plane_sum(plane, [&](int64_t i) { return static_cast<double>(gs[i]); });
        sum_g_xhat +=
            plane_sum(plane, [&](int64_t i) { return static_cast<double>(gs[i]) * ((xs[i] - mu) * is); });
      }
      sums[c] = sum_g;
      sums[channels + c] = sum_g_xhat;
    }
    if (dw.defined())
      for (int64_t c = 0; c < channels; ++c) dw.data()[c] = static_cast<float>(sums[channels + c]);
    if (db.defined())
      for (int64_t c = 0; c < channels; ++c) db.data()[c] = static_cast<float>(sums[c]);
    if (!dx.defined()) return {dx, dw, db};
    // Every rank's dy carries its own share n_r / n of the loss: weight the sums by it, add them
    // up, and express the result in this rank's scale again.
    for (double& v : sums) v *= sync->weight;
    sync->comm->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
    float* pdx = dx.data();
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
    for (int64_t c = 0; c < channels; ++c) {
      const float mu = mean[c], is = invstd[c];
      const float scale = (pw ? pw[c] : 1.0f) * is;
      const double to_local = 1.0 / (sync->weight * static_cast<double>(m_total));
      const float mean_g = static_cast<float>(sums[c] * to_local);
      const float mean_g_xhat = static_cast<float>(sums[channels + c] * to_local);
      for (int64_t n = 0; n < n_batch; ++n) {
        const float* xs = px + (n * channels + c) * plane;
        const float* gs = pg + (n * channels + c) * plane;
        float* ds = pdx + (n * channels + c) * plane;
        for (int64_t i = 0; i < plane; ++i) ds[i] = scale * (gs[i] - mean_g - (xs[i] - mu) * is * mean_g_xhat);
      }
    }
    return {dx, dw, db};
  }

  void release() override {
    x = weight = Tensor();
    mean.clear();
    invstd.clear();
  }
  std::string name() const override { return "BatchNorm2dBackward"; }
};

// SyncBatchNorm's statistics: the per-channel mean and biased variance of every rank's batch
// together (two all-reduces: the sums and the count, then the sums of squares about the global
// mean, the same two-pass scheme as one process), and the total count of values per channel.
int64_t synced_batch_statistics(const Tensor& x, const BatchNormSync& sync, std::vector<double>& batch_mean,
                                std::vector<double>& sum_sq) {
  const int64_t n_batch = x.size(0), channels = x.size(1);
  const int64_t plane = x.size(2) * x.size(3);
  const float* px = x.data();
  std::vector<double> sums(static_cast<size_t>(channels + 1));
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    double s = 0.0;
    for (int64_t n = 0; n < n_batch; ++n) {
      const float* xs = px + (n * channels + c) * plane;
      s += plane_sum(plane, [&](int64_t i) { return static_cast<double>(xs[i]); });
    }
    sums[c] = s;
  }
  sums[channels] = static_cast<double>(n_batch * plane);  // exact: counts stay far below 2^53
  sync.comm->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
  const auto m_total = static_cast<int64_t>(sums[channels]);
  INQ_CHECK(m_total > 1, "Given synchronized batch_norm2d over {} value(s) per channel on all ranks, expected more than 1",
            m_total);
  batch_mean.resize(static_cast<size_t>(channels));
  sum_sq.assign(static_cast<size_t>(channels), 0.0);
  for (int64_t c = 0; c < channels; ++c) batch_mean[c] = sums[c] / static_cast<double>(m_total);
#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    double ss = 0.0;
    for (int64_t n = 0; n < n_batch; ++n) {
      const float* xs = px + (n * channels + c) * plane;
      ss += plane_sum(plane, [&](int64_t i) {
        const double d = xs[i] - batch_mean[c];
        return d * d;
      });
    }
    sum_sq[c] = ss;
  }
  sync.comm->allreduce_sum(sum_sq.data(), channels);
  return m_total;
}

}  // namespace

Tensor batch_norm2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                    Tensor running_var, bool training, double momentum, double eps, const BatchNormSync* sync) {
  INQ_CHECK(x.defined() && x.dim() == 4,
            "Given batch_norm2d input of shape {}, expected a 4-d (N, C, H, W) tensor",
            x.defined() ? shape_str(x.shape()) : "undefined");
  const int64_t n_batch = x.size(0), channels = x.size(1);
  const int64_t plane = x.size(2) * x.size(3);
  const int64_t m = n_batch * plane;
  check_channel_vector(weight, "weight", channels, x.shape());
  check_channel_vector(bias, "bias", channels, x.shape());
  check_channel_vector(running_mean, "running_mean", channels, x.shape());
  check_channel_vector(running_var, "running_var", channels, x.shape());
  INQ_CHECK(running_mean.defined() == running_var.defined(),
            "Given batch_norm2d, expected running_mean and running_var to be both defined or both undefined");
  INQ_CHECK(training || running_mean.defined(),
            "Given batch_norm2d in eval mode, expected running statistics, but got none");
  const bool synced = training && sync != nullptr && sync->comm != nullptr;
  INQ_CHECK(synced || !training || m > 1,
            "Given batch_norm2d input of shape {} in training mode, expected more than 1 value per channel",
            shape_str(x.shape()));
  INQ_CHECK(eps > 0.0, "Given batch_norm2d eps {}, expected a positive value", eps);

  std::vector<float> mean(static_cast<size_t>(channels)), invstd(static_cast<size_t>(channels));
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.data();
  float* py = y.data();
  const float* pw = weight.defined() ? weight.data() : nullptr;
  const float* pb = bias.defined() ? bias.data() : nullptr;
  float* prm = running_mean.defined() ? running_mean.data() : nullptr;
  float* prv = running_var.defined() ? running_var.data() : nullptr;

  // Synchronized statistics are computed for all channels first (they need collectives between
  // the passes); the loop below then only applies them.
  std::vector<double> synced_mean, synced_sum_sq;
  const int64_t m_total = synced ? synced_batch_statistics(x, *sync, synced_mean, synced_sum_sq) : m;

#pragma omp parallel for schedule(static) if (x.numel() > 32768)
  for (int64_t c = 0; c < channels; ++c) {
    float mu, is;
    if (synced) {
      const double batch_mean = synced_mean[c];
      const double batch_var = synced_sum_sq[c] / static_cast<double>(m_total);
      mu = static_cast<float>(batch_mean);
      is = static_cast<float>(1.0 / std::sqrt(batch_var + eps));
      if (prm) {
        const double unbiased = synced_sum_sq[c] / static_cast<double>(m_total - 1);
        prm[c] = static_cast<float>((1.0 - momentum) * prm[c] + momentum * batch_mean);
        prv[c] = static_cast<float>((1.0 - momentum) * prv[c] + momentum * unbiased);
      }
    } else if (training) {
      // Two passes in double: the one-pass E[x^2] - E[x]^2 cancels badly for large means.
      double s = 0.0;
      for (int64_t n = 0; n < n_batch; ++n) {
        const float* xs = px + (n * channels + c) * plane;
        s += plane_sum(plane, [&](int64_t i) { return static_cast<double>(xs[i]); });
      }
      const double batch_mean = s / static_cast<double>(m);
      double ss = 0.0;
      for (int64_t n = 0; n < n_batch; ++n) {
        const float* xs = px + (n * channels + c) * plane;
        ss += plane_sum(plane, [&](int64_t i) {
          const double d = xs[i] - batch_mean;
          return d * d;
        });
      }
      const double batch_var = ss / static_cast<double>(m);
      mu = static_cast<float>(batch_mean);
      is = static_cast<float>(1.0 / std::sqrt(batch_var + eps));
      if (prm) {
        const double unbiased = ss / static_cast<double>(m - 1);
        prm[c] = static_cast<float>((1.0 - momentum) * prm[c] + momentum * batch_mean);
        prv[c] = static_cast<float>((1.0 - momentum) * prv[c] + momentum * unbiased);
      }
    } else {
      mu = prm[c];
      is = static_cast<float>(1.0 / std::sqrt(static_cast<double>(prv[c]) + eps));
    }
    mean[c] = mu;
    invstd[c] = is;
    const float scale = (pw ? pw[c] : 1.0f) * is;
    const float shift = (pb ? pb[c] : 0.0f);
    for (int64_t n = 0; n < n_batch; ++n) {
      const float* xs = px + (n * channels + c) * plane;
      float* ys = py + (n * channels + c) * plane;
      for (int64_t i = 0; i < plane; ++i) ys[i] = (xs[i] - mu) * scale + shift;
    }
  }

  if (needs_grad({&x, &weight, &bias})) {
    auto node = std::make_shared<BatchNorm2dBackward>();
    node->x = x.detach();
    if (weight.defined()) node->weight = weight.detach();
    node->mean = std::move(mean);
    node->invstd = std::move(invstd);
    node->training = training;
    if (synced) {
      node->sync = sync;
      node->m_total = m_total;
    }
    record(y, node, {&x, &weight, &bias});
  }
  return y;
}

BatchNorm2d::BatchNorm2d(const BatchNorm2dOptions& options) : options_(options) {
  INQ_CHECK(options.num_features > 0, "Given BatchNorm2d num_features {}, expected a positive count",
            options.num_features);
  INQ_CHECK(options.eps > 0.0, "Given BatchNorm2d eps {}, expected a positive value", options.eps);
  INQ_CHECK(options.momentum >= 0.0 && options.momentum <= 1.0,
            "Given BatchNorm2d momentum {}, expected a value in [0, 1]", options.momentum);
  const int64_t c = options.num_features;
  if (options.affine) {
    weight = register_parameter("weight", Tensor::full({c}, 1.0f), ParamRole::Norm);
    bias = register_parameter("bias", Tensor::zeros({c}), ParamRole::Norm);
  }
  if (options.track_running_stats) {
    running_mean = register_buffer("running_mean", Tensor::zeros({c}));
    running_var = register_buffer("running_var", Tensor::full({c}, 1.0f));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}));
  }
}

Tensor BatchNorm2d::forward(const Tensor& input) {
  INQ_CHECK(input.defined() && input.dim() == 4 && input.size(1) == options_.num_features,
            "Given BatchNorm2d({}) input of shape {}, expected (N, {}, H, W)", options_.num_features,
            input.defined() ? shape_str(input.shape()) : "undefined", options_.num_features);
  // As in PyTorch: without running statistics the batch statistics are used in eval mode too.
  const bool use_batch_stats = is_training() || !options_.track_running_stats;
  const bool updates_stats = is_training() && options_.track_running_stats;
  const double momentum =
      updates_stats && cumulative_average_ ? 1.0 / (static_cast<double>(num_batches_tracked.item()) + 1.0)
                                           : options_.momentum;
  // Synchronized only in training mode: evaluation (running statistics) stays per rank.
  Tensor y = batch_norm2d(input, weight, bias, running_mean, running_var, use_batch_stats, momentum, options_.eps,
                          is_training() ? sync_ : nullptr);
  if (updates_stats) num_batches_tracked.data()[0] += 1.0f;
  return y;
}

void BatchNorm2d::reset_running_stats() {
  INQ_CHECK(options_.track_running_stats, "Given BatchNorm2d without running statistics, expected none to reset");
  running_mean.fill_(0.0f);
  running_var.fill_(1.0f);
  num_batches_tracked.fill_(0.0f);
}

void BatchNorm2d::set_cumulative_average(bool on) {
  INQ_CHECK(!on || options_.track_running_stats,
            "Given BatchNorm2d without running statistics, expected no cumulative average of them");
  cumulative_average_ = on;
}

namespace {
void collect_batchnorm(Module& module, std::vector<BatchNorm2d*>* out) {
  if (auto* bn = dynamic_cast<BatchNorm2d*>(&module)) out->push_back(bn);
  for (const auto& [name, child] : module.children()) collect_batchnorm(*child, out);
}
}  // namespace

std::vector<BatchNorm2d*> batchnorm_layers(Module& model) {
  std::vector<BatchNorm2d*> layers;
  collect_batchnorm(model, &layers);
  return layers;
}

}  // namespace inq
