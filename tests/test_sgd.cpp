// SGD: golden trajectories against torch.optim.SGD, parameter groups, the masking hook INQ uses,
// and state save/load giving an identical continuation.
#include <gtest/gtest.h>

#include "golden_testing.h"

#include <cmath>
#include <cstring>

#include "framework/allocator.h"
#include "framework/error.h"
#include "framework/random.h"
#include "framework/threading.h"
#include "golden/sgd_golden.h"
#include "optim/sgd.h"
#include "tensor_testing.h"

using namespace inq;

namespace {

using test::bit_equal;
using test::expect_near_all;
using test::param_from;
using test::set_golden_grad;

// A parameter with random values and a fixed random gradient per step.
struct Problem {
  std::vector<NamedParameter> params;
  explicit Problem(uint64_t seed) {
    Generator gen(seed);
    for (auto [name, shape, role] :
         {std::tuple<const char*, Shape, ParamRole>{"conv.weight", {3, 2, 2}, ParamRole::Weight},
          {"conv.bias", {3}, ParamRole::Bias},
          {"bn.weight", {3}, ParamRole::Norm}}) {
      Tensor t = Tensor::empty(shape);
      for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(gen.normal());
      t.set_requires_grad(true);
      params.push_back({name, t, role});
    }
  }
  // Gradients depend on the step index only, so two runs see the same ones.
  void set_grads(int step) {
    Generator gen(1000 + static_cast<uint64_t>(step));
    for (auto& p : params) {
      Tensor g = Tensor::empty(p.tensor.shape());
      for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = static_cast<float>(gen.normal());
      p.tensor.set_grad(g);
    }
  }
  std::vector<float> values() const {
    std::vector<float> out;
    for (const auto& p : params)
      for (float v : p.tensor.to_vector()) out.push_back(v);
    return out;
  }
};

// Freezes every entry whose flat index is a multiple of 3 (what INQ does with its frozen masks).
class FreezingSgd : public Sgd {
 public:
  using Sgd::Sgd;
  int mask_calls = 0;

 protected:
  Tensor update_mask(const NamedParameter& p) const override {
    ++const_cast<FreezingSgd*>(this)->mask_calls;
    Tensor m = Tensor::full(p.tensor.shape(), 1.0f);
    for (int64_t i = 0; i < m.numel(); i += 3) m.data()[i] = 0;
    return m;
  }
};

}  // namespace

TEST(SgdGolden, MatchesTorchOptimSgdTrajectories) {
  using namespace sgd_golden;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    Tensor w = param_from({2, 2}, kW0), b = param_from({3}, kB0);
    Sgd opt({ParamGroup{.params = {{"w", w, ParamRole::Weight}}, .weight_decay = c.weight_decay},
             ParamGroup{.params = {{"b", b, ParamRole::Bias}}, .weight_decay = 0, .lr_scale = 0.5}},
            {.lr = c.lr, .momentum = c.momentum, .dampening = c.dampening, .nesterov = c.nesterov});
    for (int t = 0; t < kSteps; ++t) {
      if (t == 3) opt.set_lr(c.lr / 2);
      set_golden_grad(w, kTargetW, t);
      if (t == 2)
        b.set_grad(Tensor());
      else
        set_golden_grad(b, kTargetB, t);
      opt.step();
      expect_near_all(w, c.w[t], fmt::format("w after step {}", t));
      expect_near_all(b, c.b[t], fmt::format("b after step {}", t));
    }
    if (c.momentum != 0) {
      ASSERT_NE(opt.state("w"), nullptr);
      expect_near_all(opt.state("w")->momentum_buffer, c.buf_w, "w momentum buffer");
      expect_near_all(opt.state("b")->momentum_buffer, c.buf_b, "b momentum buffer");
    } else {
      EXPECT_EQ(opt.state("w"), nullptr);  // no momentum, no state
      EXPECT_TRUE(opt.state_tensors().empty());
    }
  }
}

