// Pruning (inq/prune.h, inq/prune_sgd.h; docs/INQ_SPEC.md section 6): DNS's update probability,
// thresholds from mu and sigma, the band between 0.9 t and 1.1 t that lets weights be pruned and
// spliced back, rates chosen from a sparsity target per layer and globally; magnitude pruning's
// exact counts and tie order; masks written as +0.0; the optimizer updating every dense weight
// (DNS) or never touching a pruned one (magnitude); the state saved and loaded strictly.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "error_testing.h"
#include "framework/random.h"
#include "inq/inq_state.h"
#include "inq/prune_sgd.h"
#include "tensor_testing.h"

using namespace inq;
using test::bit_equal;
using test::error_of;

namespace {

Tensor from(const Shape& shape, std::vector<float> values) {
  Tensor t = Tensor::empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  t.set_requires_grad(true);
  return t;
}

Tensor normal(const Shape& shape, double stddev, uint64_t seed) {
  Generator gen(seed);
  Tensor t = Tensor::empty(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(gen.normal(0, stddev));
  t.set_requires_grad(true);
  return t;
}

int64_t zeros_of(const Tensor& t) {
  int64_t n = 0;
  for (int64_t i = 0; i < t.numel(); ++i) n += t.data()[i] == 0 ? 1 : 0;
  return n;
}

PruneOptions dns(double rate) { return PruneOptions{.method = PruneMethod::Dns, .rate = rate}; }

}  // namespace

TEST(Prune, DnsUpdateProbabilityDecaysWithTheIterationAndStops) {
  PruneOptions o = dns(0);  // gamma 1e-4, power 1: the authors' LeNet settings
  EXPECT_EQ(dns_update_probability(o, 0), 1.0);
  EXPECT_DOUBLE_EQ(dns_update_probability(o, 10000), 0.5);
  o.power = 2;
  EXPECT_DOUBLE_EQ(dns_update_probability(o, 10000), 0.25);
  o.stop_iteration = 500;
  EXPECT_GT(dns_update_probability(o, 499), 0.9);
  EXPECT_EQ(dns_update_probability(o, 500), 0.0);
}

TEST(Prune, DnsThresholdComesFromMeanAndStdOfAbsoluteWeights) {
  // |w| = 1..8: mu = 4.5, sigma = sqrt(5.25). c = 0.2: t = 4.5 + 0.2 * 2.2913 = 4.958; 0.9 t = 4.46:
  // |w| <= 4.46 prunes 1, 2, 3, 4 (signs do not matter).
  Tensor w = from({8}, {1, -2, 3, -4, 5, -6, 7, -8});
  PruneState s = make_prune_state(dns(0.2));
  start_pruning(s, {{"fc.weight", w, ParamRole::Weight}}, dns(0.2));
  const PruneParamState& r = s.params.at("fc.weight");
  EXPECT_DOUBLE_EQ(r.mu, 4.5);
  EXPECT_DOUBLE_EQ(r.sigma, std::sqrt(5.25));
  EXPECT_DOUBLE_EQ(r.threshold, 4.5 + 0.2 * std::sqrt(5.25));
  EXPECT_EQ(r.pruned, 4);
  EXPECT_EQ(r.mask.to_vector(), (std::vector<float>{0, 0, 0, 0, 1, 1, 1, 1}));
  // The parameter computes with w * T, pruned entries +0.0 (not -0.0 for the negative ones)...
  EXPECT_TRUE(bit_equal(w.data()[1], 0.0f));
  EXPECT_TRUE(bit_equal(w.data()[3], 0.0f));
  EXPECT_EQ(w.data()[5], -6.0f);
  // ...while the record keeps every dense value, pruned ones included.
  EXPECT_EQ(r.dense.to_vector(), (std::vector<float>{1, -2, 3, -4, 5, -6, 7, -8}));
  // A very negative rate clamps t at 0: nothing but exact zeros would be pruned.
  Tensor v = from({3}, {1, 2, 3});
  PruneState z = make_prune_state(dns(-50));
  start_pruning(z, {{"v", v, ParamRole::Weight}}, dns(-50));
  EXPECT_EQ(z.params.at("v").threshold, 0.0);
  EXPECT_EQ(z.params.at("v").pruned, 0);
}

TEST(Prune, DnsPrunesBelowPoint9TSplicesAbove1Point1TAndKeepsTheBand) {
  Tensor w = from({8}, {1, -2, 3, -4, 5, -6, 7, -8});
  PruneOptions o = dns(0.2);
  o.gamma = 0;  // probability 1 at every iteration: every update happens
  PruneState s = make_prune_state(o);
  const std::vector<NamedParameter> params = {{"fc.weight", w, ParamRole::Weight}};
  start_pruning(s, params, o);
  PruneParamState& r = s.params.at("fc.weight");
  const double t = r.threshold;  // 4.958: band (4.462, 5.454]
  float* d = r.dense.data();
  d[0] = static_cast<float>(1.1 * t) + 0.01f;  // pruned, now above 1.1 t: spliced back
  d[1] = static_cast<float>(t);                 // pruned, inside the band: stays pruned
  d[4] = static_cast<float>(t);                 // kept, inside the band: stays kept
  d[5] = static_cast<float>(-0.9 * t) + 0.01f;  // kept, now |w| <= 0.9 t: pruned
  EXPECT_EQ(dns_update_masks(s, o, 1), 1);
  EXPECT_EQ(r.mask.to_vector(), (std::vector<float>{1, 0, 0, 0, 1, 0, 1, 1}));
  EXPECT_EQ(r.pruned, 4);
  apply_prune_masks(s, params);
  EXPECT_EQ(w.data()[0], d[0]);  // a spliced weight comes back with its dense value
  EXPECT_EQ(w.data()[5], 0.0f);
  // Past the stop iteration nothing changes and nothing is drawn.
  o.stop_iteration = 2;
  const std::string before = s.generator.state();
  d[1] = 100;
  EXPECT_EQ(dns_update_masks(s, o, 2), 0);
  EXPECT_EQ(s.generator.state(), before);
  EXPECT_EQ(r.mask.data()[1], 0.0f);
}

TEST(Prune, DnsUpdatesHappenWithTheDecayingProbabilityFromTheStatesGenerator) {
  Tensor w = normal({50}, 1.0, 3);
  PruneOptions o = dns(0.0);
  o.gamma = 1.0;  // p(i) = 1 / (1 + i): at i = 3, one draw in four updates
  o.seed = 11;
  PruneState s = make_prune_state(o);
  start_pruning(s, {{"w", w, ParamRole::Weight}}, o);
  // The same draws as a generator seeded alike, compared with p.
  Generator mirror(11);
  int updates = 0;
  for (int64_t i = 1; i <= 400; ++i) {
    const bool expect = mirror.uniform_double() < 1.0 / (1.0 + static_cast<double>(i));
    const int got = dns_update_masks(s, o, i);
    ASSERT_EQ(got, expect ? 1 : 0) << "iteration " << i;
    updates += got;
  }
  EXPECT_GT(updates, 2);
  EXPECT_LT(updates, 20);  // sum of 1/(1+i) over 1..400 is about 5.0
}

TEST(Prune, DnsSparsityTargetChoosesEachLayersRate) {
  Tensor a = normal({40, 25}, 0.1, 1), b = normal({300}, 2.0, 2);
  PruneOptions o = dns(0);
  o.sparsity = 0.7;
  const std::vector<NamedParameter> params = {{"a", a, ParamRole::Weight}, {"b", b, ParamRole::Weight}};
  const auto rates = dns_rates(params, o);
  PruneState s = make_prune_state(o);
  start_pruning(s, params, o);
  EXPECT_EQ(s.params.at("a").pruned, 700);  // frozen_target(0.7, 1000); normal draws have no ties
  EXPECT_EQ(s.params.at("b").pruned, 210);
  for (const auto& [name, r] : s.params) {
    EXPECT_EQ(r.rate, rates.at(name));
    EXPECT_NEAR(r.mu + r.rate * r.sigma, r.threshold, 1e-9 * r.threshold) << name;
  }
}

TEST(Prune, DnsGlobalSparsityUsesOneRateForEveryLayer) {
  Tensor a = normal({1000}, 0.1, 1), b = normal({1000}, 2.0, 2);
  PruneOptions o = dns(0);
  o.sparsity = 0.6;
  o.scope = SparsityScope::Global;
  const std::vector<NamedParameter> params = {{"a", a, ParamRole::Weight}, {"b", b, ParamRole::Weight}};
  PruneState s = make_prune_state(o);
  start_pruning(s, params, o);
  EXPECT_EQ(s.params.at("a").rate, s.params.at("b").rate);
  // One c, each layer's own mu and sigma: both layers are normal, so they prune about alike, and
  // the total is the target (the nudge against rounding may add one).
  const int64_t total = s.params.at("a").pruned + s.params.at("b").pruned;
  EXPECT_GE(total, 1200);
  EXPECT_LE(total, 1201);
}

TEST(Prune, MagnitudePerLayerPrunesExactlyTheSmallestWithTiesByIndex) {
  Tensor w = from({6}, {0.5f, -0.1f, 0.1f, 0.3f, -0.1f, 0.1f});
  PruneOptions o{.method = PruneMethod::Magnitude, .sparsity = 0.5};
  PruneState s = make_prune_state(o);
  start_pruning(s, {{"w", w, ParamRole::Weight}}, o);
  // floor(0.5 * 6) = 3 of the four |w| = 0.1: the tie is settled by the lower index.
  EXPECT_EQ(s.params.at("w").mask.to_vector(), (std::vector<float>{1, 0, 0, 1, 0, 1}));
  EXPECT_EQ(w.to_vector(), (std::vector<float>{0.5f, 0, 0, 0.3f, 0, 0.1f}));
  EXPECT_FALSE(s.params.at("w").dense.defined());
  // frozen_target rounds down exactly: 0.7 of 90 is 63.
  Tensor v = normal({90}, 1.0, 5);
  PruneOptions seventy{.method = PruneMethod::Magnitude, .sparsity = 0.7};
  PruneState t = make_prune_state(seventy);
  start_pruning(t, {{"v", v, ParamRole::Weight}}, seventy);
  EXPECT_EQ(t.params.at("v").pruned, 63);
  EXPECT_EQ(zeros_of(v), 63);
}

TEST(Prune, MagnitudeGlobalTakesTheSmallestOfTheWholeNetwork) {
  Tensor small = from({4}, {0.01f, 0.02f, 0.03f, 0.04f}), big = from({4}, {1, 2, 3, 0.025f});
  PruneOptions o{.method = PruneMethod::Magnitude, .sparsity = 0.5, .scope = SparsityScope::Global};
  PruneState s = make_prune_state(o);
  start_pruning(s, {{"small", small, ParamRole::Weight}, {"big", big, ParamRole::Weight}}, o);
  EXPECT_EQ(s.params.at("small").pruned, 3);  // 0.01, 0.02, 0.03
  EXPECT_EQ(s.params.at("big").pruned, 1);    // 0.025
  EXPECT_EQ(big.to_vector(), (std::vector<float>{1, 2, 3, 0}));
}

// Per-layer targets (--layer-sparsity): the first matching glob wins, the others keep --sparsity,
// for both methods; the DNS first mask and magnitude's exact counts follow each layer's own target.
TEST(Prune, PerLayerTargetsOverrideTheSparsityOfMatchingTensors) {
  Tensor fc = normal({50, 40}, 0.1, 1), conv = normal({300}, 2.0, 2), other = normal({100}, 1.0, 3);
  const std::vector<NamedParameter> params = {{"classifier.0.weight", fc, ParamRole::Weight},
                                              {"features.0.weight", conv, ParamRole::Weight},
                                              {"head.weight", other, ParamRole::Weight}};
  PruneOptions o{.method = PruneMethod::Magnitude, .sparsity = 0.5,
                 .layer_sparsity = {"classifier.*=0.9", "classifier.0.weight=0.1", "features.*=0.25"}};
  EXPECT_EQ(o.target_for("classifier.0.weight"), 0.9);  // first match, not the more specific second
  EXPECT_EQ(o.target_for("head.weight"), 0.5);
  PruneState m = make_prune_state(o);
  start_pruning(m, params, o);
  EXPECT_EQ(m.params.at("classifier.0.weight").pruned, 1800);
  EXPECT_EQ(m.params.at("features.0.weight").pruned, 75);
  EXPECT_EQ(m.params.at("head.weight").pruned, 50);

  Tensor fc2 = normal({50, 40}, 0.1, 1), conv2 = normal({300}, 2.0, 2), other2 = normal({100}, 1.0, 3);
  const std::vector<NamedParameter> params2 = {{"classifier.0.weight", fc2, ParamRole::Weight},
                                               {"features.0.weight", conv2, ParamRole::Weight},
                                               {"head.weight", other2, ParamRole::Weight}};
  o.method = PruneMethod::Dns;
  const auto rates = dns_rates(params2, o);
  PruneState d = make_prune_state(o);
  start_pruning(d, params2, o);
  EXPECT_EQ(d.params.at("classifier.0.weight").pruned, 1800);  // normal draws have no ties
  EXPECT_EQ(d.params.at("features.0.weight").pruned, 75);
  EXPECT_EQ(d.params.at("head.weight").pruned, 50);
  for (const auto& [name, r] : d.params) EXPECT_EQ(r.rate, rates.at(name)) << name;
}

TEST(Prune, PerLayerTargetsAreCheckedAndMustMatchATensor) {
  const auto invalid = [](std::vector<std::string> entries, double sparsity = 0.5,
                          SparsityScope scope = SparsityScope::Layer) {
    return error_of([&] {
      PruneOptions{.sparsity = sparsity, .scope = scope, .layer_sparsity = entries}.validate();
    });
  };
  for (const std::string bad : {"fc=1", "fc=-0.1", "fc=", "=0.5", "fc", "fc=0.5x", "fc=nan"})
    EXPECT_NE(invalid({bad}).find("'" + bad + "'"), std::string::npos) << bad;
  EXPECT_NE(invalid({"fc=0.5"}, -1).find("with a sparsity"), std::string::npos);
  EXPECT_NE(invalid({"fc=0.5"}, 0.5, SparsityScope::Global).find("layer scope"), std::string::npos);
  EXPECT_EQ(invalid({"fc=0", "conv=0.999"}), "");
  Tensor w = normal({10}, 1.0, 1);
  PruneOptions o{.sparsity = 0.5, .layer_sparsity = {"nothing.*=0.9"}};
  PruneState s = make_prune_state(o);
  const std::string e = error_of([&] { start_pruning(s, {{"fc.weight", w, ParamRole::Weight}}, o); });
  EXPECT_NE(e.find("'nothing.*=0.9'"), std::string::npos) << e;
  EXPECT_NE(e.find("fc.weight"), std::string::npos) << e;
  EXPECT_FALSE(s.started);
}

TEST(Prune, OptionsAreCheckedAndNonFiniteWeightsRefused) {
  EXPECT_NE(error_of([] { PruneOptions{.method = PruneMethod::Magnitude}.validate(); }).find("sparsity"),
            std::string::npos);
  EXPECT_NE(error_of([] { PruneOptions{.sparsity = 1.0}.validate(); }).find("[0, 1)"), std::string::npos);
  EXPECT_NE(error_of([] { PruneOptions{.gamma = -1}.validate(); }).find("gamma"), std::string::npos);
  Tensor w = from({3}, {1, NAN, 2});
  PruneState s = make_prune_state(dns(0));
  const std::string e = error_of([&] { start_pruning(s, {{"conv.weight", w, ParamRole::Weight}}, dns(0)); });
  EXPECT_NE(e.find("'conv.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("entry 1"), std::string::npos) << e;
  EXPECT_FALSE(s.started);
}

namespace {

// A weight, a second weight and a bias, with an optimizer over them.
struct Net {
  Tensor w = normal({6, 5}, 0.5, 7), v = normal({10}, 0.5, 8), b = normal({6}, 0.5, 9);
  std::unique_ptr<PruneSgd> opt;
  explicit Net(const PruneOptions& o, double weight_decay = 0.01) {
    opt = std::make_unique<PruneSgd>(
        std::vector<ParamGroup>{ParamGroup{.params = {{"l.w", w, ParamRole::Weight}, {"l.v", v, ParamRole::Weight}},
                                           .weight_decay = weight_decay},
                                ParamGroup{.params = {{"l.b", b, ParamRole::Bias}}}},
        SgdOptions{.lr = 0.1, .momentum = 0.9}, o);
  }
  // A deterministic gradient for every parameter: the iteration's own pattern.
  void set_grads(int64_t it) {
    for (Tensor* t : {&w, &v, &b}) {
      Tensor g = Tensor::empty(t->shape());
      for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = std::sin(0.37f * static_cast<float>(i + 3 * it));
      t->set_grad(g);
    }
  }
  void iteration(int64_t it) {
    opt->before_forward(it);
    set_grads(it);
    opt->after_backward();
    opt->step();
    opt->after_step();
  }
};

}  // namespace

TEST(PruneSgd, PrunesOnlyWeightsNeverBiases) {
  Net net(PruneOptions{.method = PruneMethod::Magnitude, .sparsity = 0.5});
  net.opt->start();
  EXPECT_EQ(net.opt->prune_state().params.size(), 2u);
  EXPECT_EQ(net.opt->prune_state().params.count("l.b"), 0u);
  EXPECT_EQ(zeros_of(net.b), 0);
}

TEST(PruneSgd, MagnitudeKeepsPrunedWeightsExactlyZeroThroughMomentumAndDecay) {
  Net net(PruneOptions{.method = PruneMethod::Magnitude, .sparsity = 0.6});
  net.opt->start();
  const Tensor mask = net.opt->prune_state().params.at("l.w").mask.clone();
  const Tensor w0 = net.w.clone();
  for (int64_t it = 1; it <= 20; ++it) net.iteration(it);
  for (int64_t i = 0; i < net.w.numel(); ++i) {
    if (mask.data()[i] == 0)
      EXPECT_TRUE(bit_equal(net.w.data()[i], 0.0f)) << i;
    else
      EXPECT_NE(net.w.data()[i], w0.data()[i]) << i;  // the survivors did train
  }
  EXPECT_EQ(zeros_of(net.w), 18);
  // The fixed mask never changed.
  EXPECT_TRUE(bit_equal(net.opt->prune_state().params.at("l.w").mask, mask));
}

TEST(PruneSgd, DnsUpdatesEveryDenseWeightWithTheGradientOfTheMaskedOne) {
  PruneOptions o = dns(0.0);
  o.stop_iteration = 1;  // the first mask only, so the pruned set is known
  Net net(o, /*weight_decay=*/0);
  net.opt->start();
  const PruneParamState& r = net.opt->prune_state().params.at("l.w");
  const Tensor dense0 = r.dense.clone(), mask = r.mask.clone();
  ASSERT_GT(r.pruned, 0);
  net.opt->before_forward(1);
  net.set_grads(1);
  net.opt->after_backward();
  // After backward the parameter holds the dense weights again...
  EXPECT_TRUE(bit_equal(net.w, dense0));
  net.opt->step();
  net.opt->after_step();
  // ...so one momentum step moved every entry by lr * g, pruned ones included (first step: buf = g).
  for (int64_t i = 0; i < net.w.numel(); ++i) {
    const float g = std::sin(0.37f * static_cast<float>(i + 3));
    EXPECT_FLOAT_EQ(r.dense.data()[i], dense0.data()[i] - 0.1f * g) << i;
    EXPECT_EQ(net.w.data()[i], mask.data()[i] == 0 ? 0.0f : r.dense.data()[i]) << i;
  }
}

TEST(PruneSgd, StateRoundTripsAndTheResumedRunContinuesBitForBit) {
  PruneOptions o = dns(0.1);
  o.gamma = 0.5;  // frequent, random updates: the generator matters
  o.seed = 4;
  Net straight(o), first(o);
  straight.opt->start();
  first.opt->start();
  for (int64_t it = 1; it <= 10; ++it) {
    straight.iteration(it);
    first.iteration(it);
  }
  // Save `first` and load it into a fresh optimizer whose model holds the saved weights.
  const NamedTensorList saved = first.opt->state_tensors();
  const std::string meta = first.opt->prune_metadata();
  Net resumed(o);
  for (auto [to, from_] : {std::pair{&resumed.w, &first.w}, {&resumed.v, &first.v}, {&resumed.b, &first.b}})
    std::copy(from_->data(), from_->data() + from_->numel(), to->data());
  resumed.opt->load_state(saved, meta);
  for (int64_t it = 11; it <= 30; ++it) {
    straight.iteration(it);
    resumed.iteration(it);
  }
  EXPECT_TRUE(bit_equal(straight.w, resumed.w));
  EXPECT_TRUE(bit_equal(straight.v, resumed.v));
  EXPECT_TRUE(bit_equal(straight.opt->prune_state().params.at("l.w").mask,
                        resumed.opt->prune_state().params.at("l.w").mask));
  EXPECT_EQ(straight.opt->prune_state().generator.state(), resumed.opt->prune_state().generator.state());
}

TEST(PruneSgd, LoadRefusesAWeightThatIsNotPrunedWhereTheMaskSays) {
  PruneOptions o{.method = PruneMethod::Magnitude, .sparsity = 0.5};
  Net net(o);
  net.opt->start();
  const NamedTensorList saved = net.opt->state_tensors();
  const std::string meta = net.opt->prune_metadata();
  Net other(o);  // its weights are dense: every pruned position is non-zero
  const std::string e = error_of([&] { other.opt->load_state(saved, meta); });
  EXPECT_NE(e.find("tensor 'l.w'"), std::string::npos) << e;
  EXPECT_NE(e.find("differ from the dense weights times the mask"), std::string::npos) << e;
  // Another run's options are named.
  Net changed(PruneOptions{.method = PruneMethod::Magnitude, .sparsity = 0.4});
  const std::string e2 = error_of([&] { changed.opt->load_state(saved, meta); });
  EXPECT_NE(e2.find("sparsity is 0.5 in the state but 0.4"), std::string::npos) << e2;
}

TEST(PruneSgd, PrunedMasksAreFoundInACheckpointsOptimizerRecords) {
  Net net(PruneOptions{.method = PruneMethod::Magnitude, .sparsity = 0.5});
  net.opt->start();
  const auto masks = prune_masks_from(net.opt->state_tensors(), "x.safetensors");
  ASSERT_EQ(masks.size(), 2u);
  EXPECT_EQ(zeros_of(masks.at("l.w")), 15);
  Tensor bad = from({2}, {1, 0.5f});
  const std::string e = error_of([&] { prune_masks_from({{"l.w.prune_mask", bad}}, "x.safetensors"); });
  EXPECT_NE(e.find("'x.safetensors'"), std::string::npos) << e;
}

// INQ started from a pruned tensor (docs/INQ_SPEC.md section 6): pruned weights frozen at +0.0 from
// step 1, portions counted over the survivors, the pruning masks saved and checked with the state.
TEST(InqFromPruned, PortionsCountSurvivorsAndPrunedWeightsStayFrozenAtZero) {
  Tensor w = from({10}, {0, 0.5f, -0.25f, -0.0f, 1, 0.125f, 0, -0.75f, 0.3f, 0.2f});
  Tensor pruned = from({10}, {0, 1, 1, 0, 1, 1, 0, 1, 1, 1});
  const InqOptions options{.bits = 5, .portions = {0.5, 1}};
  const std::vector<NamedParameter> params = {{"fc.weight", w, ParamRole::Weight}};
  InqState state = make_inq_state(options);
  state.pruned["fc.weight"] = pruned;
  apply_inq_step(state, params, options, 1);
  const InqParamState& r = state.params.at("fc.weight");
  EXPECT_EQ(r.pruned, 3);
  EXPECT_EQ(r.frozen, 3 + 3);  // 3 pruned + floor(0.5 * 7 survivors)
  // Frozen: the pruned 0, 3, 6 and the three largest survivors |1|, |-0.75|, |0.5|.
  EXPECT_EQ(r.mask.to_vector(), (std::vector<float>{0, 0, 1, 0, 0, 1, 0, 0, 1, 1}));
  EXPECT_TRUE(bit_equal(w.data()[3], 0.0f));  // the pruned -0.0 is the codebook's +0.0 now

  // Saved and loaded: the pruning masks come back and are checked against the INQ masks.
  const std::string meta = inq_state_metadata(state, options);
  const InqState loaded = load_inq_state(inq_state_tensors(state), meta, options, params);
  EXPECT_EQ(loaded.params.at("fc.weight").pruned, 3);
  EXPECT_TRUE(bit_equal(loaded.pruned.at("fc.weight"), pruned));
  NamedTensorList released = inq_state_tensors(state);
  for (auto& [name, t] : released)
    if (name == "fc.weight.inq_mask") {  // a pruned weight swapped with a trainable one: same count
      t.data()[0] = 1.0f;
      t.data()[2] = 0.0f;
    }
  const std::string e = error_of([&] { load_inq_state(released, meta, options, params); });
  EXPECT_NE(e.find("marks 1 pruned weights as still float"), std::string::npos) << e;

  apply_inq_step(state, params, options, 2);
  EXPECT_EQ(state.params.at("fc.weight").frozen, 10);
  EXPECT_EQ(w.data()[0], 0.0f);
  EXPECT_EQ(w.data()[6], 0.0f);
}

TEST(InqFromPruned, APrunedWeightThatIsNotZeroOrAnExcludedPrunedTensorIsRefused) {
  Tensor w = from({4}, {0.5f, 0.25f, 1, 2}), v = from({2}, {1, 2});
  const InqOptions options{.bits = 5, .portions = {1}};
  InqState state = make_inq_state(options);
  state.pruned["fc.weight"] = from({4}, {1, 0, 1, 1});
  const std::string e = error_of([&] { apply_inq_step(state, {{"fc.weight", w, ParamRole::Weight}}, options, 1); });
  EXPECT_NE(e.find("'fc.weight'"), std::string::npos) << e;
  EXPECT_NE(e.find("entry 1 is 0.25"), std::string::npos) << e;
  EXPECT_TRUE(state.params.empty());  // nothing changed
  InqState other = make_inq_state(options);
  other.pruned["excluded.weight"] = from({2}, {1, 0});
  const std::string e2 = error_of([&] { apply_inq_step(other, {{"fc.weight", w, ParamRole::Weight}}, options, 1); });
  EXPECT_NE(e2.find("'excluded.weight'"), std::string::npos) << e2;
}
