// INQ partition (docs/INQ_SPEC.md section 4): portion validation, the exact frozen count floor(sigma * N),
// the magnitude and random strategies among still-float weights, and the named schedules.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "framework/error.h"
#include "framework/random.h"
#include "inq/partition.h"

using namespace inq;

namespace {

Tensor ones_like(const Tensor& t) { return Tensor::full(t.shape(), 1.0f); }

// Brute force: sort all still-float indices by (|w| descending, index ascending), take the first count.
std::vector<int64_t> reference_magnitude(const Tensor& w, const Tensor& trainable, int64_t count) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < w.numel(); ++i)
    if (trainable.data()[i] != 0) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return std::fabs(w.data()[a]) > std::fabs(w.data()[b]); });
  idx.resize(static_cast<size_t>(count));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

TEST(InqPartition, ValidatePortions) {
  for (const auto& name : portion_preset_names())
    EXPECT_NO_THROW(validate_portions(portion_preset(name))) << name;
  EXPECT_NO_THROW(validate_portions(std::vector<double>{1.0}));
  const std::vector<std::vector<double>> bad = {{},          {0.5},      {0.5, 0.5, 1}, {0.6, 0.5, 1},
                                                {0, 0.5, 1}, {-0.1, 1},  {0.5, 1.5},    {0.5, 1, 1},
                                                {NAN, 1},    {0.5, 0.99}};
  for (const auto& p : bad) EXPECT_THROW(validate_portions(p), Error) << fmt::format("{}", fmt::join(p, ","));
}

TEST(InqPartition, FrozenTargetSigmaOneIsExactlyN) {
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1} << 40, INT64_MAX})
    EXPECT_EQ(frozen_target(1.0, n), n);
}