TEST(Sgd, SkipsParametersWithoutGradientAndCreatesStateLazily) {
  Problem prob(1);
  Sgd opt({ParamGroup{.params = prob.params}}, {.lr = 0.1, .momentum = 0.9});
  const std::vector<float> before = prob.values();
  opt.step();  // no gradients at all
  EXPECT_EQ(prob.values(), before);
  EXPECT_TRUE(opt.state_tensors().empty());
  prob.params[1].tensor.set_grad(Tensor::full({3}, 1.0f));
  opt.step();
  EXPECT_EQ(opt.state("conv.weight"), nullptr);
  ASSERT_NE(opt.state("conv.bias"), nullptr);
  const NamedTensorList st = opt.state_tensors();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].first, "conv.bias.momentum_buffer");
  opt.reset_state();
  EXPECT_EQ(opt.state("conv.bias"), nullptr);
  opt.zero_grad();
  for (const auto& p : prob.params) EXPECT_FALSE(p.tensor.grad().defined());
}

TEST(Sgd, ParamGroupsDecayWeightsButNotBiasesOrNorms) {
  Problem prob(2);
  const std::vector<ParamGroup> groups = make_param_groups(prob.params, 0.5);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].weight_decay, 0.5);
  ASSERT_EQ(groups[0].params.size(), 1u);
  EXPECT_EQ(groups[0].params[0].name, "conv.weight");
  EXPECT_EQ(groups[1].weight_decay, 0);
  ASSERT_EQ(groups[1].params.size(), 2u);
  EXPECT_EQ(groups[1].params[0].name, "conv.bias");
  EXPECT_EQ(groups[1].params[1].name, "bn.weight");

  // With zero gradients only weight decay moves anything: p -> p * (1 - lr * wd) for weights.
  const std::vector<float> before = prob.values();
  for (auto& p : prob.params) p.tensor.set_grad(Tensor::zeros(p.tensor.shape()));
  Sgd opt(groups, {.lr = 0.1});
  opt.step();
  const std::vector<float> w = prob.params[0].tensor.to_vector();
  for (size_t i = 0; i < w.size(); ++i) EXPECT_FLOAT_EQ(w[i], before[i] - 0.1f * (0.5f * before[i]));
  EXPECT_EQ(prob.params[1].tensor.to_vector(), std::vector<float>(before.begin() + 12, before.begin() + 15));
  EXPECT_EQ(prob.params[2].tensor.to_vector(), std::vector<float>(before.begin() + 15, before.end()));

  // Options put norms or biases in the decayed group; an all-decayed split has one group.
  EXPECT_EQ(make_param_groups(prob.params, 0.5, {.decay_norm = true})[0].params.size(), 2u);
  EXPECT_EQ(make_param_groups(prob.params, 0.5, {.decay_bias = true, .decay_norm = true}).size(), 1u);
}

TEST(Sgd, GroupLrScaleAndSetLr) {
  Tensor a = Tensor::full({1}, 1.0f).set_requires_grad(true);
  Tensor b = Tensor::full({1}, 1.0f).set_requires_grad(true);
  Sgd opt({ParamGroup{.params = {{"a", a, ParamRole::Weight}}},
           ParamGroup{.params = {{"b", b, ParamRole::Weight}}, .lr_scale = 0.25}},
          {.lr = 0.5});
  a.set_grad(Tensor::full({1}, 1.0f));
  b.set_grad(Tensor::full({1}, 1.0f));
  opt.step();
  EXPECT_EQ(a.item(), 0.5f);
  EXPECT_EQ(b.item(), 0.875f);
  opt.set_lr(0.25);
  EXPECT_EQ(opt.lr(), 0.25);
  opt.step();
  EXPECT_EQ(a.item(), 0.25f);
  EXPECT_EQ(b.item(), 0.8125f);
  EXPECT_THROW(opt.set_lr(-1), Error);
  EXPECT_THROW(opt.set_lr(NAN), Error);
}

