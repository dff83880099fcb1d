#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "data/datasets.h"
#include "framework/error.h"
#include "framework/error_context.h"
#include "framework/file_lock.h"
#include "framework/fileio.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "inq/inq_sgd.h"
#include "inq/prune.h"
#include "layers/loss.h"
#include "models/registry.h"
#include "models/training_loss.h"
#include "train/inq_phases.h"
#include "train/prune_phases.h"
#include "train/run_setup.h"

namespace inq {

namespace {

using Clock = std::chrono::steady_clock;

// Whether this process writes the run folder: only if every hook agrees (rank-0-only writing).
bool every_hook_writes(const std::vector<std::unique_ptr<TrainerHook>>& hooks) {
  for (const auto& hook : hooks)
    if (!hook->writes_run_folder()) return false;
  return true;
}
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A contiguous part [begin, end) of a dataset: a data-parallel rank's share of the test set.
class DatasetShard final : public Dataset {
 public:
  DatasetShard(const Dataset& base, int64_t begin, int64_t end) : base_(base), begin_(begin), end_(end) {}
  int64_t size() const override { return end_ - begin_; }
  Shape image_shape() const override { return base_.image_shape(); }
  int64_t num_classes() const override { return base_.num_classes(); }
  void get(int64_t index, float* image_out, int64_t* label_out) const override {
    check_dataset_index(index, size(), "test shard");
    base_.get(begin_ + index, image_out, label_out);
  }
  void get_with_generator(int64_t index, Generator& gen, float* image_out, int64_t* label_out) const override {
    check_dataset_index(index, size(), "test shard");
    base_.get_with_generator(begin_ + index, gen, image_out, label_out);
  }

