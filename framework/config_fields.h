#pragma once
// Helpers for configuration sections (data/data_config.h, optim/optim_config.h, inq/inq_config.h,
// train/train_config.h). A section lists its fields once, as (JSON key, member) pairs, in a member
//   template <class Self, class Visit> static void fields(Self& self, Visit&& visit);
// and the helpers below write those keys into a JSON object, read them back strictly
// (framework/json_value.h), and check ranges with messages that name the key. Sections share one
// flat JSON object (config.json, a checkpoint's "config"): each reads only its own keys, and the
// caller refuses keys no section took.
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "framework/error.h"
#include "framework/json_value.h"

namespace inq {

template <class Section>
void write_config_fields(const Section& section, nlohmann::json& j) {
  Section::fields(section, [&j](const char* key, const auto& value) { j[key] = value; });
}

// Reads the section's keys that `j` has (missing keys keep their defaults) and adds each key read
// to `used`.
template <class Section>
void read_config_fields(Section& section, const nlohmann::json& j, std::set<std::string>& used) {
  Section::fields(section, [&](const char* key, auto& value) {
    if (!j.contains(key)) return;
    value = json_value<std::decay_t<decltype(value)>>(j.at(key), fmt::format("configuration key '{}'", key));
    used.insert(key);
  });
}

template <typename T>
void check_config_range(const char* key, T value, T lo, T hi) {
  INQ_CHECK(value >= lo && value <= hi, "Given a training configuration with {} = {}, expected a value in [{}, {}]",
            key, value, lo, hi);
}

inline void check_config_real(const char* key, double value, double lo, double hi) {
  INQ_CHECK(std::isfinite(value) && value >= lo && value <= hi,
            "Given a training configuration with {} = {}, expected a finite value in [{}, {}]", key, value, lo, hi);
}

// Bounds shared by the sections. kMaxEpochs and kMaxBatchSize keep the iteration arithmetic
// (epochs x batches per epoch, milestones x batches per epoch) far from int64 overflow, so a config
// read back from a crafted checkpoint or config.json cannot reach it.
inline constexpr int64_t kMaxEpochs = 1'000'000;
inline constexpr int64_t kMaxBatchSize = int64_t{1} << 20;
inline constexpr int64_t kMaxConfigCount = int64_t{1} << 40;  // examples, classes, images to skip

}  // namespace inq
