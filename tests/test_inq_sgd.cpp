// InqSgd and the INQ state (docs/INQ_SPEC.md sections 1, 4, 5, 8): a golden trajectory computed
// independently (tests/golden/inq_golden.py), frozen weights bit-identical under momentum and weight
// decay, the final verification, a planted bad weight, state save/load resuming identically, strict
// load errors, which tensors are quantized, one-shot quantization, and a tiny end-to-end run.
#include <gtest/gtest.h>

#include "golden_testing.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "error_testing.h"
#include "framework/autograd.h"
#include "framework/error.h"
#include "framework/random.h"
#include "framework/safetensors.h"
#include "golden/inq_golden.h"
#include "inq/inq_sgd.h"
#include "inq/quantizer.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "tensor_testing.h"

using namespace inq;
using test::bit_equal;
using test::error_of;
using test::param_from;

namespace {

// ---- the golden scenario ----

struct GoldenRun {
  Tensor conv, fc, bias;
  std::unique_ptr<InqSgd> opt;
  GoldenRun() {
    using namespace inq_golden;
    conv = param_from({6}, kConv0);
    fc = param_from({2, 4}, kFc0);
    bias = param_from({3}, kBias0);
    opt = std::make_unique<InqSgd>(
        std::vector<ParamGroup>{
            ParamGroup{
                .params = {{"conv.weight", conv, ParamRole::Weight}, {"fc.weight", fc, ParamRole::Weight}},
                .weight_decay = kWeightDecay},
            ParamGroup{
                .params = {{"fc.bias", bias, ParamRole::Bias}}, .weight_decay = 0, .lr_scale = kBiasLrScale}},
        SgdOptions{.lr = kLr, .momentum = kMomentum, .dampening = kDampening},
        InqOptions{.bits = kBits, .portions = {kPortions, kPortions + kSteps}});
  }
};

using test::expect_near_all;
using test::set_golden_grad;

// ---- a small problem with random gradients ----

struct Problem {
  Tensor w, v, b;  // w (4, 5) and v (7) are weights, b (4) a bias
  std::vector<NamedParameter> params;
  explicit Problem(uint64_t seed) {
    Generator gen(seed);
    auto make = [&](const Shape& s) {
      Tensor t = Tensor::empty(s);
      for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(gen.normal(0, 0.3));
      t.set_requires_grad(true);
      return t;
    };
    w = make({4, 5});
    v = make({7});
    b = make({4});
    params = {{"layer.w", w, ParamRole::Weight},
              {"layer.v", v, ParamRole::Weight},
              {"layer.b", b, ParamRole::Bias}};
  }
  // Gradients depend on the step only, so two runs see the same ones; large enough to move anything.
  void set_grads(int step) {
    Generator gen(1000 + static_cast<uint64_t>(step));
    for (auto& p : params) {
      Tensor g = Tensor::empty(p.tensor.shape());
      for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = static_cast<float>(gen.normal());
      p.tensor.set_grad(g);
    }
  }
  std::unique_ptr<InqSgd> optimizer(const SgdOptions& sgd, const InqOptions& inq) const {
    return std::make_unique<InqSgd>(make_param_groups(params, 5e-4), sgd, inq);
  }
  void copy_values_from(const Problem& other) {
    for (size_t i = 0; i < params.size(); ++i) params[i].tensor.copy_from(other.params[i].tensor);
  }
};

const SgdOptions kMomentumSgd{.lr = 0.05, .momentum = 0.9, .dampening = 0.1};

}  // namespace

