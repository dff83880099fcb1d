#pragma once
// The one error type of the library. Library code throws it and never calls exit or abort, so
// tests can EXPECT_THROW and the command-line tool can turn it into a message and an exit status.
// Messages follow "Given ..., expected ..., but got ... instead" and name the shapes or values.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace inq {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws inq::Error with a fmt-formatted message when `cond` is false.
#define INQ_CHECK(cond, ...)                                   \
  do {                                                         \
    if (!(cond)) throw ::inq::Error(::fmt::format(__VA_ARGS__)); \
  } while (0)

}  // namespace inq
