#pragma once
// Seeded random engine with a fully specified output sequence: std::mt19937_64's sequence is fixed
// by the C++ standard, but std::*_distribution are not, so the distributions are our own. The state
// round-trips through a string so checkpoints can resume a run bit for bit.
#include <cstdint>
#include <random>
#include <string>

namespace inq {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  void seed(uint64_t s) { engine_.seed(s); has_spare_normal_ = false; }

  uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1) with 24 random bits (exactly representable floats).
  float uniform() { return static_cast<float>(engine_() >> 40) * (1.0f / 16777216.0f); }
  // Uniform double in [0, 1) with 53 random bits.
  double uniform_double() { return static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform integer in [0, n), unbiased (rejection sampling). n must be > 0.
  uint64_t uniform_int(uint64_t n);
  // Normal(mean, stddev) by the Box-Muller transform, in double.
  double normal(double mean = 0.0, double stddev = 1.0);
  bool bernoulli(double p) { return uniform_double() < p; }

  // Serialized state (engine text + Box-Muller spare), for checkpoints.
  std::string state() const;
  void set_state(const std::string& s);

 private:
  std::mt19937_64 engine_;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

// The process-wide generator used for parameter initialization and dropout masks. Seed it once
// (inq::seed_all); checkpoints save and restore its state.
Generator& default_generator();
void seed_all(uint64_t seed);

}  // namespace inq
