#include "apps/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "apps/checkpoint.h"
#include "data/fashion_mnist.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/ops.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "layers/batchnorm.h"
#include "layers/loss.h"
#include "models/registry.h"
#include "models/training_loss.h"

namespace inq {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

}  // namespace

EvalResult evaluate(Module& model, DataLoader& loader) {
  const auto start = Clock::now();
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  EvalResult r;
  double loss_sum = 0.0;
  int64_t correct1 = 0, correct5 = 0;
  loader.start_epoch(0);
  Batch batch;
  while (loader.next(batch)) {
    Tensor logits = model.forward(batch.images);
    const int64_t n = static_cast<int64_t>(batch.labels.size());
    loss_sum += static_cast<double>(cross_entropy(logits, batch.labels).item()) * n;
    correct1 += count_correct_topk(logits, batch.labels, 1);
    correct5 += count_correct_topk(logits, batch.labels, static_cast<int>(std::min<int64_t>(5, logits.size(1))));
    r.count += n;
  }
  model.train(was_training);
  INQ_CHECK(r.count > 0, "Given an evaluation set, expected at least one example, but it is empty");
  r.loss = loss_sum / static_cast<double>(r.count);
  r.acc1 = static_cast<double>(correct1) / static_cast<double>(r.count);
  r.acc5 = static_cast<double>(correct5) / static_cast<double>(r.count);
  r.seconds = seconds_since(start);
  return r;
}

int64_t reestimate_batchnorm(Module& model, DataLoader& loader, int64_t epoch, int64_t max_batches) {
  std::vector<BatchNorm2d*> layers;
  for (BatchNorm2d* bn : batchnorm_layers(model))
    if (bn->options().track_running_stats) layers.push_back(bn);
  const int64_t batches = std::min(max_batches, loader.batches_per_epoch());
  if (layers.empty() || batches <= 0) return 0;
  const bool was_training = model.is_training();
  model.eval();
  for (BatchNorm2d* bn : layers) {
    bn->reset_running_stats();
    bn->set_cumulative_average(true);
    bn->train();
  }
  NoGradGuard no_grad;
  loader.start_epoch(epoch);
  Batch batch;
  int64_t used = 0;
  while (used < batches && loader.next(batch)) {
    model.forward(batch.images);
    ++used;
  }
  for (BatchNorm2d* bn : layers) bn->set_cumulative_average(false);
  model.train(was_training);
  return used;
}

