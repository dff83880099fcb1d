#include "train/prune_phases.h"

#include <fmt/format.h>

#include "framework/error.h"
#include "framework/fileio.h"
#include "framework/json_value.h"
#include "train/trainer.h"

namespace inq {

PrunePhases::PrunePhases(Trainer& t, PruneSgd& prune) : prune_(prune) {
  t.set_summary_labels("retrain", "prune");
  // The model that counts is the one at the end, pruned and re-trained; an intermediate epoch of
  // DNS has another mask, so it is no "best" of the same kind.
  t.set_keep_best(false);
}

void PrunePhases::on_resume(Trainer&, const SafetensorsFile& file, const CheckpointContents& contents) {
  prune_.load_state(optimizer_state_tensors(file), contents.prune_state);
  acc1_pruned_ = json_value<double>(contents.training_state.value("acc1_pruned", nlohmann::json(-1.0)),
                                    "training_state key 'acc1_pruned'");
}

void PrunePhases::before_epoch(Trainer& t) {
  if (prune_.started()) return;
  TrainingProgress& p = t.progress();
  p.fp32_acc1 = t.evaluate_test().acc1;
  prune_.start();
  const EvalResult test = t.evaluate_test();
  acc1_pruned_ = test.acc1;
  if (t.reports())
    fmt::print(stderr, " * starting model: Acc@1 {:.3f}; pruned ({}, {:.2f}% of the pruned tensors' weights): Acc@1 "
               "{:.3f}\n", 100.0 * p.fp32_acc1, prune_method_name(prune_.prune_options().method),
               100.0 * overall_sparsity(prune_.prune_state()), 100.0 * test.acc1);
  t.append_summary_row("pruned", ",,,,", test);
  write_report(t);
  t.save_checkpoint(t.run_file("last.safetensors"));
  t.write_results();
}

// The DNS iteration of a training step: iteration 0 was the start (the first mask), so the run's
// k-th optimizer step (k from 0) is DNS iteration k + 1.
void PrunePhases::before_forward(Trainer& t, const Batch&) { prune_.before_forward(t.iteration() + 1); }

void PrunePhases::after_backward(Trainer&) { prune_.after_backward(); }

void PrunePhases::after_step(Trainer&) { prune_.after_step(); }

void PrunePhases::on_epoch_end(Trainer& t, const EvalResult&) { write_report(t); }

void PrunePhases::on_checkpoint(const Trainer&, CheckpointContents& contents) const {
  contents.prune_state = prune_.prune_metadata();
  contents.training_state["acc1_pruned"] = acc1_pruned_;
}

void PrunePhases::on_fit_end(Trainer& t) {
  if (t.last_test().count == 0) t.evaluate_test();  // resumed after the last epoch
  // The model holds w * T: every pruned weight is +0.0. Checked before final.safetensors exists.
  for (const auto& p : prune_.pruned_params()) {
    const PruneParamState& r = prune_.prune_state().params.at(p.name);
    for (int64_t i = 0; i < p.tensor.numel(); ++i)
      INQ_CHECK(r.mask.data()[i] != 0 || p.tensor.data()[i] == 0, "Given the finished pruning run, expected every "
                "pruned weight to be 0, but '{}'[{}] = {}", p.name, i, p.tensor.data()[i]);
  }
  write_report(t);
  t.save_checkpoint(t.run_file("final.safetensors"));
  t.write_results();
  if (t.reports())
    fmt::print(stderr, " * pruning finished: {:.2f}% of the pruned tensors' weights are 0, Acc@1 {:.3f} (starting "
               "model {:.3f})\n", 100.0 * overall_sparsity(prune_.prune_state()), 100.0 * t.last_test().acc1,
               100.0 * t.progress().fp32_acc1);
}

void PrunePhases::add_results(const Trainer& t, nlohmann::json& results) const {
  const PruneOptions& o = prune_.prune_options();
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& r : prune_report(prune_.prune_state())) {
    nlohmann::json row = {{"name", r.name}, {"weights", r.numel}, {"pruned", r.pruned}, {"sparsity", r.sparsity}};
    if (o.method == PruneMethod::Dns) row.update({{"mu", r.mu}, {"sigma", r.sigma}, {"rate", r.rate},
                                                  {"threshold", r.threshold}});
    tensors.push_back(row);
  }
  results["prune"] = {{"method", prune_method_name(o.method)},
                      {"target_sparsity", o.sparsity >= 0 ? nlohmann::json(o.sparsity) : nlohmann::json(nullptr)},
                      {"scope", sparsity_scope_name(o.scope)},
                      {"sparsity", overall_sparsity(prune_.prune_state())},
                      {"fp32_acc1", t.progress().fp32_acc1},
                      {"acc1_pruned", acc1_pruned_},
                      {"tensors", tensors}};
}

void PrunePhases::write_report(const Trainer& t) const {
  if (!t.writes_run_folder()) return;
  write_file_atomic(t.run_file("prune_report.txt"),
                    format_prune_report(prune_report(prune_.prune_state()), prune_.prune_options().method));
}

}  // namespace inq
