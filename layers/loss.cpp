#include "layers/loss.h"

#include <algorithm>
#include <cmath>

#include "framework/autograd.h"
#include "framework/error.h"

namespace inq {

namespace {

void check_logits_targets(const char* op, const Tensor& logits, const std::vector<int64_t>& targets) {
  INQ_CHECK(logits.defined() && logits.dim() == 2 && logits.size(0) > 0 && logits.size(1) > 0,
            "Given {} logits of shape {}, expected a non-empty 2-d (N, K) tensor", op,
            logits.defined() ? shape_str(logits.shape()) : "undefined");
  const int64_t n = logits.size(0), k = logits.size(1);
  INQ_CHECK(static_cast<int64_t>(targets.size()) == n,
            "Given {} logits of shape {}, expected {} targets, but got {} instead", op,
            shape_str(logits.shape()), n, targets.size());
  for (int64_t i = 0; i < n; ++i)
    INQ_CHECK(targets[i] >= 0 && targets[i] < k,
              "Given {} logits of shape {}, expected every target in [0, {}), but got {} at index {} instead",
              op, shape_str(logits.shape()), k, targets[i], i);
}

struct CrossEntropyBackward : Node {
  Tensor probs;                  // (N, K) softmax of the logits
  std::vector<int64_t> targets;  // N

  std::vector<Tensor> backward(const Tensor& grad_output) override {
    const int64_t n = probs.size(0), k = probs.size(1);
    const float scale = grad_output.item() / static_cast<float>(n);
    Tensor d = Tensor::empty(probs.shape());
    const float* pp = probs.data();
    float* pd = d.data();
#pragma omp parallel for schedule(static) if (n * k > 65536)
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < k; ++j) pd[i * k + j] = scale * pp[i * k + j];
      pd[i * k + targets[i]] -= scale;
    }
    return {d};
  }
  void release() override {
    probs = Tensor();
    targets = {};
  }
  std::string name() const override { return "CrossEntropyBackward"; }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets) {
  check_logits_targets("cross_entropy", logits, targets);
  const int64_t n = logits.size(0), k = logits.size(1);
  const bool record_graph = needs_grad({&logits});
  Tensor probs = record_graph ? Tensor::empty(logits.shape()) : Tensor();
  float* pp = record_graph ? probs.data() : nullptr;
  const float* pl = logits.data();
  std::vector<double> row_loss(static_cast<size_t>(n));

#pragma omp parallel for schedule(static) if (n * k > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float* row = pl + i * k;
    // Shift by the row max so exp never overflows: log sum exp(x) = m + log sum exp(x - m).
    double m = row[0];
    for (int64_t j = 1; j < k; ++j) m = std::max(m, static_cast<double>(row[j]));
    double s = 0.0;
    for (int64_t j = 0; j < k; ++j) s += std::exp(row[j] - m);
    const double log_sum = m + std::log(s);
    row_loss[i] = log_sum - row[targets[i]];
    if (pp)
      for (int64_t j = 0; j < k; ++j) pp[i * k + j] = static_cast<float>(std::exp(row[j] - log_sum));
  }
  // Summed serially in row order: the loss does not depend on the thread count.
  double total = 0.0;
  for (double v : row_loss) total += v;
  Tensor out = Tensor::full({}, static_cast<float>(total / static_cast<double>(n)));

  if (record_graph) {
    auto node = std::make_shared<CrossEntropyBackward>();
    node->probs = probs;
    node->targets = targets;
    record(out, node, {&logits});
  }
  return out;
}

int64_t count_correct_topk(const Tensor& logits, const std::vector<int64_t>& targets, int k) {
  check_logits_targets("count_correct_topk", logits, targets);
  const int64_t n = logits.size(0), classes = logits.size(1);
  INQ_CHECK(k >= 1 && k <= classes,
            "Given count_correct_topk with logits of shape {}, expected k in [1, {}], but "
            "got {} instead",
            shape_str(logits.shape()), classes, k);
  const float* pl = logits.data();
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = pl + i * classes;
    const int64_t t = targets[i];
    const float v = row[t];
    if (std::isnan(v)) continue;
    // Rank of the target in a stable descending order; a NaN elsewhere sorts first, as in PyTorch.
    int64_t ahead = 0;
    for (int64_t j = 0; j < classes && ahead < k; ++j)
      if (row[j] > v || std::isnan(row[j]) || (row[j] == v && j < t)) ++ahead;
    if (ahead < k) ++correct;
  }
  return correct;
}

}  // namespace inq