Trainer::Trainer(TrainConfig config) : config_(std::move(config)) {
  INQ_CHECK(!config_.out.empty(), "Given no run folder, expected --out");
  validate_train_config(config_);
  seed_all(config_.seed);
  // The data comes first: it decides the model's input channels and classes. Loading it draws
  // nothing from the default generator, so initialization is the same as if the model came first.
  ChannelStats stats;
  train_set_ = load_dataset(config_, /*train=*/true, &stats);
  test_set_ = load_dataset(config_, /*train=*/false);
  check_same_classes(*train_set_, *test_set_);
  const TransformPipeline train_transforms = dataset_transforms(config_, /*train=*/true, stats);
  const TransformPipeline test_transforms = dataset_transforms(config_, /*train=*/false, stats);
  model_ = create_model(config_.arch, model_options_for(config_, *train_set_));
  // A resumed run takes its weights from the checkpoint (loaded below), not from --weights.
  if (!config_.weights.empty() && config_.resume.empty())
    load_model_weights(read_safetensors(config_.weights), *model_, optional_weight_names(*model_));

  train_loader_ = std::make_unique<DataLoader>(
      *train_set_, DataLoaderOptions{.batch_size = config_.batch_size, .shuffle = true, .drop_last = false,
                                     .seed = config_.seed, .workers = config_.workers, .prefetch_batches = 0,
                                     .transforms = train_transforms});
  test_loader_ = std::make_unique<DataLoader>(
      *test_set_, DataLoaderOptions{.batch_size = config_.eval_batch_size, .shuffle = false, .drop_last = false,
                                    .seed = config_.seed, .workers = config_.workers, .prefetch_batches = 0,
                                    .transforms = test_transforms});

  auto groups = make_param_groups(model_->named_parameters(), config_.weight_decay,
                                  DecayGroupOptions{.decay_bias = config_.decay_norm_and_bias,
                                                    .decay_norm = config_.decay_norm_and_bias});
  const SgdOptions sgd{.lr = config_.lr, .momentum = config_.momentum, .dampening = 0, .nesterov = config_.nesterov};
  if (config_.inq_bits > 0) {
    INQ_CHECK(!config_.weights.empty() || !config_.resume.empty(),
              "Given an INQ run, expected pre-trained --weights to quantize");
    const InqOptions inq{.bits = config_.inq_bits,
                         .portions = config_.inq_portions,
                         .strategy = parse_partition_strategy(config_.inq_strategy),
                         .seed = config_.seed,
                         .exclude = config_.inq_exclude};
    auto optimizer = std::make_unique<InqSgd>(std::move(groups), sgd, inq);
    inq_ = optimizer.get();
    optimizer_ = std::move(optimizer);
    // Re-training follows every step but the last (sigma = 1 leaves no weight to train); then,
    // if asked, final_epochs for the float parameters alone.
    config_.epochs = config_.epochs_per_step * (inq_->num_steps() - 1) + config_.final_epochs;
  } else {
    optimizer_ = std::make_unique<Sgd>(std::move(groups), sgd);
  }

  const int64_t per_epoch = train_loader_->batches_per_epoch();
  LrScheduleOptions s{.base_lr = config_.lr};
  s.step_size = config_.step_size * per_epoch;
  s.gamma = config_.gamma;
  for (int64_t m : config_.milestones) s.milestones.push_back(m * per_epoch);
  // INQ restarts the schedule at each step (INQ_SPEC.md section 5): it spans one step's re-training.
  s.total_iterations = (inq_ ? config_.epochs_per_step : config_.epochs) * per_epoch;
  s.warmup_iterations = static_cast<int64_t>(std::llround(config_.warmup_epochs * static_cast<double>(per_epoch)));
  schedule_ = std::make_unique<LrSchedule>(make_lr_schedule(config_.schedule, s));
  if (inq_ && config_.final_epochs > 0) {  // the float-only phase after the last step has its own length
    s.total_iterations = config_.final_epochs * per_epoch;
    final_schedule_ = std::make_unique<LrSchedule>(make_lr_schedule(config_.schedule, s));
  }

  namespace fs = std::filesystem;
  fs::create_directories(config_.out);
  const std::string config_path = config_.out + "/config.json";
  INQ_CHECK(config_.force || !config_.resume.empty() || !file_exists(config_path),
            "Given run folder '{}', expected a new folder, but it already holds a run (use --resume or --force)",
            config_.out);
  if (!config_.resume.empty()) load_checkpoint(config_.resume);
  write_file_atomic(config_path, to_json(config_).dump(2) + "\n");
}

void Trainer::save_checkpoint(const std::string& path) const {
  CheckpointContents c;
  c.arch = config_.arch;
  c.config = config_;
  c.training_state = to_json(TrainingProgress{.epoch = epoch_,
                                               .iteration = iteration_,
                                               .best_acc1 = best_acc1_,
                                               .generator = default_generator().state(),
                                               .train_seconds = train_seconds_,
                                               .train_images = train_images_,
                                               .phase_start_iteration = phase_start_iteration_,
                                               .fp32_acc1 = fp32_acc1_,
                                               .inq_steps = inq_steps_});
  if (inq_) c.inq_state = inq_->inq_metadata();
  inq::save_checkpoint(path, *model_, optimizer_.get(), c);
}