TEST(Sgd, ValidatesOptionsAndGroups) {
  Tensor a = Tensor::zeros({2}).set_requires_grad(true);
  const std::vector<ParamGroup> one{ParamGroup{.params = {{"a", a, ParamRole::Weight}}}};
  EXPECT_THROW(Sgd(one, {.lr = -0.1}), Error);
  EXPECT_THROW(Sgd(one, {.lr = INFINITY}), Error);
  EXPECT_THROW(Sgd(one, {.momentum = -0.5}), Error);
  EXPECT_THROW(Sgd(one, {.nesterov = true}), Error);                                     // needs momentum
  EXPECT_THROW(Sgd(one, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), Error);  // and no dampening
  EXPECT_THROW(Sgd({ParamGroup{.params = {{"a", a, ParamRole::Weight}}, .weight_decay = -1}}, {}), Error);
  EXPECT_THROW(Sgd({ParamGroup{.params = {{"a", a, ParamRole::Weight}}, .lr_scale = NAN}}, {}), Error);
  EXPECT_THROW(
      Sgd({ParamGroup{.params = {{"a", a, ParamRole::Weight}, {"a", Tensor::zeros({1}), ParamRole::Bias}}}},
          {}),
      Error);  // duplicate name
  EXPECT_THROW(Sgd({ParamGroup{.params = {{"a", a, ParamRole::Weight}}},
                    ParamGroup{.params = {{"b", a, ParamRole::Weight}}}},
                   {}),
               Error);  // same tensor twice
  EXPECT_THROW(Sgd({ParamGroup{.params = {{"u", Tensor(), ParamRole::Weight}}}}, {}), Error);
  EXPECT_NO_THROW(Sgd(one, {.lr = 0.1, .momentum = 0.9, .nesterov = true}));
}

TEST(Sgd, MaskedEntriesStayBitIdenticalAndKeepZeroMomentum) {
  for (bool nesterov : {false, true}) {
    SCOPED_TRACE(nesterov ? "nesterov" : "heavy ball");
    Problem masked(3), plain(3);
    const SgdOptions options{.lr = 0.05, .momentum = 0.9, .dampening = 0, .nesterov = nesterov};
    FreezingSgd masked_opt(make_param_groups(masked.params, 0.01, {.decay_bias = true, .decay_norm = true}),
                           options);
    Sgd plain_opt(make_param_groups(plain.params, 0.01, {.decay_bias = true, .decay_norm = true}), options);
    const std::vector<float> start = masked.values();
    const int kSteps = 50;
    for (int s = 0; s < kSteps; ++s) {
      masked.set_grads(s);
      plain.set_grads(s);
      masked_opt.step();
      plain_opt.step();
    }
    EXPECT_EQ(masked_opt.mask_calls, kSteps * 3);  // once per parameter per step
    size_t frozen = 0, moved = 0;
    for (size_t k = 0; k < masked.params.size(); ++k) {
      const Tensor& w = masked.params[k].tensor;
      const Tensor& ref = plain.params[k].tensor;
      const Tensor& buf = masked_opt.state(masked.params[k].name)->momentum_buffer;
      size_t offset = 0;
      for (size_t j = 0; j < k; ++j) offset += static_cast<size_t>(masked.params[j].tensor.numel());
      for (int64_t i = 0; i < w.numel(); ++i) {
        if (i % 3 == 0) {
          ++frozen;
          EXPECT_TRUE(bit_equal(w.data()[i], start[offset + static_cast<size_t>(i)]))
              << masked.params[k].name << "[" << i << "]";
          EXPECT_TRUE(bit_equal(buf.data()[i], 0.0f)) << masked.params[k].name << "[" << i << "]";
        } else {
          // Entries are independent: the trained ones follow the unmasked run exactly.
          moved += w.data()[i] != start[offset + static_cast<size_t>(i)];
          EXPECT_TRUE(bit_equal(w.data()[i], ref.data()[i])) << masked.params[k].name << "[" << i << "]";
        }
      }
    }
    EXPECT_EQ(frozen, 4u + 1u + 1u);
    EXPECT_EQ(moved, 18u - frozen);
  }
}