 private:
  const Dataset& base_;
  int64_t begin_, end_;
};

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

}  // namespace

Trainer::Trainer(TrainConfig config, std::vector<std::unique_ptr<TrainerHook>> hooks) : config_(std::move(config)) {
  INQ_CHECK(!config_.run.out.empty(), "Given no run folder, expected --out");
  validate_train_config(config_);
  for (const auto& hook : hooks)
    if (Communicator* comm = hook->communicator()) {
      comm_ = comm;
      break;
    }
  const int64_t ranks = comm_->size(), rank = comm_->rank();
  // The run folder is claimed first, before any data is read: a second run on it stops at once.
  if (every_hook_writes(hooks)) claim_run_folder();
  seed_all(config_.run.seed);
  // The data comes first: it decides the model's input channels and classes. Loading it draws
  // nothing from the default generator, so initialization is the same as if the model came first.
  ChannelStats stats;
  train_set_ = load_dataset(config_.data, /*train=*/true, &stats);
  test_set_ = load_dataset(config_.data, /*train=*/false);
  check_same_classes(*train_set_, *test_set_);
  model_ = create_model(config_.run.arch, model_options_for(config_.data, *train_set_));
  for (const Dataset* set : {train_set_.get(), test_set_.get()})
    check_dataset_input_size(config_.run.arch, config_.data, *set);
  // Pruning masks of the initial weights, when they are a pruning run's checkpoint: INQ starts
  // from them (pruned weights frozen at 0, portions of the survivors).
  std::map<std::string, Tensor> pruned_masks;
  // A resumed run takes its weights from the checkpoint (loaded below), not from --weights.
  if (!config_.run.weights.empty() && config_.run.resume.empty()) {
    try {
      const SafetensorsFile initial = read_safetensors(config_.run.weights);
      load_model_weights(initial, *model_, optional_weight_names(*model_));
      if (config_.inq.enabled()) pruned_masks = prune_masks_from(optimizer_state_tensors(initial), config_.run.weights);
    } catch (const Error& e) {
      throw with_file_context(e, "--weights", config_.run.weights);
    }
  }
  // Data parallel: each rank takes its positions of every global batch, and a contiguous N-th of
  // the test set (the evaluation counts are summed by the hook). A rank left with no example of
  // the last training batch would have nothing to compute a loss on: refused.
  const Dataset* test_data = test_set_.get();
  if (ranks > 1) {
    const int64_t batch = config_.data.batch_size, last = train_set_->size() % batch;
    INQ_CHECK(batch % ranks == 0,
              "Given --batch-size {} over {} ranks, expected a multiple of the number of ranks (--batch-size is the "
              "global batch, split evenly over the ranks)", batch, ranks);
    INQ_CHECK(last == 0 || last >= ranks,
              "Given {} training images, --batch-size {} and {} ranks, expected the last batch ({} images) to give "
              "every rank at least one; choose another --batch-size",
              train_set_->size(), batch, ranks, last);
    INQ_CHECK(test_set_->size() >= ranks, "Given {} test images over {} ranks, expected at least one per rank",
              test_set_->size(), ranks);
    const int64_t n = test_set_->size();
    test_shard_ = std::make_unique<DatasetShard>(*test_set_, n * rank / ranks, n * (rank + 1) / ranks);
    test_data = test_shard_.get();
  }
  train_loader_ = make_loader(*train_set_, config_, /*train=*/true, dataset_transforms(config_.data, true, stats),
                              rank, ranks);
  test_loader_ = make_loader(*test_data, config_, /*train=*/false, dataset_transforms(config_.data, false, stats));

  auto groups = make_param_groups(model_->named_parameters(), config_.optim.weight_decay,
                                  DecayGroupOptions{.decay_bias = config_.optim.decay_norm_and_bias,
                                                    .decay_norm = config_.optim.decay_norm_and_bias});
  const SgdOptions sgd{.lr = config_.optim.lr, .momentum = config_.optim.momentum, .dampening = 0,
                       .nesterov = config_.optim.nesterov};
  if (config_.inq.enabled()) {
    INQ_CHECK(!config_.run.weights.empty() || !config_.run.resume.empty(),
              "Given an INQ run, expected pre-trained --weights to quantize");
    auto optimizer = std::make_unique<InqSgd>(std::move(groups), sgd, config_.inq.options(config_.run.seed));
    InqSgd& inq = *optimizer;
    if (!pruned_masks.empty()) inq.set_pruned(std::move(pruned_masks));
    optimizer_ = std::move(optimizer);
    add_hook(std::make_unique<InqPhases>(*this, inq));
  } else if (config_.prune.enabled()) {
    INQ_CHECK(!config_.run.weights.empty() || !config_.run.resume.empty(),
              "Given a pruning run, expected pre-trained --weights to prune");
    auto optimizer = std::make_unique<PruneSgd>(std::move(groups), sgd, config_.prune.options(config_.run.seed));
    PruneSgd& prune = *optimizer;
    optimizer_ = std::move(optimizer);
    add_hook(std::make_unique<PrunePhases>(*this, prune));
  } else {
    optimizer_ = std::make_unique<Sgd>(std::move(groups), sgd);
  }
  for (auto& hook : hooks) add_hook(std::move(hook));
  if (lr_schedule_ == nullptr) {  // no hook runs phases of its own: one schedule over the whole run
    default_schedule_ = std::make_unique<LrSchedule>(
        config_.schedule.build(config_.optim.lr, config_.run.epochs, train_loader_->batches_per_epoch()));
    lr_schedule_ = default_schedule_.get();
  }

  if (!config_.run.resume.empty()) {
    try {
      resume_from(config_.run.resume);
    } catch (const Error& e) {
      throw with_file_context(e, "--resume", config_.run.resume);
    }
  }
  if (writes_run_folder()) {
    std::filesystem::create_directories(config_.run.out);
    write_file_atomic(run_file("config.json"), to_json(config_).dump(2) + "\n");
  }
}

// The files a run writes into its folder; "<name>.tmp.<pid>.<n>" are their temporary files
// (framework/atomic_file.h).
static const char* const kRunFiles[] = {"config.json",      "summary.csv",      "results.json",  "last.safetensors",
                                        "best.safetensors", "final.safetensors", "inq_report.txt",
                                        "prune_report.txt"};

void Trainer::claim_run_folder() {
  const std::string& out = config_.run.out;
  std::filesystem::create_directories(out);
  run_lock_ = std::make_unique<RunFolderLock>(out);
  // Temporary files of a writer that died (kill -9, power loss) are never renamed: remove them.
  // Those of a live process (an evaluation writing here, say) are left alone.
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    for (const char* file : kRunFiles) {
      const std::string prefix = std::string(file) + ".tmp.";
      if (name.rfind(prefix, 0) != 0) continue;
      const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid == static_cast<long>(::getpid()) || process_alive(pid)) continue;
      if (std::filesystem::remove(entry.path(), ec)) ++removed;
    }
  }
  if (removed > 0)
    fmt::print(stderr, "inq: note: run folder '{}': removed {} temporary file(s) left by a writer that died\n", out,
               removed);
  if (!config_.run.resume.empty()) return;
  // The checkpoint is the commit point: a folder without one holds nothing to resume.
  const bool has_checkpoint = file_exists(run_file("last.safetensors"));
  INQ_CHECK(config_.run.force || !has_checkpoint,
            "Given run folder '{}', expected a new folder, but it already holds a run ({}; use --resume or --force)",
            out, run_file("last.safetensors"));
  if (!has_checkpoint && file_exists(run_file("config.json")))
    fmt::print(stderr, "inq: note: run folder '{}' holds no checkpoint (its run stopped before the first one): "
               "starting it anew\n", out);
  // A new run's summary starts empty: rows of the run it replaces (stopped early, or --force) go.
  std::filesystem::remove(run_file("summary.csv"), ec);
}

