#pragma once
// Data-parallel training over the ranks of a Communicator (docs/DISTRIBUTED.md), with the
// semantics of PyTorch's DistributedDataParallel, as a TrainerHook:
//   - every rank builds the same model from the same seed: on_fit_begin compares a checksum of the
//     model, optimizer and INQ state across ranks and stops naming the ranks that differ;
//   - the Trainer shards the data (rank r takes positions r, r + N, ... of each global batch, and a
//     contiguous N-th of the test set) and reduces the counts of every evaluation (on_evaluate);
//   - gradients are summed in buckets by non-blocking all-reduces started from inside backward, as
//     each bucket's last gradient is ready (GradientReducer), and waited for in after_backward, so
//     the optimizer step is the same on every rank;
//   - BatchNorm keeps per-rank batch statistics, or (sync_bn) all-reduces them (BatchNormSync);
//     the running statistics of rank 0 are broadcast before every evaluation (as DDP's
//     broadcast_buffers does before every forward; running statistics never feed a training
//     forward, so the two give the same values), and INQ's final re-estimation always uses the
//     statistics of the global batch;
//   - after every INQ step and at every epoch's end the checksum is compared again;
//   - only rank 0 writes the run folder and prints progress (writes_run_folder).
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "framework/autograd.h"
#include "framework/communicator.h"
#include "layers/batchnorm.h"
#include "train/trainer_hooks.h"

namespace inq {

// Sums the gradients of a backward pass over every rank, DDP's way: parameters are grouped into
// buckets of about bucket_bytes in reverse registration order (roughly the order backward
// finishes them); when the last gradient of a bucket is ready it is copied in (scaled by this
// rank's share of the global batch) and the bucket's all-reduce starts, in bucket order on every
// rank, while backward goes on. finish() starts what never became ready (a parameter backward did
// not reach counts as a zero gradient), waits, and writes the sums back into the gradients.
class GradientReducer {
 public:
  GradientReducer(Communicator& comm, const std::vector<Tensor>& params, int64_t bucket_bytes);
  // A backward pass begins; this rank's loss is the mean over `weight` = n_r / n of the global batch.
  void begin(double weight);
  // AccumulateGrad finished `leaf` (framework/autograd.h GradReadyHook).
  void grad_ready(TensorImpl& leaf);
  void finish();
  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Whether an all-reduce was started and not yet waited for (backward was interrupted).
  bool in_flight() const;
  // Seconds spent in finish() waiting for all-reduces that backward did not hide, since construction.
  double exposed_seconds() const { return exposed_seconds_; }

 private:
  struct Slot {
    Tensor param;
    int64_t offset = 0;  // in the bucket's buffer
  };
  struct Bucket {
    std::vector<Slot> slots;
    std::vector<char> filled;  // per slot: gradient copied in this pass
    std::vector<float> buffer;
    int64_t ready = 0;
    std::unique_ptr<PendingReduce> pending;
  };
  void fill(Bucket& bucket, const Slot& slot);
  void launch_ready_buckets();

  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const TensorImpl*, std::pair<size_t, size_t>> where_;  // leaf -> (bucket, slot)
  size_t next_launch_ = 0;
  double weight_ = 1.0;
  double exposed_seconds_ = 0.0;
};

// The model, optimizer and INQ state as one FNV-1a hash: what must be identical on every rank.
uint64_t training_state_checksum(const Trainer& trainer);

class DistributedHook : public TrainerHook {
 public:
  DistributedHook(Communicator& comm, bool sync_bn);
  ~DistributedHook() override;

  Communicator* communicator() const override { return &comm_; }
  void on_fit_begin(Trainer&) override;
  void before_epoch(Trainer&) override;
  void before_forward(Trainer&, const Batch& batch) override;
  void after_backward(Trainer&) override;
  void after_step(Trainer&) override;
  void before_evaluate(Trainer&) override;
  void on_evaluate(Trainer&, EvalResult& result) override;
  void on_epoch_end(Trainer&, const EvalResult& test) override;
  void on_checkpoint(const Trainer&, CheckpointContents& contents) const override;
  void on_fit_end(Trainer&) override;
  void add_results(const Trainer&, nlohmann::json& results) const override;
  bool writes_run_folder() const override { return comm_.rank() == 0; }

 private:
  // Throws naming the ranks whose checksum differs from rank 0's, and `when`.
  void check_same_state(const Trainer& t, const std::string& when);
  void set_batchnorm_sync(Trainer& t, bool on);

  Communicator& comm_;
  std::unique_ptr<Communicator> bn_comm_;  // SyncBatchNorm's collectives run inside backward
  bool sync_bn_;
  BatchNormSync bn_sync_;
  std::unique_ptr<GradientReducer> reducer_;
  std::optional<GradReadyHookGuard> grad_hook_;
  int inq_steps_checked_ = -1;
  // The testing hook of docs/DISTRIBUTED.md: INQ_TEST_FAIL_RANK / _AFTER_STEPS / _MODE.
  int fail_rank_ = -1;
  int64_t fail_after_ = -1;
  bool fail_by_kill_ = false;
  bool fail_in_backward_ = false;
  // Timing of training steps, for the share of step time communication did not hide.
  std::chrono::steady_clock::time_point step_start_;
  double step_seconds_ = 0.0;
  int64_t steps_ = 0;
};

}  // namespace inq
