#include "train/distributed.h"

#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <string>

#include "framework/error.h"
#include "inq/inq_sgd.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/trainer.h"

namespace inq {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// DDP's first bucket is 1 MiB and the rest 25 MiB, sized for GPUs; ResNet-20 has 1.1 MB of
// gradients in all, so 256 KiB buckets give backward 4 to 5 chances to start communicating.
constexpr int64_t kBucketBytes = 256 * 1024;

int64_t env_int(const char* name, int64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  INQ_CHECK(*end == '\0', "Given environment variable {}='{}', expected an integer", name, text);
  return value;
}

}  // namespace

// --- GradientReducer ----------------------------------------------------------------------------

GradientReducer::GradientReducer(Communicator& comm, const std::vector<Tensor>& params, int64_t bucket_bytes)
    : comm_(comm) {
  const int64_t cap = std::max<int64_t>(1, bucket_bytes / static_cast<int64_t>(sizeof(float)));
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (buckets_.empty() || static_cast<int64_t>(buckets_.back().buffer.size()) >= cap) buckets_.emplace_back();
    Bucket& b = buckets_.back();
    where_[it->impl()] = {buckets_.size() - 1, b.slots.size()};
    b.slots.push_back(Slot{*it, static_cast<int64_t>(b.buffer.size())});
    b.buffer.resize(b.buffer.size() + static_cast<size_t>(it->numel()));
  }
  for (Bucket& b : buckets_) b.filled.assign(b.slots.size(), 0);
}

void GradientReducer::begin(double weight) {
  weight_ = weight;
  next_launch_ = 0;
  for (Bucket& b : buckets_) {
    b.ready = 0;
    std::fill(b.filled.begin(), b.filled.end(), 0);
    b.pending.reset();
  }
}

// Copies a parameter's gradient into its bucket, scaled by this rank's share: the sum over ranks
// is then the gradient of the mean loss over the global batch. A parameter without a gradient
// (backward did not reach it) contributes zeros.
void GradientReducer::fill(Bucket& bucket, const Slot& slot) {
  float* dst = bucket.buffer.data() + slot.offset;
  const int64_t n = slot.param.numel();
  const Tensor grad = slot.param.grad();
  if (!grad.defined()) {
    std::fill(dst, dst + n, 0.0f);
    return;
  }
  const float* src = grad.data();
  const auto w = static_cast<float>(weight_);
  if (w == 1.0f) {
    std::copy(src, src + n, dst);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i] * w;
  }
}

void GradientReducer::grad_ready(TensorImpl& leaf) {
  const auto it = where_.find(&leaf);
  if (it == where_.end()) return;  // not a parameter of the model
  Bucket& b = buckets_[it->second.first];
  const size_t slot = it->second.second;
  if (b.filled[slot] == 0) {
    b.filled[slot] = 1;
    ++b.ready;
    fill(b, b.slots[slot]);
  }
  launch_ready_buckets();
  // MPI advances non-blocking collectives only inside MPI calls: give the earlier buckets a push.
  for (size_t i = 0; i < next_launch_; ++i)
    if (buckets_[i].pending) buckets_[i].pending->test();
}

// Buckets start in index order on every rank (collectives must be issued in the same order), so
// a bucket that is complete waits for the ones before it.
void GradientReducer::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == static_cast<int64_t>(buckets_[next_launch_].slots.size())) {
    Bucket& b = buckets_[next_launch_];
    b.pending = comm_.start_allreduce_sum(b.buffer.data(), static_cast<int64_t>(b.buffer.size()));
    ++next_launch_;
  }
}

bool GradientReducer::in_flight() const {
  for (const Bucket& b : buckets_)
    if (b.pending) return true;
  return false;
}

void GradientReducer::finish() {
  const auto start = Clock::now();
  for (Bucket& b : buckets_) {
    for (size_t s = 0; s < b.slots.size(); ++s) {
      if (b.filled[s] != 0) continue;
      b.filled[s] = 1;
      ++b.ready;
      fill(b, b.slots[s]);
    }
  }
  launch_ready_buckets();
  for (Bucket& b : buckets_) {
    b.pending->wait();
    b.pending.reset();
    for (const Slot& slot : b.slots) {
      Tensor param = slot.param;
      Tensor grad = param.grad();
      if (!grad.defined()) {
        grad = Tensor::empty(param.shape());
        param.set_grad(grad);
      }
      std::copy(b.buffer.data() + slot.offset, b.buffer.data() + slot.offset + param.numel(), grad.data());
    }
  }
  exposed_seconds_ += seconds_since(start);
}

// --- checksums ------------------------------------------------------------------------------------