Trainer::~Trainer() = default;

bool Trainer::writes_run_folder() const { return every_hook_writes(hooks_); }

void Trainer::set_lr_schedule(const LrSchedule* schedule, bool restart) {
  lr_schedule_ = schedule;
  if (restart) progress_.phase_start_iteration = progress_.iteration;
}

void Trainer::set_summary_labels(std::string train_phase, std::string step) {
  train_phase_ = std::move(train_phase);
  summary_step_ = std::move(step);
}

void Trainer::save_checkpoint(const std::string& path) const {
  if (!writes_run_folder()) return;
  CheckpointContents c;
  c.arch = config_.run.arch;
  c.config = config_;
  TrainingProgress p = progress_;
  p.generator = default_generator().state();
  c.training_state = to_json(p);
  for (const auto& hook : hooks_) hook->on_checkpoint(*this, c);
  inq::save_checkpoint(path, *model_, optimizer_.get(), c);
}

void Trainer::resume_from(const std::string& path) {
  const SafetensorsFile file = read_safetensors(path);
  const CheckpointContents c = read_checkpoint_info(file);
  INQ_CHECK(c.arch == config_.run.arch, "Given --resume '{}' (arch {}), expected a checkpoint of --arch {}", path,
            c.arch, config_.run.arch);
  load_model_weights(file, *model_);
  const bool inq_run = config_.inq.enabled();
  INQ_CHECK(c.inq_state.empty() != inq_run,
            "Given --resume '{}', expected a checkpoint of the same kind of run, but it is {} and this run is {}",
            path, c.inq_state.empty() ? "plain training" : "INQ", inq_run ? "INQ" : "plain training");
  const bool prune_run = config_.prune.enabled();
  INQ_CHECK(c.prune_state.empty() != prune_run,
            "Given --resume '{}', expected a checkpoint of the same kind of run, but it {} and this run {}", path,
            c.prune_state.empty() ? "does not prune" : "prunes", prune_run ? "prunes" : "does not");
  // INQ's and pruning's optimizer state travel with their masks and metadata: their hooks restore it.
  if (!inq_run && !prune_run) load_optimizer_state(file, *optimizer_);
  for (auto& hook : hooks_) hook->on_resume(*this, file, c);
  // The progress record holds one INQ row per step begun (checked against the restored state).
  const auto* inq = dynamic_cast<const InqSgd*>(optimizer_.get());
  progress_ = read_training_progress(c, path, inq != nullptr ? inq->steps_begun() : 0);
  check_resumed_position(c, file, path);
  default_generator().set_state(progress_.generator);
  // Data-parallel runs record their number of ranks (train/distributed.h); one process none.
  const int64_t ranks_before = c.training_state.value("world_size", int64_t{1});
  if (ranks_before != comm_->size() && reports())
    fmt::print(stderr,
               "inq: note: '{}' was written by a run over {} process(es) and resumes over {}: the global batch, data "
               "order and schedule are the same, so the run continues, but not bit for bit (the gradient sums and, "
               "without --sync-bn, the BatchNorm batch statistics are split differently)\n",
               path, ranks_before, comm_->size());
  if (writes_run_folder()) truncate_summary_to_checkpoint(inq != nullptr ? inq->steps_begun() : 0);
  if (reports()) fmt::print(stderr, "=> resumed '{}' at epoch {} (iteration {})\n", path, progress_.epoch, progress_.iteration);
}