TEST(InqSgdGolden, MatchesIndependentTrajectory) {
  using namespace inq_golden;
  GoldenRun run;
  InqSgd& opt = *run.opt;
  size_t snap = 0;
  int t = 0;
  auto check = [&](const std::string& when) {
    ASSERT_LT(snap, std::size(kTrajectory));
    const Snapshot& s = kTrajectory[snap++];
    SCOPED_TRACE(when + " / golden " + s.what);
    expect_near_all(run.conv, s.conv, "conv.weight");
    expect_near_all(run.fc, s.fc, "fc.weight");
    expect_near_all(run.bias, s.bias, "fc.bias");
  };
  for (int k = 1; k <= kSteps; ++k) {
    opt.begin_step(k);
    check(fmt::format("after begin_step({})", k));
    const InqParamState* conv = opt.inq_record("conv.weight");
    const InqParamState* fc = opt.inq_record("fc.weight");
    ASSERT_NE(conv, nullptr);
    ASSERT_NE(fc, nullptr);
    EXPECT_EQ(opt.inq_record("fc.bias"), nullptr);
    EXPECT_EQ(conv->codebook, (Codebook{.bits = kBits, .n1 = kConvN1, .n2 = kConvN2}));
    EXPECT_EQ(fc->codebook, (Codebook{.bits = kBits, .n1 = kFcN1, .n2 = kFcN2}));
    for (int i = 0; i < 6; ++i) EXPECT_EQ(conv->mask.data()[i], kConvMask[k - 1][i]) << "conv mask " << i;
    for (int i = 0; i < 8; ++i) EXPECT_EQ(fc->mask.data()[i], kFcMask[k - 1][i]) << "fc mask " << i;
    // Frozen entries are exact powers of two in both computations.
    for (int i = 0; i < 8; ++i)
      if (kFcMask[k - 1][i] == 0) {
        EXPECT_EQ(run.fc.data()[i], static_cast<float>(kTrajectory[snap - 1].fc[i]));
      }
    for (int r = 0; r < kRetrain; ++r, ++t) {
      set_golden_grad(run.conv, kConvTarget, t);
      set_golden_grad(run.fc, kFcTarget, t);
      set_golden_grad(run.bias, kBiasTarget, t);
      opt.step();
      check(fmt::format("after SGD step {}", t));
    }
  }
  EXPECT_EQ(snap, std::size(kTrajectory));
  EXPECT_TRUE(opt.finished());
  EXPECT_TRUE(opt.verify().empty());
}

TEST(InqSgd, BeforeStepOneItIsPlainSgd) {
  Problem a(1), b(1);
  auto inq = a.optimizer(kMomentumSgd, {});
  Sgd sgd(make_param_groups(b.params, 5e-4), kMomentumSgd);
  for (int s = 0; s < 5; ++s) {
    a.set_grads(s);
    b.set_grads(s);
    inq->step();
    sgd.step();
  }
  for (size_t i = 0; i < a.params.size(); ++i) EXPECT_TRUE(bit_equal(a.params[i].tensor, b.params[i].tensor));
  EXPECT_EQ(inq->inq_record("layer.w"), nullptr);
}

TEST(InqSgd, FrozenWeightsStayBitIdenticalUnderMomentumAndWeightDecay) {
  for (const SgdOptions& sgd :
       {kMomentumSgd, SgdOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true}, SgdOptions{.lr = 0.1}}) {
    Problem pr(2);
    auto opt = pr.optimizer(sgd, {.bits = 4, .portions = {0.3, 0.6, 0.9, 1}});
    int step = 0;
    std::vector<Tensor> previous_masks;
    for (int k = 1; k <= opt->num_steps(); ++k) {
      opt->begin_step(k);
      EXPECT_EQ(opt->state("layer.w"), nullptr) << "momentum must be reset at step " << k;
      std::vector<Tensor> masks, frozen_values;
      for (const auto& p : opt->quantized()) {
        const Tensor& mask = opt->inq_record(p.name)->mask;
        masks.push_back(mask.clone());
        frozen_values.push_back(p.tensor.clone());
      }
      // The frozen set only grows.
      for (size_t j = 0; j < previous_masks.size(); ++j)
        for (int64_t i = 0; i < masks[j].numel(); ++i)
          if (previous_masks[j].data()[i] == 0) {
            EXPECT_EQ(masks[j].data()[i], 0) << "unfrozen at step " << k;
          }
      previous_masks = masks;
      const Tensor bias_before = pr.b.clone();
      for (int r = 0; r < 40; ++r) {
        pr.set_grads(step++);
        opt->step();
      }
      EXPECT_FALSE(bit_equal(pr.b, bias_before)) << "the bias keeps training";
      for (size_t j = 0; j < opt->quantized().size(); ++j) {
        const Tensor& w = opt->quantized()[j].tensor;
        int64_t moved = 0;
        for (int64_t i = 0; i < w.numel(); ++i) {
          if (masks[j].data()[i] == 0) {
            ASSERT_TRUE(bit_equal(w.data()[i], frozen_values[j].data()[i]))
                << opt->quantized()[j].name << "[" << i << "] moved at INQ step " << k;
          } else {
            moved += w.data()[i] != frozen_values[j].data()[i];
          }
        }
        EXPECT_EQ(moved, w.numel() - opt->inq_record(opt->quantized()[j].name)->frozen)
            << "float weights train";
        // Momentum entries of frozen weights stay exactly zero.
        if (sgd.momentum != 0) {
          const Tensor& buf = opt->state(opt->quantized()[j].name)->momentum_buffer;
          for (int64_t i = 0; i < w.numel(); ++i)
            if (masks[j].data()[i] == 0) {
              EXPECT_EQ(buf.data()[i], 0.0f);
            }
        }
      }
    }
  }
}

