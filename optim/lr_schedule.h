#pragma once
// Learning-rate schedules as pure functions of the iteration index (0-based, counted in optimizer
// steps), so resuming a run needs only the iteration: no scheduler state to save.
//   constant:  lr(t) = base_lr
//   step:      lr(t) = base_lr * gamma^floor(t / step_size)
//   multistep: lr(t) = base_lr * gamma^(number of milestones <= t)
//   cosine:    lr(t) = min_lr + (base_lr - min_lr) * (1 + cos(pi * min(t, T) / T)) / 2,  T = total_iterations
// Optional linear warmup multiplies any of them (PyTorch's LinearLR chained with the schedule):
//   t < W: factor = warmup_start_factor + (1 - warmup_start_factor) * t / W;  t >= W: factor = 1.
// Epoch-based schedules are expressed in iterations (e.g. step_size = 30 * iterations_per_epoch).
#include <cstdint>
#include <string>
#include <vector>

namespace inq {

enum class LrScheduleKind { Constant, Step, MultiStep, Cosine };

struct LrScheduleOptions {
  double base_lr = 0.1;
  int64_t step_size = 0;                 // step: iterations between decays (>= 1)
  double gamma = 0.1;                    // step, multistep: decay factor (> 0)
  std::vector<int64_t> milestones = {};  // multistep: strictly increasing iterations (>= 1)
  int64_t total_iterations = 0;          // cosine: T (>= 1); lr stays at min_lr from T on
  double min_lr = 0;                     // cosine: in [0, base_lr]
  int64_t warmup_iterations = 0;         // W >= 0; 0 disables warmup
  double warmup_start_factor = 0;        // in [0, 1]: the factor at iteration 0
};

// "constant", "step", "multistep", "cosine"; anything else throws, listing the valid names.
LrScheduleKind parse_lr_schedule_kind(const std::string& name);
const char* lr_schedule_name(LrScheduleKind kind);

class LrSchedule {
 public:
  // Validates the options for `kind`: values out of range, and options that only another kind
  // uses (e.g. milestones for cosine), throw inq::Error naming the option.
  LrSchedule(LrScheduleKind kind, const LrScheduleOptions& options);
  // The learning rate for iteration t >= 0.
  double lr_at(int64_t iteration) const;
  LrScheduleKind kind() const { return kind_; }
  const LrScheduleOptions& options() const { return options_; }

 private:
  double main_lr(int64_t t) const;
  LrScheduleKind kind_;
  LrScheduleOptions options_;
};

// The factory for configuration files and flags.
LrSchedule make_lr_schedule(const std::string& name, const LrScheduleOptions& options);

}  // namespace inq