// Parameters longer than one chunk (kSgdChunk entries), with a partial last chunk, a mask, weight
// decay, dampening and both momentum forms: every entry follows the update rule of sgd.h computed
// alone in double precision (within float rounding), and 1 and 2 threads give the same bits.
TEST(Sgd, ChunkedStepsMatchTheRuleEntryByEntryAtAnyThreadCount) {
  const int64_t n = 2 * kSgdChunk + kSgdChunk / 2 + 7;
  const int saved_threads = get_num_threads();
  for (const bool nesterov : {false, true}) {
    SCOPED_TRACE(nesterov ? "nesterov" : "momentum");
    const SgdOptions options{.lr = 0.05, .momentum = 0.9, .dampening = nesterov ? 0.0 : 0.25, .nesterov = nesterov};
    std::vector<std::vector<float>> results;
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      Generator gen(7);
      Tensor w = Tensor::empty({n});
      for (int64_t i = 0; i < n; ++i) w.data()[i] = static_cast<float>(gen.normal());
      w.set_requires_grad(true);
      const std::vector<float> start = w.to_vector();
      std::vector<double> ref(start.begin(), start.end()), buf(static_cast<size_t>(n), 0.0);
      FreezingSgd opt({ParamGroup{.params = {{"w", w, ParamRole::Weight}}, .weight_decay = 0.01}}, options);
      for (int step = 0; step < 3; ++step) {
        Tensor g = Tensor::empty({n});
        for (int64_t i = 0; i < n; ++i) g.data()[i] = static_cast<float>(gen.normal());
        w.set_grad(g);
        opt.step();
        for (int64_t i = 0; i < n; ++i) {
          if (i % 3 == 0) continue;  // frozen by FreezingSgd
          const size_t k = static_cast<size_t>(i);
          double d = g.data()[i] + 0.01 * ref[k];
          buf[k] = step == 0 ? d : 0.9 * buf[k] + (1 - options.dampening) * d;
          d = nesterov ? d + 0.9 * buf[k] : buf[k];
          ref[k] -= 0.05 * d;
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        if (i % 3 == 0) {
          ASSERT_TRUE(bit_equal(w.data()[i], start[static_cast<size_t>(i)])) << i;
          ASSERT_EQ(opt.state("w")->momentum_buffer.data()[i], 0.0f) << i;
        } else {
          ASSERT_NEAR(w.data()[i], ref[static_cast<size_t>(i)], 1e-5) << i;
        }
      }
      results.push_back(w.to_vector());
    }
    EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)), 0);
  }
  set_num_threads(saved_threads);
}

// What step() keeps besides the momentum buffers is one chunk per thread, not a direction the size
// of the largest parameter (which would stay allocated through the next forward and backward).
TEST(Sgd, KeepsOnlyMomentumBuffersAndOneChunkPerThread) {
  const int64_t n = 8 * kSgdChunk;
  Tensor w = Tensor::zeros({n});
  w.set_requires_grad(true);
  w.set_grad(Tensor::full({n}, 1.0f));
  Sgd opt({ParamGroup{.params = {{"w", w, ParamRole::Weight}}}}, {.lr = 0.1, .momentum = 0.9});
  const int64_t before = allocator_stats().live_bytes;
  opt.step();
  const int64_t kept = allocator_stats().live_bytes - before;
  const int64_t buffer = n * static_cast<int64_t>(sizeof(float));
  EXPECT_GE(kept, buffer);
  EXPECT_LE(kept, buffer + get_num_threads() * kSgdChunk * static_cast<int64_t>(sizeof(float)) + 4096);
  EXPECT_EQ(w.data()[0], -0.1f);
}

// A subclass that breaks the direction after masking still cannot move a frozen entry: the final
// update checks the mask itself.
TEST(Sgd, FinalUpdateNeverWritesMaskedEntries) {
  class Sabotage : public FreezingSgd {
   public:
    using FreezingSgd::FreezingSgd;

   protected:
    void apply_momentum(const NamedParameter& p, SgdParamState& state, const Chunk& chunk,
                        Tensor& direction) override {
      FreezingSgd::apply_momentum(p, state, chunk, direction);
      direction.fill_(1.0f);
    }
  };
  Problem prob(4);
  const std::vector<float> start = prob.values();
  Sabotage opt({ParamGroup{.params = prob.params, .weight_decay = 0.1}}, {.lr = 0.1, .momentum = 0.9});
  prob.set_grads(0);
  opt.step();
  const std::vector<float> w = prob.params[0].tensor.to_vector();
  for (size_t i = 0; i < w.size(); ++i) {
    if (i % 3 == 0)
      EXPECT_TRUE(bit_equal(w[i], start[i]));
    else
      EXPECT_EQ(w[i], start[i] - 0.1f);
  }
}