TEST(InqSgd, AfterTheLastStepEveryWeightVerifies) {
  Problem pr(3);
  auto opt = pr.optimizer(kMomentumSgd, {.bits = 3});
  EXPECT_EQ(opt->inq_options().portions, portion_preset("3bit"));
  EXPECT_THROW(opt->verify(), Error);  // no codebooks yet
  for (int k = 1; k <= opt->num_steps(); ++k) {
    EXPECT_FALSE(opt->finished());
    opt->begin_step(k);
    for (int r = 0; r < 3; ++r) {
      pr.set_grads(k * 10 + r);
      opt->step();
    }
  }
  EXPECT_TRUE(opt->finished());
  EXPECT_TRUE(opt->verify().empty());
  for (const auto& p : opt->quantized()) {
    const InqParamState& rec = *opt->inq_record(p.name);
    EXPECT_EQ(rec.frozen, p.tensor.numel());
    for (int64_t i = 0; i < p.tensor.numel(); ++i) {
      EXPECT_EQ(rec.mask.data()[i], 0.0f);
      EXPECT_TRUE(rec.codebook.contains(p.tensor.data()[i]))
          << p.name << "[" << i << "] = " << p.tensor.data()[i];
    }
  }
  for (const auto& row : opt->report()) EXPECT_EQ(row.frozen_fraction, 1.0);
  EXPECT_THROW(opt->begin_step(opt->num_steps() + 1), Error);
}

TEST(InqSgd, PlantedBadWeightIsCaught) {
  Problem pr(4);
  auto opt = pr.optimizer(kMomentumSgd, {.bits = 5, .portions = {1}});
  opt->begin_step(1);
  ASSERT_TRUE(opt->verify().empty());
  const Codebook cb = opt->inq_record("layer.v")->codebook;
  const float planted[] = {0.3f, std::ldexp(1.0f, cb.n1 + 1), std::ldexp(1.0f, cb.n2 - 1), -0.0f, NAN};
  for (const float bad : planted) {
    const float saved = pr.v.data()[5];
    pr.v.data()[5] = bad;
    const auto offenders = opt->verify();
    ASSERT_EQ(offenders.size(), 1u) << bad;
    EXPECT_EQ(offenders[0].name, "layer.v");
    EXPECT_EQ(offenders[0].index, 5);
    EXPECT_TRUE(bit_equal(offenders[0].value, bad) || (std::isnan(bad) && std::isnan(offenders[0].value)));
    NamedTensorList tensors;
    for (const auto& p : opt->quantized()) tensors.emplace_back(p.name, p.tensor);
    const std::string m = error_of([&] { check_quantized(tensors, codebooks_of(opt->inq_state())); });
    EXPECT_NE(m.find("layer.v[5]"), std::string::npos) << m;
    pr.v.data()[5] = saved;
  }
  EXPECT_TRUE(opt->verify().empty());
}