// A checkpoint whose counters disagree with each other or with its tensors would not continue the
// run it claims to continue: refused, naming what disagrees.
void Trainer::check_resumed_position(const CheckpointContents& c, const SafetensorsFile& file,
                                     const std::string& path) const {
  const TrainingProgress& p = progress_;
  INQ_CHECK(p.epoch <= c.config.run.epochs,
            "Given checkpoint '{}', expected its epoch to be at most the {} epoch(s) of its configuration, but it "
            "claims epoch {}",
            path, c.config.run.epochs, p.epoch);
  // Every epoch is one pass over the training loader (INQ's quantizations and BatchNorm
  // re-estimation take no optimizer step).
  const int64_t per_epoch = train_loader_->batches_per_epoch();
  int64_t expected = 0;
  const bool fits = !__builtin_mul_overflow(p.epoch, per_epoch, &expected);
  INQ_CHECK(fits && p.iteration == expected,
            "Given checkpoint '{}', expected iteration = epoch x batches per epoch = {} x {} = {}, but it says "
            "iteration {}",
            path, p.epoch, per_epoch, fits ? fmt::format("{}", expected) : std::string("(overflow)"), p.iteration);
  // Momentum buffers exist for every parameter once a step was taken since they were last reset
  // (the start of the run, or of an INQ step): without them the run is no longer bit for bit.
  if (config_.optim.momentum > 0.0 && p.iteration > p.phase_start_iteration) {
    std::vector<std::string> missing;
    const auto params = model_->named_parameters();
    for (const auto& param : params)
      if (file.find("optimizer." + param.name + ".momentum_buffer") == nullptr) missing.push_back(param.name);
    INQ_CHECK(missing.empty(),
              "Given checkpoint '{}', expected a momentum buffer for each of the {} parameters ({} step(s) were taken "
              "with momentum {} since they started), but {} are missing (first: 'optimizer.{}.momentum_buffer'); "
              "resumed without them the run would not continue as it was",
              path, params.size(), p.iteration - p.phase_start_iteration, config_.optim.momentum, missing.size(),
              missing.empty() ? "" : missing.front());
  }
}

// summary.csv gets an epoch's row before the epoch's checkpoint, so a run that stops in between
// (a failed write, kill -9) leaves rows the checkpoint does not cover; the resumed run writes them
// again. Kept: rows of earlier epochs; at the checkpoint's epoch, its training row, the rows of INQ
// steps it has begun ("quantized") and, once the checkpoint records it, the BatchNorm re-estimation.
void Trainer::truncate_summary_to_checkpoint(int inq_steps_begun) {
  const std::string summary = run_file("summary.csv");
  if (!file_exists(summary)) return;
  const std::string text = read_file(summary);
  const bool bn_done = !progress_.inq_steps.empty() && progress_.inq_steps.back().contains("bn_batches");
  std::string kept;
  int64_t dropped = 0;
  size_t start = 0;
  for (int64_t line = 0; start < text.size(); ++line) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string row = text.substr(start, end - start);
    start = end + 1;
    bool keep = true;
    if (line > 0 && !row.empty()) {  // line 0 is the header
      std::vector<std::string> f;
      for (size_t a = 0, b; f.size() < 3; a = b + 1) {
        b = row.find(',', a);
        f.push_back(row.substr(a, b == std::string::npos ? std::string::npos : b - a));
        if (b == std::string::npos) break;
      }
      INQ_CHECK(f.size() == 3, "Given '{}' line {}, expected a summary row 'epoch,inq_step,phase,...', but got '{}'",
                summary, line + 1, row);
      char* rest = nullptr;
      const long long epoch = std::strtoll(f[0].c_str(), &rest, 10);
      INQ_CHECK(!f[0].empty() && *rest == '\0', "Given '{}' line {}, expected an epoch number first, but got '{}'",
                summary, line + 1, row);
      if (epoch != progress_.epoch) {
        keep = epoch < progress_.epoch;
      } else if (f[2] == "quantized") {
        keep = std::strtoll(f[1].c_str(), nullptr, 10) <= inq_steps_begun;
      } else if (f[2] == "bn_reestimated") {
        keep = bn_done;
      }
    }
    if (keep) {
      kept += row;
      kept += '\n';
    } else {
      ++dropped;
    }
  }
  if (dropped == 0) return;
  write_file_atomic(summary, kept);
  fmt::print(stderr, "inq: note: '{}': dropped {} row(s) written after the checkpoint it resumes from (epoch {}); "
             "they are redone\n", summary, dropped, progress_.epoch);
}

