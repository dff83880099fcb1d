#pragma once
// Classification loss and accuracy.
//   logits    (N, K)   unnormalized class scores
//   targets   N        class indices in [0, K)
#include <cstdint>
#include <vector>

#include "framework/tensor.h"

namespace inq {

// Mean over the batch of -log softmax(logits)[n, targets[n]], computed with a max-shifted
// log-sum-exp in double so large logits stay finite. Output shape [] (a scalar).
// Backward: (softmax - onehot) / N, scaled by the incoming gradient.
// Throws inq::Error for a rank other than 2, N == 0, K == 0, a target count != N or a target outside [0, K).
Tensor cross_entropy(const Tensor& logits, const std::vector<int64_t>& targets);

// Number of rows whose target is among the k largest logits (no autograd). Ties are broken as a
// stable descending sort would: a logit equal to the target's counts ahead of it only when its class
// index is smaller. A NaN target logit is never correct. k in [1, K].
int64_t count_correct_topk(const Tensor& logits, const std::vector<int64_t>& targets, int k);

}  // namespace inq