TEST(InqSgd, BeginStepRefusesFrozenWeightsChangedBehindItsBack) {
  Problem pr(5);
  auto opt = pr.optimizer(kMomentumSgd, {.bits = 5});
  opt->begin_step(1);
  const InqParamState* rec = opt->inq_record("layer.w");
  int64_t frozen_index = 0;
  while (rec->mask.data()[frozen_index] != 0) ++frozen_index;
  pr.w.data()[frozen_index] += 0.001f;
  const Tensor v_before = pr.v.clone();
  const std::string m = error_of([&] { opt->begin_step(2); });
  EXPECT_NE(m.find("layer.w"), std::string::npos) << m;
  EXPECT_EQ(opt->steps_begun(), 1);
  EXPECT_TRUE(bit_equal(pr.v, v_before)) << "nothing may change when a step is refused";
}

TEST(InqSgd, StepOrderIsEnforced) {
  Problem pr(6);
  auto opt = pr.optimizer(kMomentumSgd, {.bits = 5});
  EXPECT_THROW(opt->begin_step(0), Error);
  EXPECT_THROW(opt->begin_step(2), Error);
  opt->begin_step(1);
  EXPECT_THROW(opt->begin_step(1), Error);
  EXPECT_THROW(opt->begin_step(3), Error);
  opt->begin_step(2);
  EXPECT_EQ(opt->steps_begun(), 2);
}

TEST(InqSgd, NonFiniteWeightsNameTheTensorAndChangeNothing) {
  Problem pr(7);
  auto opt = pr.optimizer(kMomentumSgd, {.bits = 5});
  pr.v.data()[3] = NAN;
  const Tensor w_before = pr.w.clone();
  const std::string m = error_of([&] { opt->begin_step(1); });
  EXPECT_NE(m.find("layer.v"), std::string::npos) << m;
  EXPECT_EQ(opt->steps_begun(), 0);
  EXPECT_EQ(opt->inq_record("layer.w"), nullptr);
  EXPECT_TRUE(bit_equal(pr.w, w_before));
}

TEST(InqSgd, RejectsBadOptions) {
  Problem pr(8);
  EXPECT_THROW(pr.optimizer(kMomentumSgd, {.bits = 1}), Error);
  EXPECT_THROW(pr.optimizer(kMomentumSgd, {.bits = 5, .portions = {0.5, 0.4, 1}}), Error);
  EXPECT_THROW(pr.optimizer(kMomentumSgd, {.bits = 7}), Error);  // no default schedule for 7 bits
  EXPECT_NO_THROW(pr.optimizer(kMomentumSgd, {.bits = 7, .portions = {0.5, 1}}));
  EXPECT_THROW(pr.optimizer(kMomentumSgd, {.bits = 5, .exclude = {""}}), Error);
}