void Trainer::load_checkpoint(const std::string& path) {
  const SafetensorsFile file = read_safetensors(path);
  const CheckpointContents c = read_checkpoint_info(file);
  INQ_CHECK(c.arch == config_.arch, "Given --resume '{}' (arch {}), expected a checkpoint of --arch {}", path, c.arch,
            config_.arch);
  load_model_weights(file, *model_);
  INQ_CHECK(c.inq_state.empty() == (inq_ == nullptr),
            "Given --resume '{}', expected a checkpoint of the same kind of run, but it is {} and this run is {}",
            path, c.inq_state.empty() ? "plain training" : "INQ", inq_ ? "INQ" : "plain training");
  if (inq_) {
    inq_->load_state(optimizer_state_tensors(file), c.inq_state);
  } else {
    load_optimizer_state(file, *optimizer_);
  }
  const TrainingProgress p = read_training_progress(c, path, inq_ ? inq_->steps_begun() : 0);
  default_generator().set_state(p.generator);
  epoch_ = p.epoch;
  iteration_ = p.iteration;
  best_acc1_ = p.best_acc1;
  train_seconds_ = p.train_seconds;
  train_images_ = p.train_images;
  phase_start_iteration_ = p.phase_start_iteration;
  fp32_acc1_ = p.fp32_acc1;
  inq_steps_ = p.inq_steps;
  fmt::print(stderr, "=> resumed '{}' at epoch {} (iteration {})\n", path, epoch_, iteration_);
}

void Trainer::train_one_epoch() {
  model_->train();
  const int64_t per_epoch = train_loader_->batches_per_epoch();
  const int64_t total_iterations = config_.epochs * per_epoch;
  train_loader_->start_epoch(epoch_);
  double loss_sum = 0.0, data_seconds = 0.0, compute_seconds = 0.0;
  int64_t correct = 0, seen = 0;
  const bool stderr_is_terminal = ::isatty(STDERR_FILENO) != 0;
  const auto epoch_start = Clock::now();
  auto wait_start = Clock::now();
  Batch batch;
  while (train_loader_->next(batch)) {
    const auto compute_start = Clock::now();
    data_seconds += std::chrono::duration<double>(compute_start - wait_start).count();
    const LrSchedule& schedule = inq_ && inq_->finished() ? *final_schedule_ : *schedule_;
    const double lr = schedule.lr_at(iteration_ - phase_start_iteration_);
    optimizer_->set_lr(lr);
    auto [logits, loss] = training_forward(*model_, batch.images, batch.labels);
    const float loss_value = loss.item();
    INQ_CHECK(std::isfinite(loss_value),
              "Given epoch {}, iteration {}, batch {}, expected a finite loss, but got {} (try a lower --lr)",
              epoch_ + 1, iteration_, batch.index, loss_value);
    model_->zero_grad();
    loss.backward();
    optimizer_->step();
    ++iteration_;
    const int64_t n = static_cast<int64_t>(batch.labels.size());
    loss_sum += static_cast<double>(loss_value) * n;
    correct += count_correct_topk(logits, batch.labels, 1);
    seen += n;
    const auto now = Clock::now();
    compute_seconds += std::chrono::duration<double>(now - compute_start).count();
    wait_start = now;
    if ((batch.index + 1) % config_.print_freq == 0 || batch.index + 1 == per_epoch) {
      const double elapsed = seconds_since(epoch_start);
      const double images_per_s = static_cast<double>(seen) / std::max(elapsed, 1e-9);
      const double seconds_per_iter = elapsed / static_cast<double>(batch.index + 1);
      const double eta = seconds_per_iter * static_cast<double>(total_iterations - iteration_);
      // On a terminal the line is redrawn in place; in a log every progress line is kept.
      const bool last_batch = batch.index + 1 == per_epoch;
      fmt::print(stderr,
                 "{}Epoch: [{}/{}][{:>4}/{}]  loss {:.4f}  acc {:6.2f}%  {:6.0f} img/s  data {:.3f}s compute {:.3f}s  "
                 "lr {:.5f}  eta {}{}",
                 stderr_is_terminal ? "\r" : "", epoch_ + 1, config_.epochs, batch.index + 1, per_epoch,
                 loss_sum / static_cast<double>(seen), 100.0 * static_cast<double>(correct) / static_cast<double>(seen),
                 images_per_s, data_seconds, compute_seconds, lr, format_duration(eta),
                 stderr_is_terminal && !last_batch ? "" : "\n");
    }
  }
  const double epoch_seconds = seconds_since(epoch_start);
  train_seconds_ += epoch_seconds;
  train_images_ += seen;
  ++epoch_;

  const EvalResult test = evaluate(*model_, *test_loader_);
  fmt::print(stderr, " * Epoch {} Acc@1 {:.3f} Acc@5 {:.3f}  test loss {:.4f}  ({:.1f}s train, {:.0f} img/s)\n",
             epoch_, 100.0 * test.acc1, 100.0 * test.acc5, test.loss, epoch_seconds,
             static_cast<double>(seen) / epoch_seconds);

  append_summary_row(inq_ ? "retrain" : "train",
                     fmt::format("{:.6g},{:.6f},{:.6f},{:.2f},{:.1f}", optimizer_->lr(),
                                 loss_sum / static_cast<double>(seen),
                                 static_cast<double>(correct) / static_cast<double>(seen), epoch_seconds,
                                 static_cast<double>(seen) / epoch_seconds),
                     test);
  last_test_ = test;
  const bool is_best = test.acc1 > best_acc1_;
  if (is_best) best_acc1_ = test.acc1;
  if (inq_) {
    inq_steps_.back()["acc1_retrained"] = test.acc1;
    inq_steps_.back().erase("bn_batches");  // training after the last step moved the statistics again
  }
  save_checkpoint(config_.out + "/last.safetensors");
  // An INQ run's "best" is its final, fully quantized model, not an intermediate epoch.
  if (is_best && !inq_) save_checkpoint(config_.out + "/best.safetensors");
  write_results(test);
}

