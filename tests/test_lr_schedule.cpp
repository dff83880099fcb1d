// Learning-rate schedules: values at chosen iterations, warmup, the name factory and validation.
#include <gtest/gtest.h>

#include <cmath>

#include "error_testing.h"
#include "framework/error.h"
#include "optim/lr_schedule.h"

using namespace inq;
using test::error_of;

TEST(LrSchedule, ConstantAndStep) {
  const LrSchedule c = make_lr_schedule("constant", {.base_lr = 0.1});
  EXPECT_EQ(c.kind(), LrScheduleKind::Constant);
  EXPECT_DOUBLE_EQ(c.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(c.lr_at(1'000'000), 0.1);

  const LrSchedule s = make_lr_schedule("step", {.base_lr = 0.1, .step_size = 30, .gamma = 0.1});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(29), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(30), 0.01);
  EXPECT_DOUBLE_EQ(s.lr_at(59), 0.01);
  EXPECT_DOUBLE_EQ(s.lr_at(60), 0.001);
  EXPECT_DOUBLE_EQ(s.lr_at(95), 1e-4);
  EXPECT_THROW(s.lr_at(-1), Error);
}

TEST(LrSchedule, MultiStep) {
  const LrSchedule m =
      make_lr_schedule("multistep", {.base_lr = 0.2, .gamma = 0.5, .milestones = {100, 150}});
  EXPECT_DOUBLE_EQ(m.lr_at(0), 0.2);
  EXPECT_DOUBLE_EQ(m.lr_at(99), 0.2);
  EXPECT_DOUBLE_EQ(m.lr_at(100), 0.1);
  EXPECT_DOUBLE_EQ(m.lr_at(149), 0.1);
  EXPECT_DOUBLE_EQ(m.lr_at(150), 0.05);
  EXPECT_DOUBLE_EQ(m.lr_at(10'000), 0.05);
}

TEST(LrSchedule, CosineWithAndWithoutFloor) {
  const LrSchedule c = make_lr_schedule("cosine", {.base_lr = 0.1, .total_iterations = 100});
  EXPECT_DOUBLE_EQ(c.lr_at(0), 0.1);
  EXPECT_NEAR(c.lr_at(25), 0.08535533905932738, 1e-15);  // 0.1 * (1 + cos(pi/4)) / 2
  EXPECT_NEAR(c.lr_at(50), 0.05, 1e-15);
  EXPECT_NEAR(c.lr_at(75), 0.014644660940672627, 1e-15);
  EXPECT_NEAR(c.lr_at(100), 0.0, 1e-15);
  EXPECT_NEAR(c.lr_at(250), 0.0, 1e-15);  // stays at the floor after T
  const LrSchedule f = make_lr_schedule("cosine", {.base_lr = 0.1, .total_iterations = 100, .min_lr = 0.01});
  EXPECT_DOUBLE_EQ(f.lr_at(0), 0.1);
  EXPECT_NEAR(f.lr_at(50), 0.055, 1e-15);
  EXPECT_DOUBLE_EQ(f.lr_at(100), 0.01);
  EXPECT_DOUBLE_EQ(f.lr_at(101), 0.01);
  // Monotone non-increasing.
  for (int64_t t = 1; t <= 100; ++t) EXPECT_LE(f.lr_at(t), f.lr_at(t - 1));
}

TEST(LrSchedule, LinearWarmupMultipliesTheSchedule) {
  const LrSchedule w = make_lr_schedule(
      "cosine", {.base_lr = 0.1, .total_iterations = 100, .warmup_iterations = 10, .warmup_start_factor = 0});
  const LrSchedule plain = make_lr_schedule("cosine", {.base_lr = 0.1, .total_iterations = 100});
  EXPECT_DOUBLE_EQ(w.lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(w.lr_at(5), 0.5 * plain.lr_at(5));
  EXPECT_DOUBLE_EQ(w.lr_at(9), 0.9 * plain.lr_at(9));
  EXPECT_DOUBLE_EQ(w.lr_at(10), plain.lr_at(10));
  EXPECT_DOUBLE_EQ(w.lr_at(60), plain.lr_at(60));

  const LrSchedule s = make_lr_schedule(
      "step",
      {.base_lr = 0.4, .step_size = 3, .gamma = 0.5, .warmup_iterations = 4, .warmup_start_factor = 0.25});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);                         // 0.4 * 0.25
  EXPECT_DOUBLE_EQ(s.lr_at(2), 0.4 * (0.25 + 0.75 * 0.5));   // 0.25
  EXPECT_DOUBLE_EQ(s.lr_at(3), 0.2 * (0.25 + 0.75 * 0.75));  // decayed once, still warming
  EXPECT_DOUBLE_EQ(s.lr_at(4), 0.2);
}

TEST(LrSchedule, FactoryNamesAndValidation) {
  EXPECT_EQ(parse_lr_schedule_kind("multistep"), LrScheduleKind::MultiStep);
  for (auto k :
       {LrScheduleKind::Constant, LrScheduleKind::Step, LrScheduleKind::MultiStep, LrScheduleKind::Cosine})
    EXPECT_EQ(parse_lr_schedule_kind(lr_schedule_name(k)), k);
  const std::string unknown = error_of([] { make_lr_schedule("linear", {}); });
  EXPECT_NE(unknown.find("'linear'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("constant, step, multistep, cosine"), std::string::npos) << unknown;
  EXPECT_NE(error_of([] { make_lr_schedule("Cosine", {.total_iterations = 10}); }), "");  // names are case-sensitive

  struct Bad {
    const char* name;
    LrScheduleOptions options;
    const char* needle;
  };
  const Bad bad[] = {
      {"constant", {.base_lr = 0}, "base_lr = 0"},
      {"constant", {.base_lr = NAN}, "base_lr = nan"},
      {"constant", {.warmup_iterations = -1}, "warmup_iterations = -1"},
      {"constant", {.warmup_start_factor = 1.5}, "warmup_start_factor = 1.5"},
      {"step", {.step_size = 0}, "step_size = 0"},
      {"step", {.step_size = 10, .gamma = 0}, "gamma = 0"},
      {"step", {.step_size = 10, .gamma = INFINITY}, "gamma = inf"},
      {"multistep", {}, "at least one milestone"},
      {"multistep", {.milestones = {10, 10}}, "strictly increasing"},
      {"multistep", {.milestones = {20, 10}}, "milestones [20, 10]"},
      {"multistep", {.milestones = {0, 10}}, ">= 1"},
      {"cosine", {}, "total_iterations = 0"},
      {"cosine", {.total_iterations = -5}, "total_iterations = -5"},
      {"cosine", {.base_lr = 0.1, .total_iterations = 10, .min_lr = 0.2}, "min_lr = 0.2"},
      {"cosine", {.base_lr = 0.1, .total_iterations = 10, .min_lr = -0.01}, "min_lr = -0.01"},
      // Options of another schedule.
      {"cosine", {.step_size = 10, .total_iterations = 10}, "step_size only with the step schedule"},
      {"step", {.step_size = 10, .milestones = {5}}, "milestones only with the multistep schedule"},
      {"constant", {.total_iterations = 100}, "only with the cosine schedule"},
      {"multistep", {.milestones = {5}, .min_lr = 0.001}, "only with the cosine schedule"},
  };
  for (const Bad& b : bad) {
    const std::string m = error_of([&] { make_lr_schedule(b.name, b.options); });
    EXPECT_NE(m.find(b.needle), std::string::npos) << b.name << ": expected '" << b.needle << "' in: " << m;
  }
}