TEST(InqSgd, QuantizesOnlyConvAndLinearWeightsMinusExcluded) {
  seed_all(3);
  Sequential model;
  model.add(std::make_shared<Conv2d>(Conv2dOptions{.in_channels = 1, .out_channels = 2, .kernel_size = 3}))
      .add(std::make_shared<BatchNorm2d>(2))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<Flatten>())
      .add(std::make_shared<Linear>(LinearOptions{.in_features = 8, .out_features = 3}));
  auto names = [](const InqSgd& opt) {
    std::vector<std::string> out;
    for (const auto& p : opt.quantized()) out.push_back(p.name);
    return out;
  };
  const auto params = model.named_parameters();
  {
    InqSgd opt(make_param_groups(params, 1e-4), kMomentumSgd, {.bits = 4});
    EXPECT_EQ(names(opt), (std::vector<std::string>{"0.weight", "4.weight"}));
    std::vector<Tensor> before;
    for (const auto& p : params) before.push_back(p.tensor.clone());
    opt.begin_step(1);
    for (size_t i = 0; i < params.size(); ++i)
      if (params[i].role != ParamRole::Weight) {
        EXPECT_TRUE(bit_equal(params[i].tensor, before[i])) << params[i].name << " must not be quantized";
      }
    for (const auto& buffer : model.named_buffers()) EXPECT_EQ(opt.inq_record(buffer.name), nullptr);
  }
  {
    InqSgd opt(make_param_groups(params, 1e-4), kMomentumSgd, {.bits = 4, .exclude = {"4.*"}});
    EXPECT_EQ(names(opt), (std::vector<std::string>{"0.weight"}));
  }
  EXPECT_TRUE(glob_match("layer?.*.conv*", "layer1.0.conv2.weight"));
  EXPECT_FALSE(glob_match("layer?.*.conv*", "layer1.0.bn1.weight"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_FALSE(glob_match("fc", "fc.weight"));  // whole-name match
  const std::string typo =
      error_of([&] { InqSgd(make_param_groups(params, 0), kMomentumSgd, {.exclude = {"fc.*"}}); });
  EXPECT_NE(typo.find("fc.*"), std::string::npos) << typo;
  EXPECT_THROW(InqSgd(make_param_groups(params, 0), kMomentumSgd, {.exclude = {"*.weight"}}),
               Error);  // nothing left
}

TEST(InqSgd, ReportCountsLevelsAndSaturation) {
  Tensor w = Tensor::from_vector({6}, {0.9f, -0.5f, 0.26f, 0.1f, -0.01f, 0.03f});
  w.set_requires_grad(true);
  InqSgd opt({ParamGroup{.params = {{"w", w, ParamRole::Weight}}}}, {.lr = 0.1},
             {.bits = 3, .portions = {0.5, 1}});
  opt.begin_step(1);  // n1 = 0, n2 = -1: {0, +-0.5, +-1}; freezes 0.9 -> 1, -0.5 -> -0.5, 0.26 -> 0.5
  auto rows = opt.report();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].name, "w");
  EXPECT_EQ(rows[0].numel, 6);
  EXPECT_EQ(rows[0].bits, 3);
  EXPECT_EQ(rows[0].n1, 0);
  EXPECT_EQ(rows[0].n2, -1);
  EXPECT_EQ(rows[0].step, 1);
  EXPECT_EQ(rows[0].frozen, 3);
  EXPECT_DOUBLE_EQ(rows[0].frozen_fraction, 0.5);
  EXPECT_EQ(rows[0].levels_used, 3);
  EXPECT_EQ(rows[0].saturated, 0);
  // A still-float weight that grew past 1.5 * 2^n1 (as re-training can do) saturates when frozen.
  w.data()[3] = 2.5f;
  opt.begin_step(2);
  rows = opt.report();
  EXPECT_EQ(rows[0].saturated, 1);
  EXPECT_EQ(w.data()[3], 1.0f);
  EXPECT_EQ(rows[0].levels_used, 4);  // 1, -0.5, 0.5, 0 (both small ones quantize to 0)
  const std::string table = format_inq_report(rows);
  EXPECT_NE(table.find("saturated"), std::string::npos) << table;
  EXPECT_NE(table.find("100.00%"), std::string::npos) << table;
}

TEST(InqSgd, StateRoundTripResumesBitForBit) {
  // Random strategy, so the generator's position matters too.
  const InqOptions inq{
      .bits = 4, .portions = {0.3, 0.6, 0.8, 1}, .strategy = PartitionStrategy::Random, .seed = 77};
  Problem a(9);
  auto opt_a = a.optimizer(kMomentumSgd, inq);
  int step = 0;
  auto retrain = [&](Problem& pr, InqSgd& opt, int from) {
    for (int r = 0; r < 4; ++r) {
      pr.set_grads(from + r);
      opt.step();
    }
  };
  opt_a->begin_step(1);
  retrain(a, *opt_a, step);
  step += 4;
  opt_a->begin_step(2);
  retrain(a, *opt_a, step);
  step += 4;
  // Save: weights, optimizer tensors and metadata, through a safetensors image.
  StoredTensors stored;
  for (const auto& p : a.params)
    stored.emplace_back("model." + p.name, StoredTensor::from_tensor(p.tensor.clone()));
  for (const auto& [name, t] : opt_a->state_tensors())
    stored.emplace_back("optimizer." + name, StoredTensor::from_tensor(t));
  const auto bytes = serialize_safetensors(stored, {{"inq_state", opt_a->inq_metadata()}});
  // Run A continues.
  const int resume_step = step;
  retrain(a, *opt_a, step);
  opt_a->begin_step(3);
  retrain(a, *opt_a, step + 4);
  opt_a->begin_step(4);

  // Run B: fresh tensors and optimizer, loaded from the file image.
  const SafetensorsFile file = parse_safetensors(bytes, "resume");
  Problem b(12345);  // different initial values, overwritten below
  for (auto& p : b.params) p.tensor.copy_from(file.find("model." + p.name)->f32);
  auto opt_b = b.optimizer(kMomentumSgd, inq);
  NamedTensorList state;
  for (const auto& [name, t] : file.tensors)
    if (name.rfind("optimizer.", 0) == 0) state.emplace_back(name.substr(10), t.f32);
  opt_b->load_state(state, file.metadata.at("inq_state"));
  EXPECT_EQ(opt_b->steps_begun(), 2);
  retrain(b, *opt_b, resume_step);
  opt_b->begin_step(3);
  retrain(b, *opt_b, resume_step + 4);
  opt_b->begin_step(4);

  for (size_t i = 0; i < a.params.size(); ++i)
    EXPECT_TRUE(bit_equal(a.params[i].tensor, b.params[i].tensor)) << a.params[i].name;
  for (const auto& p : opt_a->quantized()) {
    EXPECT_TRUE(bit_equal(opt_a->inq_record(p.name)->mask, opt_b->inq_record(p.name)->mask));
    EXPECT_EQ(opt_a->inq_record(p.name)->saturated, opt_b->inq_record(p.name)->saturated);
    EXPECT_EQ(opt_a->inq_record(p.name)->codebook, opt_b->inq_record(p.name)->codebook);
  }
  EXPECT_EQ(opt_a->inq_metadata(), opt_b->inq_metadata());
  EXPECT_TRUE(opt_b->verify().empty());
}