void Trainer::append_summary_row(const std::string& phase, const std::string& train_fields, const EvalResult& test) {
  const std::string summary = config_.out + "/summary.csv";
  if (!file_exists(summary))
    write_file_atomic(summary,
                      "epoch,inq_step,phase,lr,train_loss,train_acc1,epoch_seconds,images_per_s,test_loss,test_acc1,"
                      "test_acc5\n");
  const std::string step = inq_ ? std::to_string(inq_->steps_begun()) : "fp32";
  append_line_atomic(summary, fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f}", epoch_, step, phase, train_fields,
                                          test.loss, test.acc1, test.acc5));
}

void Trainer::write_results(const EvalResult& test) const {
  nlohmann::json results = {{"arch", config_.arch},
                            {"dataset", config_.dataset},
                            {"seed", config_.seed},
                            {"epochs_done", epoch_},
                            {"epochs", config_.epochs},
                            {"acc1", test.acc1},
                            {"acc5", test.acc5},
                            {"test_loss", test.loss},
                            {"best_acc1", best_acc1_},
                            {"train_seconds", train_seconds_},
                            {"train_images_per_s", static_cast<double>(train_images_) / std::max(train_seconds_, 1e-9)},
                            {"threads", get_num_threads()},
                            {"blas", blas_config()}};
  if (inq_) {
    results["inq"] = {{"bits", config_.inq_bits},
                      {"strategy", config_.inq_strategy},
                      {"portions", inq_->inq_options().resolved_portions()},
                      {"steps_done", inq_->steps_begun()},
                      {"finished", inq_->finished() && inq_steps_.back().value("bn_batches", int64_t{-1}) ==
                                                             config_.bn_batches},
                      {"bn_batches", config_.bn_batches},
                      {"fp32_acc1", fp32_acc1_},
                      {"steps", inq_steps_}};
  }
  write_file_atomic(config_.out + "/results.json", results.dump(2) + "\n");
}

