#pragma once
// The one way the tests check a rejection: the call throws inq::Error and its message names what
// was wrong (every needle must appear in it). error_of returns the message for closer checks.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "framework/error.h"

namespace inq::test {

inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected inq::Error containing '" << needles.front() << "', but nothing was thrown";
  } catch (const Error& e) {
    const std::string message = e.what();
    for (const std::string& needle : needles)
      EXPECT_NE(message.find(needle), std::string::npos) << "'" << needle << "' not in: " << message;
  }
}

// The message of the inq::Error that f throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace inq::test