TEST(InqSgd, StateBeforeStepOneLoadsWithoutMetadata) {
  Problem pr(10);
  auto opt = pr.optimizer(kMomentumSgd, {.bits = 5});
  pr.set_grads(0);
  opt->step();
  const NamedTensorList state = opt->state_tensors();
  for (const auto& [name, t] : state) EXPECT_FALSE(is_inq_state_tensor(name)) << name;
  auto fresh = pr.optimizer(kMomentumSgd, {.bits = 5});
  fresh->load_state_tensors(state);
  EXPECT_NE(fresh->state("layer.w"), nullptr);
  // After step 1 the masks need their metadata.
  opt->begin_step(1);
  const std::string m = error_of([&] { fresh->load_state_tensors(opt->state_tensors()); });
  EXPECT_NE(m.find("layer.w.inq_mask"), std::string::npos) << m;
  EXPECT_EQ(fresh->steps_begun(), 0);
  // The metadata before step 1 round-trips too.
  auto other = pr.optimizer(kMomentumSgd, {.bits = 5});
  auto fresh2 = pr.optimizer(kMomentumSgd, {.bits = 5});
  EXPECT_NO_THROW(fresh2->load_state({}, other->inq_metadata()));
}

TEST(InqSgd, LoadStateIsStrict) {
  Problem pr(11);
  const InqOptions inq{.bits = 5};
  auto src = pr.optimizer(kMomentumSgd, inq);
  src->begin_step(1);
  pr.set_grads(0);
  src->step();
  const NamedTensorList good_tensors = src->state_tensors();
  const std::string good_meta = src->inq_metadata();
  const auto good_json = nlohmann::json::parse(good_meta);

  auto target = pr.optimizer(kMomentumSgd, inq);
  target->load_state(good_tensors, good_meta);  // the good state loads
  ASSERT_EQ(target->steps_begun(), 1);
  const std::string before = target->inq_metadata();

  auto with_json = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good_json;
    edit(j);
    return j.dump();
  };
  auto with_mask = [&](const std::string& name, const std::function<void(Tensor&)>& edit) {
    NamedTensorList t;
    for (const auto& [n, v] : good_tensors) {
      Tensor c = v.clone();
      if (n == name) edit(c);
      t.emplace_back(n, c);
    }
    return t;
  };
  NamedTensorList no_w_mask, extra_mask = good_tensors, duplicate = good_tensors;
  for (const auto& e : good_tensors)
    if (e.first != "layer.w.inq_mask") no_w_mask.push_back(e);
  extra_mask.emplace_back("layer.b.inq_mask", Tensor::zeros({4}));
  duplicate.push_back(good_tensors.back());

  const struct {
    const char* what;
    NamedTensorList tensors;
    std::string meta;
    const char* expect_in_message;
  } cases[] = {
      {"not JSON", good_tensors, "{", "JSON"},
      {"duplicate key", good_tensors, R"({"bits": 5, "bits": 5})", "more than once"},
      {"array", good_tensors, "[]", "JSON object"},
      {"unknown key", good_tensors, with_json([](auto& j) { j["extra"] = 1; }), "unknown key 'extra'"},
      {"missing key", good_tensors, with_json([](auto& j) { j.erase("generator"); }),
       "missing key 'generator'"},
      {"format", good_tensors, with_json([](auto& j) { j["format"] = "other"; }), "format"},
      {"version", good_tensors, with_json([](auto& j) { j["version"] = 2; }), "version"},
      {"bits", good_tensors, with_json([](auto& j) { j["bits"] = 4; }), "bits is 4"},
      {"portions", good_tensors, with_json([](auto& j) {
         j["portions"] = {0.25, 1};
       }),
       "portions"},
      {"strategy", good_tensors, with_json([](auto& j) { j["strategy"] = "random"; }), "strategy"},
      {"seed", good_tensors, with_json([](auto& j) { j["seed"] = 1; }), "seed"},
      {"exclude", good_tensors, with_json([](auto& j) { j["exclude"] = {"x"}; }), "exclude"},
      {"steps_begun", good_tensors, with_json([](auto& j) { j["steps_begun"] = 9; }), "steps_begun is 9"},
      {"generator", good_tensors, with_json([](auto& j) { j["generator"] = "garbage"; }), "generator"},
      {"n2", good_tensors, with_json([](auto& j) { j["tensors"]["layer.w"]["n2"] = -3; }), "n2"},
      {"n1 type", good_tensors, with_json([](auto& j) { j["tensors"]["layer.w"]["n1"] = 0.5; }), "integer"},
      {"frozen", good_tensors, with_json([](auto& j) { j["tensors"]["layer.w"]["frozen"] = 11; }),
       "frozen is 11"},
      {"numel", good_tensors, with_json([](auto& j) { j["tensors"]["layer.w"]["numel"] = 21; }),
       "numel is 21"},
      {"step", good_tensors, with_json([](auto& j) { j["tensors"]["layer.w"]["step"] = 2; }), "step is 2"},
      {"unknown tensor", good_tensors,
       with_json([](auto& j) { j["tensors"]["layer.x"] = j["tensors"]["layer.w"]; }), "layer.x"},
      {"missing tensor", good_tensors, with_json([](auto& j) { j["tensors"].erase("layer.v"); }), "layer.v"},
      {"missing mask", no_w_mask, good_meta, "'layer.w.inq_mask' is missing"},
      {"extra mask", extra_mask, good_meta, "layer.b.inq_mask"},
      {"duplicate mask", duplicate, good_meta, "more than once"},
      {"mask shape", with_mask("layer.w.inq_mask", [](Tensor& t) { t = Tensor::zeros({20}); }), good_meta,
       "shape"},
      {"mask value", with_mask("layer.w.inq_mask", [](Tensor& t) { t.data()[0] = 0.5f; }), good_meta,
       "other than 0 and 1"},
      {"mask count", with_mask("layer.w.inq_mask", [](Tensor& t) { t.fill_(1.0f); }), good_meta,
       "frozen entries"},
      {"momentum", with_mask("layer.w.momentum_buffer", [](Tensor& t) { t = Tensor::zeros({3}); }), good_meta,
       "momentum_buffer"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string m = error_of([&] { target->load_state(c.tensors, c.meta); });
    EXPECT_NE(m.find(c.expect_in_message), std::string::npos) << m;
    EXPECT_EQ(target->inq_metadata(), before) << "a refused load must change nothing";
    EXPECT_EQ(target->steps_begun(), 1);
  }
  // Several problems are reported together.
  const std::string both =
      error_of([&] { target->load_state(no_w_mask, with_json([](auto& j) { j["bits"] = 4; })); });
  EXPECT_NE(both.find("bits is 4"), std::string::npos) << both;
  EXPECT_NE(both.find("layer.w.inq_mask"), std::string::npos) << both;
}

