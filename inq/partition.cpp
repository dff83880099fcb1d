#include "inq/partition.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>

#include "framework/error.h"

namespace inq {

void validate_portions(std::span<const double> portions) {
  INQ_CHECK(!portions.empty(),
            "Given an empty list of accumulated portions, expected sigma_1 < ... < sigma_K = 1");
  for (size_t i = 0; i < portions.size(); ++i) {
    const double p = portions[i];
    INQ_CHECK(std::isfinite(p) && p > 0 && p <= 1,
              "Given accumulated portions {}, expected every portion in (0, 1], but portion {} is {}",
              fmt::join(portions, ", "), i + 1, p);
    if (i > 0)
      INQ_CHECK(
          p > portions[i - 1],
          "Given accumulated portions {}, expected them strictly increasing, but portion {} ({}) is not "
          "above portion {} ({})",
          fmt::join(portions, ", "), i + 1, p, i, portions[i - 1]);
  }
  INQ_CHECK(
      portions.back() == 1.0,
      "Given accumulated portions {}, expected the last one to be 1 (every weight quantized), but got {} "
      "instead",
      fmt::join(portions, ", "), portions.back());
}

namespace {

using u128 = unsigned __int128;

// The most decimal digits whose power of ten (the denominator) fits in an int64.
constexpr int kMaxDecimalDigits = 18;

// floor(sigma * n) from the binary value of sigma itself: sigma = m * 2^(e - 53) exactly.
int64_t floor_product_binary(double sigma, int64_t n) {
  int e = 0;
  const double f = std::frexp(sigma, &e);  // f in [0.5, 1)
  const int mantissa_bits = std::numeric_limits<double>::digits;
  const auto m = static_cast<uint64_t>(std::ldexp(f, mantissa_bits));
  const int shift = mantissa_bits - e;  // sigma <= 1 gives e <= 1, so shift >= 52
  if (shift >= 128) return 0;
  return static_cast<int64_t>((u128{m} * static_cast<uint64_t>(n)) >> shift);
}

}  // namespace

int64_t frozen_target(double sigma, int64_t n) {
  INQ_CHECK(std::isfinite(sigma) && sigma > 0 && sigma <= 1,
            "Given portion sigma = {}, expected a value in (0, 1]", sigma);
  INQ_CHECK(n >= 0, "Given n = {} weights, expected n >= 0", n);
  if (sigma == 1) return n;
  // The shortest fixed-notation decimal that converts back to sigma, e.g. "0.7".
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), sigma, std::chars_format::fixed);
  const std::string text(buf, ec == std::errc() ? end : buf);
  const size_t point = text.find('.');
  const size_t digits = point == std::string::npos ? 0 : text.size() - point - 1;
  if (ec != std::errc() || point == std::string::npos || text.compare(0, point, "0") != 0 || digits == 0 ||
      digits > kMaxDecimalDigits)
    return floor_product_binary(sigma, n);  // no short decimal (e.g. 1e-30): the binary value is exact
  uint64_t numerator = 0, denominator = 1;
  for (size_t i = point + 1; i < text.size(); ++i) {
    numerator = numerator * 10 + static_cast<uint64_t>(text[i] - '0');
    denominator *= 10;
  }
  // numerator < 10^18 < 2^60 and n < 2^63: the product fits in 128 bits.
  return static_cast<int64_t>(u128{numerator} * static_cast<uint64_t>(n) / denominator);
}

const char* partition_strategy_name(PartitionStrategy strategy) {
  switch (strategy) {
    case PartitionStrategy::Magnitude:
      return "magnitude";
    case PartitionStrategy::Random:
      return "random";
  }
  throw Error(
      fmt::format("Given partition strategy {}, expected magnitude or random", static_cast<int>(strategy)));
}

PartitionStrategy parse_partition_strategy(const std::string& name) {
  for (const auto s : {PartitionStrategy::Magnitude, PartitionStrategy::Random})
    if (name == partition_strategy_name(s)) return s;
  throw Error(fmt::format("Given partition strategy '{}', expected 'magnitude' or 'random'", name));
}