void Trainer::begin_inq_step() {
  const int k = inq_->steps_begun() + 1;
  const double portion = inq_->inq_options().resolved_portions()[static_cast<size_t>(k - 1)];
  inq_->begin_step(k);  // partition, quantize and freeze; momentum buffers reset
  phase_start_iteration_ = iteration_;
  const EvalResult test = evaluate(*model_, *test_loader_);
  last_test_ = test;
  fmt::print(stderr, " * INQ step {}/{} (portion {}): Acc@1 {:.3f} Acc@5 {:.3f} right after quantizing\n", k,
             inq_->num_steps(), portion, 100.0 * test.acc1, 100.0 * test.acc5);
  nlohmann::json row = {{"step", k}, {"portion", portion}, {"acc1_quantized", test.acc1}};
  // After the last step nothing is re-trained: its accuracy is the quantized one.
  row["acc1_retrained"] = inq_->finished() ? nlohmann::json(test.acc1) : nlohmann::json(nullptr);
  inq_steps_.push_back(row);
  append_summary_row("quantized", ",,,,", test);
  // The report: per tensor n1, n2, levels used, saturation, frozen fraction.
  write_file_atomic(config_.out + "/inq_report.txt", format_inq_report(inq_->report()));
  save_checkpoint(config_.out + "/last.safetensors");
  write_results(test);
}

// INQ_SPEC.md section 5 re-trains nothing after the last step, but BatchNorm's running statistics
// still describe the activations of the weights before that step, and quantizing the last portion
// shifts them (measured on ResNet-20 at 3 bits: 92.58% before the last step, 88.36% after it with
// the old statistics, 91.93% with statistics re-estimated over 200 batches). (D) So the statistics
// (buffers, not parameters: every weight stays as quantized) are re-estimated over bn_batches
// training batches.
// The last step's row records bn_batches; a run resumed with a different value (a run finished
// before this existed has none) redoes it, which depends only on the weights and the data.
void Trainer::reestimate_final_batchnorm() {
  nlohmann::json& last = inq_steps_.back();
  const int64_t done = last.value("bn_batches", int64_t{-1});
  if (done == config_.bn_batches) return;
  INQ_CHECK(!(done > 0 && config_.bn_batches == 0),
            "Given a finished INQ run whose BatchNorm statistics were re-estimated over {} batches, expected "
            "--bn-batches > 0 (the statistics from before are gone; rerun the last step for them)", done);
  const auto start = Clock::now();
  const int64_t used = reestimate_batchnorm(*model_, *train_loader_, epoch_, config_.bn_batches);
  const double seconds = seconds_since(start);
  last["bn_batches"] = config_.bn_batches;
  if (used > 0) {
    const EvalResult test = evaluate(*model_, *test_loader_);
    last_test_ = test;
    last["acc1_retrained"] = test.acc1;
    fmt::print(stderr, " * BatchNorm statistics re-estimated over {} training batches ({:.1f} s): Acc@1 {:.3f} Acc@5 "
               "{:.3f}\n", used, seconds, 100.0 * test.acc1, 100.0 * test.acc5);
    append_summary_row("bn_reestimated", ",,,,", test);
  }
  save_checkpoint(config_.out + "/last.safetensors");
  write_results(last_test_);
}