TEST(InqOneShot, QuantizesEveryWeightAtOnce) {
  seed_all(5);
  Sequential model;
  model.add(std::make_shared<Linear>(LinearOptions{.in_features = 6, .out_features = 5}))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<Linear>(LinearOptions{.in_features = 5, .out_features = 2}));
  const auto params = model.named_parameters();
  std::vector<Tensor> before;
  for (const auto& p : params) before.push_back(p.tensor.clone());
  const InqState state = quantize_one_shot(params, 3);
  EXPECT_EQ(state.steps_begun, 1);
  ASSERT_EQ(state.params.size(), 2u);
  NamedTensorList weights;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    if (p.role != ParamRole::Weight) {
      EXPECT_TRUE(bit_equal(p.tensor, before[i])) << p.name;
      continue;
    }
    weights.emplace_back(p.name, p.tensor);
    const InqParamState& rec = state.params.at(p.name);
    EXPECT_EQ(rec.codebook, make_codebook(before[i], 3, p.name));
    EXPECT_EQ(rec.frozen, p.tensor.numel());
    for (int64_t j = 0; j < p.tensor.numel(); ++j)
      EXPECT_TRUE(bit_equal(p.tensor.data()[j], quantize_value(before[i].data()[j], rec.codebook).value));
  }
  EXPECT_TRUE(verify_quantized(weights, codebooks_of(state)).empty());
  EXPECT_THROW(verify_quantized(weights, {}), Error);  // names must match
}