EvalResult Trainer::evaluate_test() {
  for (auto& hook : hooks_) hook->before_evaluate(*this);
  EvalResult r = evaluate(*model_, *test_loader_);
  for (auto& hook : hooks_) hook->on_evaluate(*this, r);
  last_test_ = r;
  return r;
}

void Trainer::train_one_epoch() {
  model_->train();
  const int64_t per_epoch = train_loader_->batches_per_epoch();
  const int64_t total_iterations = config_.run.epochs * per_epoch;
  train_loader_->start_epoch(progress_.epoch);
  double loss_sum = 0.0, data_seconds = 0.0, compute_seconds = 0.0;
  int64_t correct = 0, seen = 0;
  // The same over every rank, as of the last progress line (which is always the epoch's last batch).
  double global_loss_sum = 0.0;
  int64_t global_correct = 0, global_seen = 0;
  const bool stderr_is_terminal = ::isatty(STDERR_FILENO) != 0;
  const auto epoch_start = Clock::now();
  auto wait_start = Clock::now();
  Batch batch;
  while (train_loader_->next(batch)) {
    const auto compute_start = Clock::now();
    data_seconds += std::chrono::duration<double>(compute_start - wait_start).count();
    const double lr = lr_schedule_->lr_at(progress_.iteration - progress_.phase_start_iteration);
    optimizer_->set_lr(lr);
    for (auto& hook : hooks_) hook->before_forward(*this, batch);
    // The model's training loss: cross entropy, plus GoogLeNet's weighted auxiliary losses.
    auto [logits, loss] = training_forward(*model_, batch.images, batch.labels);
    const float loss_value = loss.item();
    INQ_CHECK(std::isfinite(loss_value),
              "Given epoch {}, iteration {}, batch {}, expected a finite loss, but got {} (try a lower --lr)",
              progress_.epoch + 1, progress_.iteration, batch.index, loss_value);
    model_->zero_grad();
    loss.backward();
    for (auto& hook : hooks_) hook->after_backward(*this);
    optimizer_->step();
    for (auto& hook : hooks_) hook->after_step(*this);
    ++progress_.iteration;
    const int64_t n = static_cast<int64_t>(batch.labels.size());
    loss_sum += static_cast<double>(loss_value) * n;
    correct += count_correct_topk(logits, batch.labels, 1);
    seen += n;
    const auto now = Clock::now();
    compute_seconds += std::chrono::duration<double>(now - compute_start).count();
    wait_start = now;
    if ((batch.index + 1) % config_.run.print_freq == 0 || batch.index + 1 == per_epoch) {
      // Every rank reaches this line at the same batch: the figures are the whole batch's.
      double sums[2] = {loss_sum, static_cast<double>(correct)};
      int64_t images = seen;
      comm_->allreduce_sum(sums, 2);
      comm_->allreduce_sum(&images, 1);
      global_loss_sum = sums[0];
      global_correct = static_cast<int64_t>(sums[1]);
      global_seen = images;
      if (!reports()) continue;
      const double elapsed = seconds_since(epoch_start);
      const double images_per_s = static_cast<double>(global_seen) / std::max(elapsed, 1e-9);
      const double seconds_per_iter = elapsed / static_cast<double>(batch.index + 1);
      const double eta = seconds_per_iter * static_cast<double>(total_iterations - progress_.iteration);
      // On a terminal the line is redrawn in place; in a log every progress line is kept.
      const bool last_batch = batch.index + 1 == per_epoch;
      fmt::print(stderr,
                 "{}Epoch: [{}/{}][{:>4}/{}]  loss {:.4f}  acc {:6.2f}%  {:6.0f} img/s  data {:.3f}s compute {:.3f}s  "
                 "lr {:.5f}  eta {}{}",
                 stderr_is_terminal ? "\r" : "", progress_.epoch + 1, config_.run.epochs, batch.index + 1, per_epoch,
                 global_loss_sum / static_cast<double>(global_seen),
                 100.0 * static_cast<double>(global_correct) / static_cast<double>(global_seen),
                 images_per_s, data_seconds, compute_seconds, lr, format_duration(eta),
                 stderr_is_terminal && !last_batch ? "" : "\n");
    }
  }
  const double epoch_seconds = seconds_since(epoch_start);
  progress_.train_seconds += epoch_seconds;
  progress_.train_images += global_seen;
  ++progress_.epoch;

  const EvalResult test = evaluate_test();
  if (reports())
    fmt::print(stderr, " * Epoch {} Acc@1 {:.3f} Acc@5 {:.3f}  test loss {:.4f}  ({:.1f}s train, {:.0f} img/s)\n",
             progress_.epoch, 100.0 * test.acc1, 100.0 * test.acc5, test.loss, epoch_seconds,
             static_cast<double>(global_seen) / epoch_seconds);

  append_summary_row(train_phase_,
                     fmt::format("{:.6g},{:.6f},{:.6f},{:.2f},{:.1f}", optimizer_->lr(),
                                 global_loss_sum / static_cast<double>(global_seen),
                                 static_cast<double>(global_correct) / static_cast<double>(global_seen), epoch_seconds,
                                 static_cast<double>(global_seen) / epoch_seconds),
                     test);
  const bool is_best = test.acc1 > progress_.best_acc1;
  if (is_best) progress_.best_acc1 = test.acc1;
  for (auto& hook : hooks_) hook->on_epoch_end(*this, test);
  save_checkpoint(run_file("last.safetensors"));
  if (is_best && keep_best_) save_checkpoint(run_file("best.safetensors"));
  write_results();
}