uint64_t training_state_checksum(const Trainer& trainer) {
  uint64_t h = fnv1a("inq", 3);
  auto add = [&h](const std::string& name, const Tensor& t) {
    h = fnv1a(name.data(), name.size(), h);
    const std::vector<float> values = t.to_vector();
    h = fnv1a(values.data(), values.size() * sizeof(float), h);
  };
  Trainer& t = const_cast<Trainer&>(trainer);
  for (const NamedTensor& e : t.model().state_dict()) add(e.name, e.tensor);
  // Momentum buffers and INQ masks; the codebooks and partition generator are in the metadata.
  for (const auto& [name, tensor] : t.optimizer().state_tensors()) add(name, tensor);
  if (const auto* inq = dynamic_cast<const InqSgd*>(&t.optimizer())) {
    const std::string meta = inq->inq_metadata();
    h = fnv1a(meta.data(), meta.size(), h);
  }
  return h;
}

// --- DistributedHook ----------------------------------------------------------------------------

DistributedHook::DistributedHook(Communicator& comm, bool sync_bn)
    : comm_(comm), bn_comm_(comm.split_off()), sync_bn_(sync_bn) {
  bn_sync_.comm = bn_comm_.get();
  fail_rank_ = static_cast<int>(env_int("INQ_TEST_FAIL_RANK", -1));
  fail_after_ = env_int("INQ_TEST_FAIL_AFTER_STEPS", -1);
  if (const char* mode = std::getenv("INQ_TEST_FAIL_MODE")) {
    const std::string m = mode;
    INQ_CHECK(m == "throw" || m == "kill" || m == "backward",
              "Given INQ_TEST_FAIL_MODE='{}', expected 'throw', 'kill' or 'backward'", m);
    fail_by_kill_ = m == "kill";
    fail_in_backward_ = m == "backward";
  }
}

// An exception thrown between the start of a bucket's all-reduce and finish() (a failed check in
// backward, say) unwinds through here before apps/main.cpp aborts the job. MPI may still write
// into the bucket buffers until then, so they are left allocated rather than freed under it.
DistributedHook::~DistributedHook() {
  grad_hook_.reset();
  if (reducer_ && reducer_->in_flight()) (void)reducer_.release();
}

void DistributedHook::check_same_state(const Trainer& t, const std::string& when) {
  const std::vector<uint64_t> all = comm_.allgather(training_state_checksum(t));
  std::string differing;
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differing += fmt::format("{}{}", differing.empty() ? "" : ", ", r);
  INQ_CHECK(differing.empty(),
            "Given {} ranks, expected the same model, optimizer and INQ state on every rank {}, but the checksum of "
            "rank(s) {} differs from rank 0's ({:016x}); the ranks must run the same command (same seed, --weights, "
            "--resume and data)",
            comm_.size(), when, differing, all[0]);
}

void DistributedHook::set_batchnorm_sync(Trainer& t, bool on) {
  for (BatchNorm2d* bn : batchnorm_layers(t.model())) bn->set_sync(on ? &bn_sync_ : nullptr);
}

void DistributedHook::on_fit_begin(Trainer& t) {
  // Testing hook: INQ_TEST_PERTURB_RANK=r changes rank r's first weight, as a rank started with a
  // different seed or file would have it, so the check below must stop the job.
  if (env_int("INQ_TEST_PERTURB_RANK", -1) == comm_.rank()) {
    Tensor first = t.model().named_parameters().front().tensor;
    first.data()[0] += 1e-3f;
  }
  check_same_state(t, "at the start (after initialization, --weights or --resume)");
  std::vector<Tensor> params;
  for (const NamedParameter& p : t.model().named_parameters()) params.push_back(p.tensor);
  reducer_ = std::make_unique<GradientReducer>(comm_, params, kBucketBytes);
  if (sync_bn_) set_batchnorm_sync(t, true);
  const InqSgd* inq = dynamic_cast<const InqSgd*>(&t.optimizer());
  inq_steps_checked_ = inq != nullptr ? inq->steps_begun() : 0;
  if (comm_.rank() == 0)
    fmt::print(stderr, "=> data parallel over {} ranks: global batch {} ({} per rank), {} gradient bucket(s), "
               "BatchNorm statistics {}\n", comm_.size(), t.config().data.batch_size,
               t.config().data.batch_size / comm_.size(), reducer_->num_buckets(),
               sync_bn_ ? "synchronized (--sync-bn)" : "per rank");
}