TEST(InqPartition, FrozenTargetHasNoFloatingError) {
  // 0.7 * 90 = 62.99999999999999 in double; the portion means 7/10.
  EXPECT_EQ(static_cast<int64_t>(std::floor(0.7 * 90)), 62);  // the trap
  EXPECT_EQ(frozen_target(0.7, 90), 63);
  EXPECT_EQ(frozen_target(0.57, 100), 57);
  EXPECT_EQ(frozen_target(0.3, 1'000'000'000'000'000'000), 300'000'000'000'000'000);
  EXPECT_EQ(frozen_target(0.875, 7), 6);
  EXPECT_EQ(frozen_target(0.5, 0), 0);
  // Every preset portion as the fraction it is written as, against integer arithmetic.
  const std::map<double, std::pair<int64_t, int64_t>> fractions = {
      {0.2, {2, 10}}, {0.3, {3, 10}},    {0.4, {4, 10}},      {0.5, {5, 10}},    {0.6, {6, 10}},
      {0.7, {7, 10}}, {0.75, {75, 100}}, {0.8, {8, 10}},      {0.85, {85, 100}}, {0.875, {875, 1000}},
      {0.9, {9, 10}}, {0.95, {95, 100}}, {0.975, {975, 1000}}};
  for (const auto& name : portion_preset_names())
    for (double sigma : portion_preset(name))
      ASSERT_TRUE(sigma == 1.0 || fractions.count(sigma)) << name << " has an untested portion " << sigma;
  int naive_wrong = 0;
  for (const auto& [sigma, f] : fractions)
    for (int64_t n = 0; n <= 5000; ++n) {
      ASSERT_EQ(frozen_target(sigma, n), f.first * n / f.second) << sigma << " * " << n;
      naive_wrong +=
          static_cast<int64_t>(std::floor(sigma * static_cast<double>(n))) != f.first * n / f.second;
    }
  EXPECT_GT(naive_wrong, 0);  // the naive formula does go wrong on this range
}

TEST(InqPartition, FrozenTargetWithoutAShortDecimal) {
  // 2^-60 has no decimal of at most 18 digits; its binary value is used exactly.
  EXPECT_EQ(frozen_target(std::ldexp(1.0, -60), int64_t{1} << 62), 4);
  EXPECT_EQ(frozen_target(1e-30, INT64_MAX), 0);
  // 1e-18 still has an 18-digit decimal: floor(9223372036854775807 / 10^18) = 9.
  EXPECT_EQ(frozen_target(1e-18, INT64_MAX), 9);
}

TEST(InqPartition, FrozenTargetRejectsBadArguments) {
  for (double s : {0.0, -0.5, 1.5, double(NAN), double(INFINITY)})
    EXPECT_THROW(frozen_target(s, 10), Error) << s;
  EXPECT_THROW(frozen_target(0.5, -1), Error);
}

TEST(InqPartition, MagnitudeTakesLargestFirstTiesByLowerIndex) {
  Generator gen(1);
  const Tensor w = Tensor::from_vector({2, 3}, {0.1f, -0.5f, 0.3f, 0.5f, -0.2f, 0.05f});
  Tensor trainable = ones_like(w);
  EXPECT_EQ(choose_partition(w, trainable, 1, PartitionStrategy::Magnitude, gen, "w"),
            (std::vector<int64_t>{1}));
  EXPECT_EQ(choose_partition(w, trainable, 3, PartitionStrategy::Magnitude, gen, "w"),
            (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(choose_partition(w, trainable, 0, PartitionStrategy::Magnitude, gen, "w"),
            (std::vector<int64_t>{}));
  EXPECT_EQ(choose_partition(w, trainable, 6, PartitionStrategy::Magnitude, gen, "w"),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  // Frozen entries are never chosen again, however large.
  trainable.data()[1] = 0;
  trainable.data()[3] = 0;
  EXPECT_EQ(choose_partition(w, trainable, 2, PartitionStrategy::Magnitude, gen, "w"),
            (std::vector<int64_t>{2, 4}));
}

TEST(InqPartition, MagnitudeMatchesBruteForceWithManyTies) {
  Generator gen(5);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(gen.uniform_int(60));
    Tensor w = Tensor::empty({n}), trainable = Tensor::empty({n});
    int64_t free = 0;
    for (int64_t i = 0; i < n; ++i) {
      w.data()[i] = static_cast<float>(static_cast<int>(gen.uniform_int(7)) - 3) * 0.25f;  // many ties, +-
      trainable.data()[i] = gen.bernoulli(0.7) ? 1.0f : 0.0f;
      free += trainable.data()[i] != 0;
    }
    const int64_t count = static_cast<int64_t>(gen.uniform_int(static_cast<uint64_t>(free) + 1));
    ASSERT_EQ(choose_partition(w, trainable, count, PartitionStrategy::Magnitude, gen, "w"),
              reference_magnitude(w, trainable, count))
        << "trial " << trial;
  }
}

TEST(InqPartition, MagnitudeDoesNotUseTheGenerator) {
  Generator gen(9);
  const std::string before = gen.state();
  const Tensor w = Tensor::from_vector({3}, {0.1f, 0.2f, 0.3f});
  choose_partition(w, ones_like(w), 2, PartitionStrategy::Magnitude, gen, "w");
  EXPECT_EQ(gen.state(), before);
}

TEST(InqPartition, RandomChoosesExactlyCountAmongFree) {
  const Tensor w = Tensor::from_vector({8}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor trainable = ones_like(w);
  trainable.data()[0] = trainable.data()[5] = 0;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Generator gen(seed);
    const auto chosen = choose_partition(w, trainable, 4, PartitionStrategy::Random, gen, "w");
    ASSERT_EQ(chosen.size(), 4u);
    EXPECT_TRUE(std::is_sorted(chosen.begin(), chosen.end()));
    EXPECT_EQ(std::adjacent_find(chosen.begin(), chosen.end()), chosen.end());
    for (int64_t i : chosen) EXPECT_NE(trainable.data()[i], 0) << "frozen entry " << i << " chosen";
  }
}

TEST(InqPartition, RandomIsDeterministicPerSeed) {
  const Tensor w = Tensor::zeros({100});
  Generator a(42), b(42), c(43);
  const auto x = choose_partition(w, ones_like(w), 30, PartitionStrategy::Random, a, "w");
  EXPECT_EQ(x, choose_partition(w, ones_like(w), 30, PartitionStrategy::Random, b, "w"));
  EXPECT_NE(x, choose_partition(w, ones_like(w), 30, PartitionStrategy::Random, c, "w"));
  EXPECT_EQ(a.state(), b.state());
}

TEST(InqPartition, RandomSubsetsAreUniform) {
  // 2 of 5 free entries (one more entry is frozen): each of the 10 subsets should come up ~1/10 of the time.
  const Tensor w = Tensor::from_vector({6}, {9, 9, 9, 9, 9, 9});  // magnitudes do not matter
  Tensor trainable = ones_like(w);
  trainable.data()[2] = 0;
  Generator gen(2024);
  std::map<std::vector<int64_t>, int> counts;
  const int trials = 20000;
  for (int t = 0; t < trials; ++t)
    ++counts[choose_partition(w, trainable, 2, PartitionStrategy::Random, gen, "w")];
  EXPECT_EQ(counts.size(), 10u);
  // Binomial(20000, 0.1): std 42; allow 6 std.
  for (const auto& [subset, n] : counts)
    EXPECT_NEAR(n, trials / 10, 255) << fmt::format("{}", fmt::join(subset, ","));
}

TEST(InqPartition, ChooseRejectsBadArguments) {
  Generator gen(0);
  const Tensor w = Tensor::from_vector({3}, {0.1f, NAN, 0.3f});
  Tensor trainable = ones_like(w);
  EXPECT_THROW(choose_partition(w, trainable, 4, PartitionStrategy::Magnitude, gen, "w"), Error);
  EXPECT_THROW(choose_partition(w, trainable, -1, PartitionStrategy::Random, gen, "w"), Error);
  EXPECT_THROW(choose_partition(w, Tensor::full({4}, 1), 1, PartitionStrategy::Magnitude, gen, "w"), Error);
  try {
    choose_partition(w, trainable, 1, PartitionStrategy::Magnitude, gen, "fc.weight");
    FAIL() << "NaN among still-float weights must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc.weight"), std::string::npos) << e.what();
  }
  trainable.data()[1] = 0;  // a frozen NaN is never looked at (it cannot happen, but must not matter)
  EXPECT_EQ(choose_partition(w, trainable, 1, PartitionStrategy::Magnitude, gen, "w"),
            (std::vector<int64_t>{2}));
}

TEST(InqPartition, FrozenSetOnlyGrowsOverASchedule) {
  // Weights move between steps (re-training); previously frozen zeros must stay frozen.
  for (const auto strategy : {PartitionStrategy::Magnitude, PartitionStrategy::Random}) {
    Generator gen(11), noise(12);
    const int64_t n = 57;
    Tensor w = Tensor::empty({n});
    for (int64_t i = 0; i < n; ++i) w.data()[i] = static_cast<float>(noise.normal());
    Tensor trainable = ones_like(w);
    int64_t frozen = 0;
    for (double sigma : portion_preset("resnet18-2bit")) {
      const int64_t need = frozen_target(sigma, n) - frozen;
      const Tensor before = trainable.clone();
      for (int64_t i : choose_partition(w, trainable, need, strategy, gen, "w")) {
        w.data()[i] = 0;  // quantized to zero, say
        trainable.data()[i] = 0;
      }
      frozen += need;
      for (int64_t i = 0; i < n; ++i) {
        if (before.data()[i] == 0) {
          EXPECT_EQ(trainable.data()[i], 0) << "entry " << i << " was unfrozen";
        }
        if (trainable.data()[i] != 0) w.data()[i] += static_cast<float>(noise.normal());  // re-training
      }
      EXPECT_EQ(std::count(trainable.data(), trainable.data() + n, 0.0f), frozen_target(sigma, n));
    }
    EXPECT_EQ(frozen, n);
  }
}

TEST(InqPartition, Presets) {
  const std::vector<double> halving = {0.5, 0.75, 0.875, 1};
  EXPECT_EQ(portion_preset("alexnet"), (std::vector<double>{0.3, 0.6, 0.8, 1}));
  EXPECT_EQ(portion_preset("vgg16"), halving);
  EXPECT_EQ(portion_preset("resnet18"), halving);
  EXPECT_EQ(portion_preset("resnet50"), halving);
  EXPECT_EQ(portion_preset("googlenet"), (std::vector<double>{0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_EQ(portion_preset("resnet18-4bit"), (std::vector<double>{0.3, 0.5, 0.8, 0.9, 0.95, 1}));
  EXPECT_EQ(portion_preset("resnet18-3bit"), (std::vector<double>{0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 1}));
  EXPECT_EQ(portion_preset("resnet18-2bit"),
            (std::vector<double>{0.2, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 1}));
  EXPECT_EQ(portion_preset("5bit"), halving);
  EXPECT_EQ(portion_preset("4bit"), portion_preset("resnet18-4bit"));
  EXPECT_EQ(portion_preset("3bit"), portion_preset("resnet18-3bit"));
  EXPECT_EQ(portion_preset("2bit"), portion_preset("resnet18-2bit"));
  EXPECT_EQ(portion_preset_names().size(), 12u);
  for (int b = 2; b <= 5; ++b) EXPECT_EQ(default_portions(b), portion_preset(fmt::format("{}bit", b)));
  EXPECT_THROW(default_portions(6), Error);
  EXPECT_THROW(default_portions(1), Error);
  try {
    portion_preset("resnet-18");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet18-2bit"), std::string::npos) << e.what();  // lists the names
  }
}

TEST(InqPartition, StrategyNames) {
  for (const auto s : {PartitionStrategy::Magnitude, PartitionStrategy::Random})
    EXPECT_EQ(parse_partition_strategy(partition_strategy_name(s)), s);
  EXPECT_STREQ(partition_strategy_name(PartitionStrategy::Magnitude), "magnitude");
  EXPECT_THROW(parse_partition_strategy("Magnitude"), Error);
}
