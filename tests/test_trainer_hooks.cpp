// The Trainer's hooks (train/trainer_hooks.h): the order the loop calls them in, that what a hook
// does at after_backward / after_step reaches the model (the seams a gradient all-reduce and a
// pruning mask plug into), that a hook can keep a process from writing the run folder, and that
// one_shot_summary (`inq reproduce`) says nothing about BatchNorm for a model that has none.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "app_testing.h"
#include "framework/autograd.h"
#include "train/reproduce.h"
#include "train/trainer.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

TrainConfig tiny(const std::string& name) {
  TrainConfig c = test::small_lenet5_config(test::temp_path("hooks_" + name), /*train_limit=*/128);
  c.run.epochs = 2;
  c.optim.lr = 0.05;
  return c;
}

// Records every call, by name.
struct RecordingHook : TrainerHook {
  std::vector<std::string>* events;
  bool every_gradient_complete = true;
  explicit RecordingHook(std::vector<std::string>* e) : events(e) {}
  void on_resume(Trainer&, const SafetensorsFile&, const CheckpointContents&) override { events->push_back("resume"); }
  void on_fit_begin(Trainer&) override { events->push_back("fit_begin"); }
  void before_epoch(Trainer& t) override { events->push_back("before_epoch " + std::to_string(t.epoch())); }
  void after_backward(Trainer& t) override {
    events->push_back("after_backward");
    for (auto& p : t.model().named_parameters()) every_gradient_complete &= p.tensor.grad().defined();
  }
  void after_step(Trainer&) override { events->push_back("after_step"); }
  void on_evaluate(Trainer&, EvalResult&) override { events->push_back("evaluate"); }
  void on_epoch_end(Trainer& t, const EvalResult&) override {
    events->push_back("epoch_end " + std::to_string(t.epoch()));
  }
  void on_checkpoint(const Trainer&, CheckpointContents&) const override { events->push_back("checkpoint"); }
  void on_fit_end(Trainer&) override { events->push_back("fit_end"); }
  void add_results(const Trainer&, nlohmann::json& r) const override { r["recorded_by_hook"] = true; }
};

// A pruning-style mask: after every step, the first weight of conv1 is 0 again.
struct ZeroFirstWeightAfterStep : TrainerHook {
  void after_step(Trainer& t) override {
    for (auto& p : t.model().named_parameters())
      if (p.name == "conv1.weight") p.tensor.data()[0] = 0.0f;
  }
};

// What a gradient all-reduce would do to a process with nothing to add: here, erase the gradients.
struct ZeroGradientsAfterBackward : TrainerHook {
  void after_backward(Trainer& t) override {
    for (auto& p : t.model().named_parameters()) p.tensor.zero_grad();
  }
};

struct NotRankZero : TrainerHook {
  bool writes_run_folder() const override { return false; }
};

}  // namespace

TEST(TrainerHooks, AreCalledAtTheirPointsOfTheLoopInOrder) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  std::vector<std::string> events;
  TrainConfig c = tiny("order");
  std::vector<std::unique_ptr<TrainerHook>> hooks;
  auto recording = std::make_unique<RecordingHook>(&events);
  RecordingHook* rec = recording.get();
  hooks.push_back(std::move(recording));
  Trainer t(c, std::move(hooks));
  t.fit();
  // 128 images in batches of 64: two steps per epoch. Epoch 1 writes last and best (the first
  // epoch always improves on nothing); epoch 2 writes best only if it improved: 1 or 2 checkpoints.
  const std::vector<std::string> epoch = {"after_backward", "after_step", "after_backward", "after_step", "evaluate"};
  std::vector<std::string> want = {"fit_begin", "before_epoch 0"};
  want.insert(want.end(), epoch.begin(), epoch.end());
  want.insert(want.end(), {"epoch_end 1", "checkpoint", "checkpoint", "before_epoch 1"});
  want.insert(want.end(), epoch.begin(), epoch.end());
  want.insert(want.end(), {"epoch_end 2", "checkpoint"});
  std::vector<std::string> got = events;
  const auto second_best = got.begin() + static_cast<std::ptrdiff_t>(want.size());
  if (second_best != got.end() && *second_best == "checkpoint") got.erase(second_best);
  want.insert(want.end(), {"before_epoch 2", "fit_end", "evaluate"});  // fit() returns an evaluation
  EXPECT_EQ(got, want);
  EXPECT_TRUE(rec->every_gradient_complete);
  EXPECT_NE(read_file(c.run.out + "/results.json").find("\"recorded_by_hook\": true"), std::string::npos);

  // A resumed run calls on_resume before fit begins.
  events.clear();
  TrainConfig r = c;
  r.run.resume = c.run.out + "/last.safetensors";
  r.run.epochs = 3;
  std::vector<std::unique_ptr<TrainerHook>> again;
  again.push_back(std::make_unique<RecordingHook>(&events));
  Trainer resumed(r, std::move(again));
  resumed.fit();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0], "resume");
  EXPECT_EQ(events[1], "fit_begin");
  EXPECT_EQ(events[2], "before_epoch 2");
  fs::remove_all(c.run.out);
}

TEST(TrainerHooks, WhatAHookDoesToGradientsAndWeightsReachesTheModel) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  // Zeroed gradients, no momentum or decay: SGD leaves every weight where it started.
  TrainConfig c = tiny("zero_grad");
  c.run.epochs = 1;
  c.optim.weight_decay = 0;
  Trainer untouched_reference(c);  // the initial weights, same seed
  const auto initial = test::values_of(untouched_reference.model());
  c.run.force = true;
  std::vector<std::unique_ptr<TrainerHook>> hooks;
  hooks.push_back(std::make_unique<ZeroGradientsAfterBackward>());
  Trainer frozen(c, std::move(hooks));
  frozen.fit();
  EXPECT_EQ(test::values_of(frozen.model()), initial);

  // A mask applied after each step holds.
  TrainConfig m = tiny("mask");
  m.run.epochs = 1;
  std::vector<std::unique_ptr<TrainerHook>> mask;
  mask.push_back(std::make_unique<ZeroFirstWeightAfterStep>());
  Trainer masked(m, std::move(mask));
  masked.fit();
  for (auto& p : masked.model().named_parameters())
    if (p.name == "conv1.weight") {
      EXPECT_EQ(p.tensor.data()[0], 0.0f);
      EXPECT_NE(p.tensor.data()[1], 0.0f);
    }
  fs::remove_all(c.run.out);
  fs::remove_all(m.run.out);
}

TEST(TrainerHooks, AProcessThatIsNotRankZeroWritesNothing) {
  if (!test::have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TrainConfig c = tiny("not_rank_zero");
  c.run.epochs = 1;
  std::vector<std::unique_ptr<TrainerHook>> hooks;
  hooks.push_back(std::make_unique<NotRankZero>());
  Trainer t(c, std::move(hooks));
  t.fit();
  EXPECT_FALSE(fs::exists(c.run.out)) << "the run folder was created";
  EXPECT_EQ(t.epoch(), 1);
}

TEST(Reproduce, OneShotSummaryMentionsBatchNormOnlyWhenItWasReestimated) {
  const std::string lenet = one_shot_summary(5, 1, 0.5091, 0.5091, /*bn_batches_used=*/0);
  EXPECT_EQ(lenet, "one-shot 5-bit (seed 1): Acc@1 50.910");
  const std::string resnet = one_shot_summary(3, 2, 0.1166, 0.8473, 200);
  EXPECT_EQ(resnet, "one-shot 3-bit (seed 2): Acc@1 84.730 (11.660 before re-estimating BatchNorm over 200 batches)");
}