void Trainer::append_summary_row(const std::string& phase, const std::string& train_fields, const EvalResult& test) {
  if (!writes_run_folder()) return;
  const std::string summary = run_file("summary.csv");
  if (!file_exists(summary))
    write_file_atomic(summary,
                      "epoch,inq_step,phase,lr,train_loss,train_acc1,epoch_seconds,images_per_s,test_loss,test_acc1,"
                      "test_acc5\n");
  append_line_atomic(summary, fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f}", progress_.epoch, summary_step_, phase,
                                          train_fields, test.loss, test.acc1, test.acc5));
}

void Trainer::write_results() const {
  if (!writes_run_folder()) return;
  const EvalResult& test = last_test_;
  nlohmann::json results = {
      {"arch", config_.run.arch},
      {"dataset", config_.data.dataset},
      {"seed", config_.run.seed},
      {"epochs_done", progress_.epoch},
      {"epochs", config_.run.epochs},
      {"acc1", test.acc1},
      {"acc5", test.acc5},
      {"test_loss", test.loss},
      {"best_acc1", progress_.best_acc1},
      {"train_seconds", progress_.train_seconds},
      {"train_images_per_s",
       static_cast<double>(progress_.train_images) / std::max(progress_.train_seconds, 1e-9)},
      {"threads", get_num_threads()},
      {"blas", blas_config()},
      {"blas_kernels", blas_core()}};
  for (const auto& hook : hooks_) hook->add_results(*this, results);
  write_file_atomic(run_file("results.json"), results.dump(2) + "\n");
}

EvalResult Trainer::fit(int64_t stop_after_epoch) {
  if (reports())
    fmt::print(stderr, "=> {} on {}: {} train / {} test images, {} epochs, batch {}, lr {} ({}), {} threads, run folder {}\n",
             config_.run.arch, config_.data.dataset, train_set_->size(), test_set_->size(), config_.run.epochs,
             config_.data.batch_size, config_.optim.lr, config_.schedule.kind, get_num_threads(), config_.run.out);
  for (auto& hook : hooks_) hook->on_fit_begin(*this);
  INQ_CHECK(progress_.epoch <= config_.run.epochs, "Given a checkpoint at epoch {}, expected --epochs >= {}",
            progress_.epoch, progress_.epoch);
  while (true) {
    if (stop_after_epoch >= 0 && progress_.epoch >= stop_after_epoch) return evaluate_test();
    for (auto& hook : hooks_) hook->before_epoch(*this);
    if (progress_.epoch >= config_.run.epochs) break;
    train_one_epoch();
  }
  for (auto& hook : hooks_) hook->on_fit_end(*this);
  return evaluate_test();
}

}  // namespace inq