void Trainer::run_inq_schedule(int64_t stop_after_epoch) {
  if (fp32_acc1_ < 0.0) {
    fp32_acc1_ = evaluate(*model_, *test_loader_).acc1;
    fmt::print(stderr, " * starting model: Acc@1 {:.3f}\n", 100.0 * fp32_acc1_);
  }
  const int64_t per_step = config_.epochs_per_step;
  while (!inq_->finished()) {
    if (stop_after_epoch >= 0 && epoch_ >= stop_after_epoch) return;
    const int k = inq_->steps_begun();
    // A step's re-training is over once it has had its epochs (step 0: nothing to re-train).
    if (k == 0 || epoch_ - (k - 1) * per_step >= per_step) {
      begin_inq_step();
    } else {
      train_one_epoch();
    }
  }
  // (D) Optionally, re-train what was never quantized, every quantized weight frozen (InqSgd
  // leaves frozen weights alone; after the last step that is all of them).
  while (epoch_ < config_.epochs) {
    if (stop_after_epoch >= 0 && epoch_ >= stop_after_epoch) return;
    train_one_epoch();
  }
  if (last_test_.count == 0) last_test_ = evaluate(*model_, *test_loader_);  // resumed after the last step
  reestimate_final_batchnorm();
  const std::vector<OffendingWeight> bad = inq_->verify();
  INQ_CHECK(bad.empty(), "Given the finished INQ schedule, expected every quantized weight to be 0 or +-2^k in its "
            "codebook, but {} are not (first: '{}'[{}] = {})", bad.size(), bad.empty() ? "" : bad[0].name,
            bad.empty() ? 0 : bad[0].index, bad.empty() ? 0.0f : bad[0].value);
  save_checkpoint(config_.out + "/final.safetensors");
  fmt::print(stderr, " * INQ finished: {}-bit model, Acc@1 {:.3f} (starting model {:.3f}); every quantized weight "
             "verified\n", config_.inq_bits, 100.0 * last_test_.acc1, 100.0 * fp32_acc1_);
}

EvalResult Trainer::fit(int64_t stop_after_epoch) {
  if (inq_) {
    const int64_t step_epochs = config_.epochs_per_step * (inq_->num_steps() - 1);
    INQ_CHECK(epoch_ <= config_.epochs, "Given a checkpoint at epoch {}, expected --final-epochs >= {} (it has trained "
              "that far after the last step)", epoch_, epoch_ - step_epochs);
  }
  INQ_CHECK(epoch_ <= config_.epochs, "Given a checkpoint at epoch {}, expected --epochs >= {}", epoch_, epoch_);
  fmt::print(stderr, "=> {} on {}: {} train / {} test images, {} epochs, batch {}, lr {} ({}), {} threads, run folder {}\n",
             config_.arch, config_.dataset, train_set_->size(), test_set_->size(), config_.epochs, config_.batch_size,
             config_.lr, config_.schedule, get_num_threads(), config_.out);
  if (inq_) {
    run_inq_schedule(stop_after_epoch);
  } else {
    const int64_t last = stop_after_epoch >= 0 ? std::min(stop_after_epoch, config_.epochs) : config_.epochs;
    while (epoch_ < last) train_one_epoch();
  }
  return evaluate(*model_, *test_loader_);
}

void run_eval_command(const TrainConfig& config, const std::string& weights, const std::string& results_path) {
  ChannelStats stats;
  auto test_set = load_dataset(config, /*train=*/false, &stats);
  auto model = create_model(config.arch, inference_options(model_options_for(config, *test_set)));
  load_model_weights(read_safetensors(weights), *model, optional_weight_names(*model));
  fmt::print(stderr, "=> evaluating {} on {} ({} images, {} classes)\n", config.arch, config.dataset, test_set->size(),
             test_set->num_classes());
  DataLoader loader(*test_set, DataLoaderOptions{.batch_size = config.eval_batch_size, .shuffle = false,
                                                 .drop_last = false, .seed = 0, .workers = config.workers,
                                                 .prefetch_batches = 0,
                                                 .transforms = dataset_transforms(config, /*train=*/false, stats)});
  const EvalResult r = evaluate(*model, loader);
  fmt::print(" * Acc@1 {:.3f} Acc@5 {:.3f}\n", 100.0 * r.acc1, 100.0 * r.acc5);
  if (!results_path.empty()) {
    const auto parent = std::filesystem::path(results_path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    if (!file_exists(results_path)) write_file_atomic(results_path, "arch,weights,dataset,count,acc1,acc5,loss,seconds\n");
    append_line_atomic(results_path, fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f},{:.2f}", config.arch, weights,
                                                 config.dataset, r.count, r.acc1, r.acc5, r.loss, r.seconds));
  }
}

}  // namespace inq
