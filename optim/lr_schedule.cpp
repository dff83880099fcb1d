#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "framework/error.h"

namespace inq {

LrScheduleKind parse_lr_schedule_kind(const std::string& name) {
  if (name == "constant") return LrScheduleKind::Constant;
  if (name == "step") return LrScheduleKind::Step;
  if (name == "multistep") return LrScheduleKind::MultiStep;
  if (name == "cosine") return LrScheduleKind::Cosine;
  throw Error(fmt::format(
      "Given the lr schedule name '{}', expected one of constant, step, multistep, cosine", name));
}

const char* lr_schedule_name(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::Constant:
      return "constant";
    case LrScheduleKind::Step:
      return "step";
    case LrScheduleKind::MultiStep:
      return "multistep";
    case LrScheduleKind::Cosine:
      return "cosine";
  }
  return "?";
}

LrSchedule::LrSchedule(LrScheduleKind kind, const LrScheduleOptions& options)
    : kind_(kind), options_(options) {
  const LrScheduleOptions& o = options_;
  const char* name = lr_schedule_name(kind);
  INQ_CHECK(std::isfinite(o.base_lr) && o.base_lr > 0, "Given base_lr = {}, expected a finite value > 0",
            o.base_lr);
  INQ_CHECK(o.warmup_iterations >= 0, "Given warmup_iterations = {}, expected a value >= 0",
            o.warmup_iterations);
  INQ_CHECK(o.warmup_start_factor >= 0 && o.warmup_start_factor <= 1,
            "Given warmup_start_factor = {}, expected a value in [0, 1]", o.warmup_start_factor);
  // Options that belong to another schedule are a configuration mistake, not something to ignore.
  INQ_CHECK(kind == LrScheduleKind::Step || o.step_size == 0,
            "Given step_size = {} with the {} schedule, expected step_size only with the step schedule",
            o.step_size, name);
  INQ_CHECK(kind == LrScheduleKind::MultiStep || o.milestones.empty(),
            "Given milestones with the {} schedule, expected milestones only with the multistep schedule",
            name);
  INQ_CHECK(kind == LrScheduleKind::Cosine || (o.total_iterations == 0 && o.min_lr == 0),
            "Given total_iterations = {} and min_lr = {} with the {} schedule, expected them only with the "
            "cosine schedule",
            o.total_iterations, o.min_lr, name);
  if (kind == LrScheduleKind::Step || kind == LrScheduleKind::MultiStep)
    INQ_CHECK(std::isfinite(o.gamma) && o.gamma > 0,
              "Given gamma = {} for the {} schedule, expected a finite value > 0", o.gamma, name);
  if (kind == LrScheduleKind::Step)
    INQ_CHECK(o.step_size >= 1, "Given step_size = {} for the step schedule, expected a value >= 1",
              o.step_size);
  if (kind == LrScheduleKind::MultiStep) {
    INQ_CHECK(!o.milestones.empty(),
              "Given the multistep schedule, expected at least one milestone, but got none");
    for (size_t i = 0; i < o.milestones.size(); ++i)
      INQ_CHECK(o.milestones[i] >= 1 && (i == 0 || o.milestones[i] > o.milestones[i - 1]),
                "Given milestones [{}], expected strictly increasing iterations >= 1",
                fmt::join(o.milestones, ", "));
  }
  if (kind == LrScheduleKind::Cosine) {
    INQ_CHECK(o.total_iterations >= 1,
              "Given total_iterations = {} for the cosine schedule, expected a value >= 1",
              o.total_iterations);
    INQ_CHECK(o.min_lr >= 0 && o.min_lr <= o.base_lr,
              "Given min_lr = {} for the cosine schedule, expected a value in [0, {}]", o.min_lr, o.base_lr);
  }
}

double LrSchedule::main_lr(int64_t t) const {
  const LrScheduleOptions& o = options_;
  switch (kind_) {
    case LrScheduleKind::Constant:
      return o.base_lr;
    case LrScheduleKind::Step:
      return o.base_lr * std::pow(o.gamma, static_cast<double>(t / o.step_size));
    case LrScheduleKind::MultiStep: {
      const auto passed =
          std::upper_bound(o.milestones.begin(), o.milestones.end(), t) - o.milestones.begin();
      return o.base_lr * std::pow(o.gamma, static_cast<double>(passed));
    }
    case LrScheduleKind::Cosine: {
      const double progress =
          static_cast<double>(std::min(t, o.total_iterations)) / static_cast<double>(o.total_iterations);
      return o.min_lr + (o.base_lr - o.min_lr) * (1 + std::cos(std::numbers::pi * progress)) / 2;
    }
  }
  return o.base_lr;
}

double LrSchedule::lr_at(int64_t iteration) const {
  INQ_CHECK(iteration >= 0, "Given iteration {}, expected an iteration >= 0", iteration);
  double lr = main_lr(iteration);
  const LrScheduleOptions& o = options_;
  if (iteration < o.warmup_iterations) {
    const double ramp = static_cast<double>(iteration) / static_cast<double>(o.warmup_iterations);
    lr *= o.warmup_start_factor + (1 - o.warmup_start_factor) * ramp;
  }
  return lr;
}

LrSchedule make_lr_schedule(const std::string& name, const LrScheduleOptions& options) {
  return LrSchedule(parse_lr_schedule_kind(name), options);
}

}  // namespace inq
