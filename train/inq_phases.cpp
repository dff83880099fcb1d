#include "train/inq_phases.h"

#include <fmt/format.h>

#include <chrono>
#include <string>

#include "framework/error.h"
#include "framework/fileio.h"
#include "inq/inq_state.h"
#include "train/trainer.h"

namespace inq {

InqPhases::InqPhases(Trainer& t, InqSgd& inq) : inq_(inq) {
  const TrainConfig& c = t.config();
  // Re-training follows every step but the last (sigma = 1 leaves no weight to train); then, if
  // asked, final_epochs for the float parameters alone.
  t.set_total_epochs(c.inq.epochs_per_step * (inq_.num_steps() - 1) + c.inq.final_epochs);
  // INQ restarts the schedule at each step (docs/INQ_SPEC.md section 5): it spans one step's re-training.
  const int64_t per_epoch = t.train_loader().batches_per_epoch();
  step_schedule_ = std::make_unique<LrSchedule>(c.schedule.build(c.optim.lr, c.inq.epochs_per_step, per_epoch));
  if (c.inq.final_epochs > 0)  // the float-only phase after the last step has its own length
    final_schedule_ = std::make_unique<LrSchedule>(c.schedule.build(c.optim.lr, c.inq.final_epochs, per_epoch));
  t.set_lr_schedule(step_schedule_.get(), /*restart=*/false);
  t.set_summary_labels("retrain", "0");
  // An INQ run's "best" is its final, fully quantized model, not an intermediate epoch.
  t.set_keep_best(false);
}

const LrSchedule* InqPhases::current_schedule() const {
  return inq_.finished() ? final_schedule_.get() : step_schedule_.get();
}

void InqPhases::on_resume(Trainer& t, const SafetensorsFile& file, const CheckpointContents& contents) {
  try {
    inq_.load_state(optimizer_state_tensors(file), contents.inq_state);
  } catch (const Error& e) {
    // The run's INQ options normally come from the checkpoint's own config (inq quantize --resume
    // takes no others): say so rather than "this run's options", which reads as flags.
    const InqConfig &stored = contents.config.inq, &run = t.config().inq;
    if (stored.bits != run.bits || stored.portions != run.portions || stored.strategy != run.strategy ||
        stored.exclude != run.exclude || contents.config.run.seed != t.config().run.seed)
      throw;
    std::string message = e.what();
    const std::string generic = "this run's options", from_file = "the options stored in the checkpoint's config";
    for (size_t at = message.find(generic); at != std::string::npos; at = message.find(generic, at + from_file.size()))
      message.replace(at, generic.size(), from_file);
    throw Error(message);
  }
  t.set_lr_schedule(current_schedule(), /*restart=*/false);
  t.set_summary_labels("retrain", std::to_string(inq_.steps_begun()));
}

void InqPhases::on_fit_begin(Trainer& t) {
  const int64_t step_epochs = t.config().inq.epochs_per_step * (inq_.num_steps() - 1);
  INQ_CHECK(t.epoch() <= t.config().run.epochs, "Given a checkpoint at epoch {}, expected --final-epochs >= {} (it "
            "has trained that far after the last step)", t.epoch(), t.epoch() - step_epochs);
}

void InqPhases::before_epoch(Trainer& t) {
  TrainingProgress& p = t.progress();
  if (p.fp32_acc1 < 0.0) {
    p.fp32_acc1 = t.evaluate_test().acc1;
    if (t.reports()) fmt::print(stderr, " * starting model: Acc@1 {:.3f}\n", 100.0 * p.fp32_acc1);
  }
  // A step begins once the previous one's re-training has had its epochs (step 1 at once).
  const int64_t per_step = t.config().inq.epochs_per_step;
  while (!inq_.finished()) {
    const int k = inq_.steps_begun();
    if (k > 0 && t.epoch() - (k - 1) * per_step < per_step) break;
    begin_step(t);
  }
}

void InqPhases::begin_step(Trainer& t) {
  const int k = inq_.steps_begun() + 1;
  const double portion = inq_.inq_options().resolved_portions()[static_cast<size_t>(k - 1)];
  inq_.begin_step(k);  // partition, quantize and freeze; momentum buffers reset
  t.set_lr_schedule(current_schedule(), /*restart=*/true);
  t.set_summary_labels("retrain", std::to_string(k));
  const EvalResult test = t.evaluate_test();
  if (t.reports())
    fmt::print(stderr, " * INQ step {}/{} (portion {}): Acc@1 {:.3f} Acc@5 {:.3f} right after quantizing\n", k,
             inq_.num_steps(), portion, 100.0 * test.acc1, 100.0 * test.acc5);
  nlohmann::json row = {{"step", k}, {"portion", portion}, {"acc1_quantized", test.acc1}};
  // After the last step nothing is re-trained: its accuracy is the quantized one.
  row["acc1_retrained"] = inq_.finished() ? nlohmann::json(test.acc1) : nlohmann::json(nullptr);
  t.progress().inq_steps.push_back(row);
  t.append_summary_row("quantized", ",,,,", test);
  // The report: per tensor n1, n2, levels used, saturation, frozen fraction.
  if (t.writes_run_folder()) write_file_atomic(t.run_file("inq_report.txt"), format_inq_report(inq_.report()));
  t.save_checkpoint(t.run_file("last.safetensors"));
  t.write_results();
}

void InqPhases::on_epoch_end(Trainer& t, const EvalResult& test) {
  nlohmann::json& last = t.progress().inq_steps.back();
  last["acc1_retrained"] = test.acc1;
  last.erase("bn_batches");  // training after the last step moved the statistics again
}

void InqPhases::on_checkpoint(const Trainer&, CheckpointContents& contents) const {
  contents.inq_state = inq_.inq_metadata();
}

// docs/INQ_SPEC.md section 5 re-trains nothing after the last step, but BatchNorm's running
// statistics still describe the activations of the weights before that step, and quantizing the
// last portion shifts them (measured on ResNet-20 at 3 bits: 92.58% before the last step, 88.36%
// after it with the old statistics, 91.93% with statistics re-estimated over 200 batches). (D) So
// the statistics (buffers, not parameters: every weight stays as quantized) are re-estimated over
// bn_batches training batches. The last step's row records bn_batches; a run resumed with a
// different value (a run finished before this existed has none) redoes it, which depends only on
// the weights and the data.
void InqPhases::reestimate_final_batchnorm(Trainer& t) {
  nlohmann::json& last = t.progress().inq_steps.back();
  const int64_t wanted = t.config().inq.bn_batches;
  const int64_t done = last.value("bn_batches", int64_t{-1});
  if (done == wanted) return;
  INQ_CHECK(!(done > 0 && wanted == 0),
            "Given a finished INQ run whose BatchNorm statistics were re-estimated over {} batches, expected "
            "--bn-batches > 0 (the statistics from before are gone; rerun the last step for them)", done);
  const auto start = std::chrono::steady_clock::now();
  const int64_t used = reestimate_batchnorm(t.model(), t.train_loader(), t.epoch(), wanted);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  last["bn_batches"] = wanted;
  if (used > 0) {
    const EvalResult test = t.evaluate_test();
    last["acc1_retrained"] = test.acc1;
    if (t.reports())
      fmt::print(stderr, " * BatchNorm statistics re-estimated over {} training batches ({:.1f} s): Acc@1 {:.3f} Acc@5 "
               "{:.3f}\n", used, seconds, 100.0 * test.acc1, 100.0 * test.acc5);
    t.append_summary_row("bn_reestimated", ",,,,", test);
  }
  t.save_checkpoint(t.run_file("last.safetensors"));
  t.write_results();
}

void InqPhases::on_fit_end(Trainer& t) {
  if (t.last_test().count == 0) t.evaluate_test();  // resumed after the last step
  reestimate_final_batchnorm(t);
  const std::vector<OffendingWeight> bad = inq_.verify();
  INQ_CHECK(bad.empty(), "Given the finished INQ schedule, expected every quantized weight to be 0 or +-2^k in its "
            "codebook, but {} are not (first: '{}'[{}] = {})", bad.size(), bad.empty() ? "" : bad[0].name,
            bad.empty() ? 0 : bad[0].index, bad.empty() ? 0.0f : bad[0].value);
  t.save_checkpoint(t.run_file("final.safetensors"));
  if (t.reports())
    fmt::print(stderr, " * INQ finished: {}-bit model, Acc@1 {:.3f} (starting model {:.3f}); every quantized weight "
             "verified\n", t.config().inq.bits, 100.0 * t.last_test().acc1, 100.0 * t.progress().fp32_acc1);
}

void InqPhases::add_results(const Trainer& t, nlohmann::json& results) const {
  const TrainingProgress& p = t.progress();
  const int64_t bn_batches = t.config().inq.bn_batches;
  results["inq"] = {{"bits", t.config().inq.bits},
                    {"strategy", t.config().inq.strategy},
                    {"portions", inq_.inq_options().resolved_portions()},
                    {"steps_done", inq_.steps_begun()},
                    {"finished", inq_.finished() && p.inq_steps.back().value("bn_batches", int64_t{-1}) == bn_batches},
                    {"bn_batches", bn_batches},
                    {"fp32_acc1", p.fp32_acc1},
                    {"steps", p.inq_steps}};
}

}  // namespace inq
