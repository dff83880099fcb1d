#pragma once
// Strict conversion of one JSON value read from a file (run configurations, checkpoint metadata)
// into a C++ value. nlohmann's get<T>() converts a JSON float into an integer type with a plain
// cast (undefined behaviour when out of range, truncation otherwise) and wraps integers that do not
// fit; found by tests/fuzz (fuzz_checkpoint) on a checkpoint whose config said "epochs": 1.9e21.
// Here the JSON type must be the C++ one (an integer for integer types, any number for floating
// point, a boolean, a string, an array of those) and integers must fit, or inq::Error is thrown.
#include <fmt/format.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "framework/error.h"

namespace inq {

template <class T>
struct IsVector : std::false_type {};
template <class E>
struct IsVector<std::vector<E>> : std::true_type {};

// `what` names the value in messages, e.g. "configuration key 'epochs'".
template <class T>
T json_value(const nlohmann::json& v, std::string_view what) {
  if constexpr (std::is_same_v<T, bool>) {
    INQ_CHECK(v.is_boolean(), "Given {}, expected true or false, but got {} instead", what, v.dump());
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    // nlohmann keeps non-negative integers as unsigned, negative ones as signed, and anything with a
    // fraction or an exponent, or beyond 64 bits, as a float.
    const bool fits = v.is_number_unsigned()  ? std::in_range<T>(v.get<uint64_t>())
                      : v.is_number_integer() ? std::in_range<T>(v.get<int64_t>())
                                              : false;
    INQ_CHECK(fits, "Given {}, expected an integer in [{}, {}], but got {} instead", what,
              std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), v.dump());
    return v.is_number_unsigned() ? static_cast<T>(v.get<uint64_t>()) : static_cast<T>(v.get<int64_t>());
  } else if constexpr (std::is_floating_point_v<T>) {
    INQ_CHECK(v.is_number(), "Given {}, expected a number, but got {} instead", what, v.dump());
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    INQ_CHECK(v.is_string(), "Given {}, expected a string, but got {} instead", what, v.dump());
    return v.get<std::string>();
  } else {
    static_assert(IsVector<T>::value, "json_value reads integers, floating point, bool, strings and vectors");
    INQ_CHECK(v.is_array(), "Given {}, expected an array, but got {} instead", what, v.dump());
    T out;
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(json_value<typename T::value_type>(v[i], fmt::format("{} [{}]", what, i)));
    return out;
  }
}

}  // namespace inq
