#pragma once
// The optimizer and learning-rate schedule sections of a run's configuration. Their keys in
// config.json and checkpoints are the names given to `visit` below (flat, beside the other
// sections' keys: framework/config_fields.h); apps/ adds their command-line flags.
#include <cstdint>
#include <string>
#include <vector>

#include "optim/lr_schedule.h"

namespace inq {

// SGD with momentum (optim/sgd.h) and which parameters weight decay applies to.
struct OptimizerConfig {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
  bool decay_norm_and_bias = false;  // PyTorch's default applies decay to all; the paper's recipe too

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& v) {
    v("lr", s.lr), v("momentum", s.momentum), v("weight_decay", s.weight_decay), v("nesterov", s.nesterov);
    v("decay_norm_and_bias", s.decay_norm_and_bias);
  }
  void validate() const;
};

// The learning-rate schedule, in epochs (optim/lr_schedule.h works in iterations). Each kind uses
// only its own fields: step uses step_size and gamma, multistep milestones and gamma, cosine
// decays to 0 over the phase it is built for; every kind may have a linear warm-up.
struct ScheduleConfig {
  std::string kind = "cosine";       // cosine | step | multistep | constant (JSON key "schedule")
  int64_t step_size = 0;             // step: epochs between decays (0: not given)
  std::vector<int64_t> milestones;   // multistep: epochs at which to decay
  double gamma = 0.1;                // step, multistep: decay factor
  double warmup_epochs = 0.0;

  template <class Self, class Visit>
  static void fields(Self& s, Visit&& v) {
    v("schedule", s.kind), v("step_size", s.step_size), v("milestones", s.milestones), v("gamma", s.gamma);
    v("warmup_epochs", s.warmup_epochs);
  }
  void validate() const;
  // The schedule of one training phase starting at base_lr and lasting phase_epochs epochs of
  // iterations_per_epoch iterations each (cosine decays over the phase; the others ignore its
  // length). Passes the schedule only the options its kind uses; throws inq::Error naming the
  // flag when one its kind needs is missing (--step-size for step, --milestones for multistep).
  LrSchedule build(double base_lr, int64_t phase_epochs, int64_t iterations_per_epoch) const;
};

}  // namespace inq
