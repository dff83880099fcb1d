#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "data/datasets.h"
#include "framework/error.h"
#include "framework/error_context.h"
#include "framework/fileio.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "inq/inq_sgd.h"
#include "layers/loss.h"
#include "models/registry.h"
#include "models/training_loss.h"
#include "train/inq_phases.h"
#include "train/run_setup.h"

namespace inq {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

}  // namespace

Trainer::Trainer(TrainConfig config, std::vector<std::unique_ptr<TrainerHook>> hooks) : config_(std::move(config)) {
  INQ_CHECK(!config_.run.out.empty(), "Given no run folder, expected --out");
  validate_train_config(config_);
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
  // A resumed run takes its weights from the checkpoint (loaded below), not from --weights.
  if (!config_.run.weights.empty() && config_.run.resume.empty()) {
    try {
      load_model_weights(read_safetensors(config_.run.weights), *model_, optional_weight_names(*model_));
    } catch (const Error& e) {
      throw with_file_context(e, "--weights", config_.run.weights);
    }
  }
  train_loader_ = make_loader(*train_set_, config_, /*train=*/true, dataset_transforms(config_.data, true, stats));
  test_loader_ = make_loader(*test_set_, config_, /*train=*/false, dataset_transforms(config_.data, false, stats));

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
    optimizer_ = std::move(optimizer);
    add_hook(std::make_unique<InqPhases>(*this, inq));
  } else {
    optimizer_ = std::make_unique<Sgd>(std::move(groups), sgd);
  }
  for (auto& hook : hooks) add_hook(std::move(hook));
  if (lr_schedule_ == nullptr) {  // no hook runs phases of its own: one schedule over the whole run
    default_schedule_ = std::make_unique<LrSchedule>(
        config_.schedule.build(config_.optim.lr, config_.run.epochs, train_loader_->batches_per_epoch()));
    lr_schedule_ = default_schedule_.get();
  }

  const std::string config_path = run_file("config.json");
  INQ_CHECK(config_.run.force || !config_.run.resume.empty() || !file_exists(config_path),
            "Given run folder '{}', expected a new folder, but it already holds a run (use --resume or --force)",
            config_.run.out);
  if (!config_.run.resume.empty()) {
    try {
      resume_from(config_.run.resume);
    } catch (const Error& e) {
      throw with_file_context(e, "--resume", config_.run.resume);
    }
  }
  if (writes_run_folder()) {
    std::filesystem::create_directories(config_.run.out);
    write_file_atomic(config_path, to_json(config_).dump(2) + "\n");
  }
}

Trainer::~Trainer() = default;

bool Trainer::writes_run_folder() const {
  for (const auto& hook : hooks_)
    if (!hook->writes_run_folder()) return false;
  return true;
}

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
  // INQ's optimizer state travels with its masks and codebooks: InqPhases restores it.
  if (!inq_run) load_optimizer_state(file, *optimizer_);
  for (auto& hook : hooks_) hook->on_resume(*this, file, c);
  // The progress record holds one INQ row per step begun (checked against the restored state).
  const auto* inq = dynamic_cast<const InqSgd*>(optimizer_.get());
  progress_ = read_training_progress(c, path, inq != nullptr ? inq->steps_begun() : 0);
  default_generator().set_state(progress_.generator);
  fmt::print(stderr, "=> resumed '{}' at epoch {} (iteration {})\n", path, progress_.epoch, progress_.iteration);
}

EvalResult Trainer::evaluate_test() {
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
  const bool stderr_is_terminal = ::isatty(STDERR_FILENO) != 0;
  const auto epoch_start = Clock::now();
  auto wait_start = Clock::now();
  Batch batch;
  while (train_loader_->next(batch)) {
    const auto compute_start = Clock::now();
    data_seconds += std::chrono::duration<double>(compute_start - wait_start).count();
    const double lr = lr_schedule_->lr_at(progress_.iteration - progress_.phase_start_iteration);
    optimizer_->set_lr(lr);
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
      const double elapsed = seconds_since(epoch_start);
      const double images_per_s = static_cast<double>(seen) / std::max(elapsed, 1e-9);
      const double seconds_per_iter = elapsed / static_cast<double>(batch.index + 1);
      const double eta = seconds_per_iter * static_cast<double>(total_iterations - progress_.iteration);
      // On a terminal the line is redrawn in place; in a log every progress line is kept.
      const bool last_batch = batch.index + 1 == per_epoch;
      fmt::print(stderr,
                 "{}Epoch: [{}/{}][{:>4}/{}]  loss {:.4f}  acc {:6.2f}%  {:6.0f} img/s  data {:.3f}s compute {:.3f}s  "
                 "lr {:.5f}  eta {}{}",
                 stderr_is_terminal ? "\r" : "", progress_.epoch + 1, config_.run.epochs, batch.index + 1, per_epoch,
                 loss_sum / static_cast<double>(seen), 100.0 * static_cast<double>(correct) / static_cast<double>(seen),
                 images_per_s, data_seconds, compute_seconds, lr, format_duration(eta),
                 stderr_is_terminal && !last_batch ? "" : "\n");
    }
  }
  const double epoch_seconds = seconds_since(epoch_start);
  progress_.train_seconds += epoch_seconds;
  progress_.train_images += seen;
  ++progress_.epoch;

  const EvalResult test = evaluate_test();
  fmt::print(stderr, " * Epoch {} Acc@1 {:.3f} Acc@5 {:.3f}  test loss {:.4f}  ({:.1f}s train, {:.0f} img/s)\n",
             progress_.epoch, 100.0 * test.acc1, 100.0 * test.acc5, test.loss, epoch_seconds,
             static_cast<double>(seen) / epoch_seconds);

  append_summary_row(train_phase_,
                     fmt::format("{:.6g},{:.6f},{:.6f},{:.2f},{:.1f}", optimizer_->lr(),
                                 loss_sum / static_cast<double>(seen),
                                 static_cast<double>(correct) / static_cast<double>(seen), epoch_seconds,
                                 static_cast<double>(seen) / epoch_seconds),
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
      {"blas", blas_config()}};
  for (const auto& hook : hooks_) hook->add_results(*this, results);
  write_file_atomic(run_file("results.json"), results.dump(2) + "\n");
}

EvalResult Trainer::fit(int64_t stop_after_epoch) {
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