std::vector<int64_t> choose_partition(const Tensor& w, const Tensor& trainable, int64_t count,
                                      PartitionStrategy strategy, Generator& generator,
                                      const std::string& name) {
  INQ_CHECK(w.defined() && trainable.defined() && w.shape() == trainable.shape(),
            "Given tensor '{}' with shape {} and a trainable mask with shape {}, expected equal shapes", name,
            w.defined() ? shape_str(w.shape()) : "undefined",
            trainable.defined() ? shape_str(trainable.shape()) : "undefined");
  const float* p = w.data();
  const float* t = trainable.data();
  std::vector<int64_t> free;
  for (int64_t i = 0; i < w.numel(); ++i)
    if (t[i] != 0) free.push_back(i);
  INQ_CHECK(count >= 0 && count <= static_cast<int64_t>(free.size()),
            "Given tensor '{}' with {} still-float weights, expected to choose between 0 and {} of them, but "
            "got {} instead",
            name, free.size(), free.size(), count);
  const auto k = static_cast<size_t>(count);
  if (strategy == PartitionStrategy::Magnitude) {
    for (const int64_t i : free)
      INQ_CHECK(std::isfinite(p[i]),
                "Given tensor '{}' with shape {}, expected finite weights, but entry {} is {}", name,
                shape_str(w.shape()), i, p[i]);
    // A strict total order (|w| descending, then index ascending), so the chosen set is unique.
    auto before = [p](int64_t a, int64_t b) {
      const float ma = std::fabs(p[a]), mb = std::fabs(p[b]);
      return ma != mb ? ma > mb : a < b;
    };
    if (k < free.size())
      std::nth_element(free.begin(), free.begin() + static_cast<ptrdiff_t>(k), free.end(), before);
  } else {
    // Partial Fisher-Yates: the first k slots become a uniform random k-subset.
    for (size_t i = 0; i < k; ++i) {
      const size_t j = i + static_cast<size_t>(generator.uniform_int(free.size() - i));
      std::swap(free[i], free[j]);
    }
  }
  free.resize(k);
  std::sort(free.begin(), free.end());
  return free;
}

namespace {

const std::map<std::string, std::vector<double>>& presets() {
  static const std::map<std::string, std::vector<double>> table = [] {
    const std::vector<double> alexnet = {0.3, 0.6, 0.8, 1};
    const std::vector<double> halving = {0.5, 0.75, 0.875, 1};
    const std::vector<double> googlenet = {0.2, 0.4, 0.6, 0.8, 1};
    const std::vector<double> four_bit = {0.3, 0.5, 0.8, 0.9, 0.95, 1};
    const std::vector<double> three_bit = {0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 1};
    const std::vector<double> two_bit = {0.2, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 1};
    return std::map<std::string, std::vector<double>>{
        {"alexnet", alexnet},         {"vgg16", halving},         {"resnet18", halving},
        {"resnet50", halving},        {"googlenet", googlenet},   {"resnet18-4bit", four_bit},
        {"resnet18-3bit", three_bit}, {"resnet18-2bit", two_bit}, {"5bit", halving},
        {"4bit", four_bit},           {"3bit", three_bit},        {"2bit", two_bit},
    };
  }();
  return table;
}

}  // namespace

std::vector<double> portion_preset(const std::string& name) {
  const auto it = presets().find(name);
  INQ_CHECK(it != presets().end(), "Given portion preset '{}', expected one of: {}", name,
            fmt::join(portion_preset_names(), ", "));
  return it->second;
}

std::vector<std::string> portion_preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, portions] : presets()) names.push_back(name);
  return names;
}

std::vector<double> default_portions(int bits) {
  const std::string name = fmt::format("{}bit", bits);
  INQ_CHECK(presets().count(name) == 1,
            "Given bit-width {}, expected 2, 3, 4 or 5 for a default portion schedule (give the portions "
            "explicitly for other widths)",
            bits);
  return presets().at(name);
}

}  // namespace inq