TEST(Sgd, StateSaveLoadGivesAnIdenticalContinuation) {
  const SgdOptions options{.lr = 0.05, .momentum = 0.9, .dampening = 0.1};
  const int kTotal = 10, kSplit = 4;
  Problem straight(5);
  Sgd straight_opt(make_param_groups(straight.params, 1e-3), options);
  for (int s = 0; s < kTotal; ++s) {
    straight.set_grads(s);
    straight_opt.step();
  }

  Problem first(5);
  NamedTensorList saved_state;
  std::vector<Tensor> saved_params;
  {
    Sgd opt(make_param_groups(first.params, 1e-3), options);
    for (int s = 0; s < kSplit; ++s) {
      first.set_grads(s);
      opt.step();
    }
    saved_state = opt.state_tensors();
    for (auto& p : first.params) saved_params.push_back(p.tensor.clone());
    EXPECT_EQ(saved_state.size(), 3u);
    EXPECT_EQ(saved_state[0].first, "bn.weight.momentum_buffer");  // sorted by name
  }
  // A fresh model and optimizer, as after a restart.
  Problem resumed(99);
  for (size_t k = 0; k < resumed.params.size(); ++k) resumed.params[k].tensor.copy_from(saved_params[k]);
  Sgd opt(make_param_groups(resumed.params, 1e-3), options);
  opt.load_state_tensors(saved_state);
  for (int s = kSplit; s < kTotal; ++s) {
    resumed.set_grads(s);
    opt.step();
  }
  const std::vector<float> a = straight.values(), b = resumed.values();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(bit_equal(a[i], b[i])) << i << ": " << a[i] << " vs " << b[i];
  // The loaded state is a copy: changing the source afterwards changes nothing.
  saved_state[0].second.fill_(123.0f);
  EXPECT_NE(opt.state("bn.weight")->momentum_buffer.data()[0], 123.0f);

  // Without the state, the continuation differs (the test can fail).
  Problem cold(99);
  for (size_t k = 0; k < cold.params.size(); ++k) cold.params[k].tensor.copy_from(saved_params[k]);
  Sgd cold_opt(make_param_groups(cold.params, 1e-3), options);
  for (int s = kSplit; s < kTotal; ++s) {
    cold.set_grads(s);
    cold_opt.step();
  }
  EXPECT_NE(cold.values(), a);
}

TEST(Sgd, LoadStateTensorsIsStrictAndReportsEveryProblem) {
  Problem prob(6);
  Sgd opt({ParamGroup{.params = prob.params}}, {.lr = 0.1, .momentum = 0.9});
  prob.set_grads(0);
  opt.step();
  const NamedTensorList good = opt.state_tensors();
  const NamedTensorList bad{{"conv.weight.momentum_buffer", Tensor::zeros({3})},  // wrong shape
                            {"nope.momentum_buffer", Tensor::zeros({1})},         // unknown parameter
                            {"conv.bias.velocity", Tensor::zeros({3})},           // unknown field
                            {"bn.weight.momentum_buffer", Tensor::zeros({3})},
                            {"bn.weight.momentum_buffer", Tensor::zeros({3})}};  // duplicate
  try {
    opt.load_state_tensors(bad);
    FAIL() << "accepted bad state";
  } catch (const Error& e) {
    const std::string m = e.what();
    for (const char* needle :
         {"conv.weight.momentum_buffer' has shape [3] but the parameter has shape [3, 2, 2]",
          "'nope.momentum_buffer' names no parameter", "'conv.bias.velocity' is not",
          "'bn.weight.momentum_buffer' appears more than once"})
      EXPECT_NE(m.find(needle), std::string::npos) << needle << "\nin: " << m;
  }
  // Nothing changed.
  const NamedTensorList after = opt.state_tensors();
  ASSERT_EQ(after.size(), good.size());
  for (size_t i = 0; i < good.size(); ++i) EXPECT_EQ(after[i].second.to_vector(), good[i].second.to_vector());
  // A partial state is valid: the others start fresh.
  opt.load_state_tensors({good[0]});
  EXPECT_EQ(opt.state_tensors().size(), 1u);
}
