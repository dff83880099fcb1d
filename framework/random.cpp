#include "framework/random.h"

#include <cmath>
#include <numbers>
#include <sstream>

#include "framework/error.h"

namespace inq {

uint64_t Generator::uniform_int(uint64_t n) {
  INQ_CHECK(n > 0, "Given uniform_int(n) with n = 0, expected n > 0");
  // Reject the top partial bucket so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do {
    r = engine_();
  } while (r >= limit);
  return r % n;
}

double Generator::normal(double mean, double stddev) {
  if (has_spare_normal_) {
    has_spare_normal_ = false;
    return mean + stddev * spare_normal_;
  }
  double u1;
  do {
    u1 = uniform_double();
  } while (u1 <= 0.0);
  const double u2 = uniform_double();
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 2.0 * std::numbers::pi * u2;
  spare_normal_ = radius * std::sin(angle);
  has_spare_normal_ = true;
  return mean + stddev * radius * std::cos(angle);
}

std::string Generator::state() const {
  std::ostringstream out;
  out << engine_ << ' ' << (has_spare_normal_ ? 1 : 0) << ' ';
  out.precision(17);
  out << spare_normal_;
  return out.str();
}

void Generator::set_state(const std::string& s) {
  std::istringstream in(s);
  std::mt19937_64 engine;
  int spare_flag = 0;
  double spare = 0.0;
  in >> engine >> spare_flag >> spare;
  INQ_CHECK(!in.fail(), "Given a random generator state string of {} characters, expected a valid "
            "mt19937_64 state followed by the normal spare", s.size());
  engine_ = engine;
  has_spare_normal_ = spare_flag != 0;
  spare_normal_ = spare;
}

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

void seed_all(uint64_t seed) { default_generator().seed(seed); }

}  // namespace inq
