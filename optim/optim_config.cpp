#include "optim/optim_config.h"

#include <cmath>

#include "framework/config_fields.h"

namespace inq {

void OptimizerConfig::validate() const {
  check_config_real("lr", lr, 0.0, 1e6);
  INQ_CHECK(lr > 0, "Given a training configuration with lr = {}, expected a value > 0", lr);
  check_config_real("momentum", momentum, 0.0, 1.0);
  check_config_real("weight_decay", weight_decay, 0.0, 1e6);
}

void ScheduleConfig::validate() const {
  const LrScheduleKind k = parse_lr_schedule_kind(kind);
  check_config_range<int64_t>("step_size", step_size, 0, kMaxEpochs);
  for (int64_t m : milestones) check_config_range<int64_t>("a milestone", m, 0, kMaxEpochs);
  check_config_real("gamma", gamma, 0.0, 1e6);
  check_config_real("warmup_epochs", warmup_epochs, 0.0, static_cast<double>(kMaxEpochs));
  // A field of another kind is a mistake in the command, not something to ignore silently.
  INQ_CHECK(k == LrScheduleKind::Step || step_size == 0,
            "Given --step-size {} with --schedule {}, expected --step-size only with --schedule step", step_size,
            kind);
  INQ_CHECK(k == LrScheduleKind::MultiStep || milestones.empty(),
            "Given --milestones with --schedule {}, expected --milestones only with --schedule multistep", kind);
}

LrSchedule ScheduleConfig::build(double base_lr, int64_t phase_epochs, int64_t iterations_per_epoch) const {
  validate();
  const LrScheduleKind k = parse_lr_schedule_kind(kind);
  LrScheduleOptions o{.base_lr = base_lr};
  o.warmup_iterations = static_cast<int64_t>(std::llround(warmup_epochs * static_cast<double>(iterations_per_epoch)));
  switch (k) {
    case LrScheduleKind::Constant:
      break;
    case LrScheduleKind::Step:
      INQ_CHECK(step_size >= 1, "Given --schedule step, expected --step-size (epochs between decays, >= 1)");
      o.step_size = step_size * iterations_per_epoch;
      o.gamma = gamma;
      break;
    case LrScheduleKind::MultiStep:
      INQ_CHECK(!milestones.empty(), "Given --schedule multistep, expected --milestones (epochs at which to decay)");
      for (int64_t m : milestones) o.milestones.push_back(m * iterations_per_epoch);
      o.gamma = gamma;
      break;
    case LrScheduleKind::Cosine:
      o.total_iterations = phase_epochs * iterations_per_epoch;
      break;
  }
  return LrSchedule(k, o);
}

}  // namespace inq