TEST(InqEndToEnd, TinyModelTrainedThenIncrementallyQuantized) {
  seed_all(21);
  auto model = std::make_shared<Sequential>();
  model->add(std::make_shared<Linear>(LinearOptions{.in_features = 4, .out_features = 16}))
      .add(std::make_shared<ReLU>())
      .add(std::make_shared<Linear>(LinearOptions{.in_features = 16, .out_features = 3}));
  // A separable 3-class problem: the class is the argmax of three fixed linear scores.
  Generator gen(4);
  const int64_t n = 96;
  Tensor x = Tensor::empty({n, 4});
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) {
    float* r = x.data() + i * 4;
    for (int j = 0; j < 4; ++j) r[j] = static_cast<float>(gen.normal());
    const float s[3] = {r[0] + r[1], r[2] - r[0], r[3] - r[1]};
    y[i] = std::max_element(s, s + 3) - s;
  }
  auto train = [&](Optimizer& opt, int steps) {
    double loss = 0;
    for (int s = 0; s < steps; ++s) {
      opt.zero_grad();
      Tensor l = cross_entropy((*model)(x), y);
      l.backward();
      opt.step();
      loss = l.item();
    }
    return loss;
  };
  auto accuracy = [&] {
    NoGradGuard guard;
    return static_cast<double>(count_correct_topk((*model)(x), y, 1)) / n;
  };
  const auto params = model->named_parameters();
  Sgd fp(make_param_groups(params, 1e-4), {.lr = 0.2, .momentum = 0.9});
  train(fp, 60);
  const double fp_acc = accuracy();
  EXPECT_GT(fp_acc, 0.8);

  InqSgd opt(make_param_groups(params, 1e-4), {.lr = 0.05, .momentum = 0.9}, {.bits = 5});
  for (int k = 1; k <= opt.num_steps(); ++k) {
    opt.begin_step(k);
    if (!opt.finished()) {
      EXPECT_TRUE(std::isfinite(train(opt, 10)));
    }
  }
  EXPECT_TRUE(opt.verify().empty());
  for (const auto& p : opt.quantized()) {
    const Codebook cb = opt.inq_record(p.name)->codebook;
    for (int64_t i = 0; i < p.tensor.numel(); ++i) {
      const float v = p.tensor.data()[i];
      if (v == 0) continue;
      int e = 0;
      EXPECT_EQ(std::frexp(std::fabs(v), &e), 0.5f)
          << p.name << "[" << i << "] = " << v << " is not a power of two";
      EXPECT_GE(e - 1, cb.n2);
      EXPECT_LE(e - 1, cb.n1);
    }
  }
  // 5-bit INQ keeps the separable toy problem nearly as well as float (measured: 1.00 -> 0.99).
  EXPECT_GT(accuracy(), 0.9) << "float accuracy was " << fp_acc;
}