void DistributedHook::before_epoch(Trainer& t) {
  // InqPhases (an earlier hook) may just have partitioned and quantized: the result must agree.
  if (const auto* inq = dynamic_cast<const InqSgd*>(&t.optimizer()); inq != nullptr) {
    if (inq->steps_begun() != inq_steps_checked_) {
      inq_steps_checked_ = inq->steps_begun();
      check_same_state(t, fmt::format("after INQ step {}", inq_steps_checked_));
      if (comm_.rank() == 0)
        fmt::print(stderr, " * ranks agree after INQ step {}: same masks, codebooks and weights (checksum)\n",
                   inq_steps_checked_);
    }
    // After the last epoch INQ re-estimates BatchNorm's statistics: over the global batch, so
    // every rank ends with the statistics one process would have.
    if (t.epoch() >= t.config().run.epochs) {
      bn_sync_.weight = 1.0;
      set_batchnorm_sync(t, true);
    }
  }
}

void DistributedHook::before_forward(Trainer& t, const Batch& batch) {
  step_start_ = Clock::now();
  const double weight = static_cast<double>(batch.labels.size()) / static_cast<double>(batch.global_size);
  bn_sync_.weight = weight;
  reducer_->begin(weight);
  GradientReducer* reducer = reducer_.get();
  // Testing hook, mode "backward": fail inside backward, once a bucket's all-reduce is in flight.
  const bool fail_now =
      fail_in_backward_ && comm_.rank() == fail_rank_ && t.iteration() + 1 == fail_after_;
  grad_hook_.emplace([reducer, fail_now](TensorImpl& leaf) {
    reducer->grad_ready(leaf);
    if (fail_now && reducer->in_flight())
      throw Error("INQ_TEST_FAIL_RANK: failing on purpose inside backward, with a gradient all-reduce in flight");
  });
}

void DistributedHook::after_backward(Trainer& t) {
  grad_hook_.reset();
  reducer_->finish();
}

void DistributedHook::after_step(Trainer& t) {
  step_seconds_ += seconds_since(step_start_);
  ++steps_;
  // The Trainer counts the step after its hooks: this is step iteration() + 1.
  if (comm_.rank() == fail_rank_ && t.iteration() + 1 == fail_after_ && !fail_in_backward_) {
    if (fail_by_kill_) std::raise(SIGKILL);  // a rank that dies without a word (kill -9, the OOM killer)
    throw Error(fmt::format("INQ_TEST_FAIL_RANK: failing on purpose after {} steps", fail_after_));
  }
}

void DistributedHook::before_evaluate(Trainer& t) {
  if (sync_bn_) return;  // the statistics are already those of the global batch on every rank
  for (const NamedTensor& b : t.model().named_buffers()) {
    Tensor buffer = b.tensor;
    comm_.broadcast(buffer.data(), buffer.numel(), 0);
  }
}

void DistributedHook::on_evaluate(Trainer&, EvalResult& r) {
  int64_t counts[3] = {r.count, r.correct1, r.correct5};
  double sums[2] = {r.loss_sum, r.seconds};
  comm_.allreduce_sum(counts, 3);
  comm_.allreduce_sum(sums, 2);
  r.count = counts[0];
  r.correct1 = counts[1];
  r.correct5 = counts[2];
  r.loss_sum = sums[0];
  r.seconds = sums[1] / comm_.size();
  r.recompute_fractions();
}

void DistributedHook::on_epoch_end(Trainer& t, const EvalResult&) {
  check_same_state(t, fmt::format("after epoch {}", t.epoch()));
  if (comm_.rank() == 0 && steps_ > 0)
    fmt::print(stderr, " * communication not hidden by backward: {:.2f} ms per step, {:.1f}% of the step time\n",
               1e3 * reducer_->exposed_seconds() / static_cast<double>(steps_),
               100.0 * reducer_->exposed_seconds() / std::max(step_seconds_, 1e-9));
}

// After the last epoch: INQ (an earlier hook) has re-estimated BatchNorm's statistics, verified
// and written final.safetensors from rank 0; the ranks must still hold the same model. A
// difference here fails the job (non-zero exit) even though rank 0's file is written.
void DistributedHook::on_fit_end(Trainer& t) {
  check_same_state(t, "at the end of the run");
  if (comm_.rank() == 0 && dynamic_cast<const InqSgd*>(&t.optimizer()) != nullptr)
    fmt::print(stderr, " * ranks agree at the end of the run (after the BatchNorm re-estimation): same model (checksum)\n");
}

void DistributedHook::on_checkpoint(const Trainer&, CheckpointContents& contents) const {
  contents.training_state["world_size"] = comm_.size();
}

void DistributedHook::add_results(const Trainer& t, nlohmann::json& results) const {
  results["distributed"] = {
      {"world_size", comm_.size()},
      {"sync_bn", sync_bn_},
      {"gradient_buckets", reducer_ ? reducer_->num_buckets() : 0},
      {"steps_timed", steps_},
      {"exposed_communication_seconds", reducer_ ? reducer_->exposed_seconds() : 0.0},
      {"step_seconds", step_seconds_}};
}

}  // namespace inq
