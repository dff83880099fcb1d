#pragma once
// The one strict reader of JSON read from files: safetensors headers, INQ state metadata, run
// configurations, checkpoint metadata. nlohmann::json alone is lenient where a file must not be:
// get<T>() converts a JSON float into an integer type with a plain cast (undefined behaviour when out
// of range, truncation otherwise) and wraps integers that do not fit (found by tests/fuzz
// (fuzz_checkpoint) on a checkpoint whose config said "epochs": 1.9e21), and parse() keeps the last
// of duplicate keys silently. The rules here:
// - values (json_value, JsonObjectReader): the JSON type must be the C++ one: an integer for integer
//   types, and it must fit; any number for floating point; true or false for bool; a string; an
//   array of those for std::vector.
// - indices (JsonObjectReader::indices: sizes, offsets, shape dimensions): integers in [0, INT64_MAX].
// - objects (JsonObjectReader): read key by key; a required key must be there, and reject_unknown()
//   refuses every key that no read asked for.
// - text (parse_json_object): no duplicate keys in any object, no nesting beyond a limit, an object
//   at the root.
// A problem is an inq::Error "Given <what>, expected ..., but got ... instead"; a collecting
// JsonObjectReader lists every problem as a line "<object>: ..." instead, for one error that names
// them all.
#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "framework/error.h"

namespace inq {

namespace json_detail {

template <class T>
struct IsVector : std::false_type {};
template <class E>
struct IsVector<std::vector<E>> : std::true_type {};

template <class T>
inline constexpr bool kIsInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// Where a value breaks the rules and how.
struct Fault {
  std::string at;        // "" for the value itself, " [i]" for an element (" [i] [j]" nested)
  std::string expected;  // json_kind of the offending part: "an integer in [0, 255]"
  std::string got;       // the offending part, as JSON text (shortened)
};

}  // namespace json_detail

// JSON text for messages, cut to ~100 characters (a hostile value can be megabytes long).
std::string json_excerpt(const nlohmann::json& v);

// What a JSON value must be to read as T: "an integer in [0, 255]", "a number", "true or false",
// "a string", "an array of strings"; `plural` gives "integers in [0, 255]", "numbers", ...
template <class T>
std::string json_kind(bool plural = false) {
  if constexpr (std::is_same_v<T, bool>) {
    return plural ? "true or false values" : "true or false";
  } else if constexpr (json_detail::kIsInteger<T>) {
    return fmt::format("{} in [{}, {}]", plural ? "integers" : "an integer", std::numeric_limits<T>::min(),
                       std::numeric_limits<T>::max());
  } else if constexpr (std::is_floating_point_v<T>) {
    return plural ? "numbers" : "a number";
  } else if constexpr (std::is_same_v<T, std::string>) {
    return plural ? "strings" : "a string";
  } else {
    static_assert(json_detail::IsVector<T>::value,
                  "the JSON reader reads integers, floating point, bool, strings and vectors of those");
    return (plural ? "arrays of " : "an array of ") + json_kind<typename T::value_type>(true);
  }
}

// True when `v` reads as T by the rules at the top.
template <class T>
bool json_is(const nlohmann::json& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v.is_boolean();
  } else if constexpr (json_detail::kIsInteger<T>) {
    // nlohmann keeps non-negative integers as unsigned, negative ones as signed, and anything with a
    // fraction or an exponent, or beyond 64 bits, as a float.
    return v.is_number_unsigned()  ? std::in_range<T>(v.get<uint64_t>())
           : v.is_number_integer() ? std::in_range<T>(v.get<int64_t>())
                                   : false;
  } else if constexpr (std::is_floating_point_v<T>) {
    return v.is_number();
  } else if constexpr (std::is_same_v<T, std::string>) {
    return v.is_string();
  } else {
    static_assert(json_detail::IsVector<T>::value,
                  "the JSON reader reads integers, floating point, bool, strings and vectors of those");
    if (!v.is_array()) return false;
    for (const auto& e : v)
      if (!json_is<typename T::value_type>(e)) return false;
    return true;
  }
}

namespace json_detail {

// The first place where `v` breaks the rules for T, or nothing.
template <class T>
std::optional<Fault> fault(const nlohmann::json& v) {
  if constexpr (IsVector<T>::value) {
    if (!v.is_array()) return Fault{"", json_kind<T>(), json_excerpt(v)};
    for (size_t i = 0; i < v.size(); ++i) {
      if (auto f = fault<typename T::value_type>(v[i])) {
        f->at = fmt::format(" [{}]{}", i, f->at);
        return f;
      }
    }
    return std::nullopt;
  } else {
    if (json_is<T>(v)) return std::nullopt;
    return Fault{"", json_kind<T>(), json_excerpt(v)};
  }
}

// `v` as T; only for values that json_is<T>.
template <class T>
T convert(const nlohmann::json& v) {
  if constexpr (kIsInteger<T>) {
    return v.is_number_unsigned() ? static_cast<T>(v.get<uint64_t>()) : static_cast<T>(v.get<int64_t>());
  } else if constexpr (IsVector<T>::value) {
    T out;
    out.reserve(v.size());
    for (const auto& e : v) out.push_back(convert<typename T::value_type>(e));
    return out;
  } else {
    return v.get<T>();
  }
}

}  // namespace json_detail

// `v` as T, or inq::Error "Given {what}, expected {json_kind<T>()}, but got {v} instead"; an
// element names its index: "Given milestones [1], expected an integer in [...], but got 1e30 instead".
// `what` names the value, e.g. "configuration key 'epochs'".
template <class T>
T json_value(const nlohmann::json& v, std::string_view what) {
  if (auto f = json_detail::fault<T>(v))
    throw Error(fmt::format("Given {}{}, expected {}, but got {} instead", what, f->at, f->expected, f->got));
  return json_detail::convert<T>(v);
}

// Reads one JSON object key by key, strictly. A throwing reader throws inq::Error at the first
// problem, "Given {given}, expected the dtype of tensor 't' to be a string, but got 1 instead"; a
// collecting reader appends a line per problem to a list ("tensor 'w': 'n1' should be ..., but is
// 0.5") and reads on, for one error that names every problem. A read that finds a problem returns
// nothing (only a collecting reader gets that far). The key names are "the {key} of {name}", nested
// objects' too ("the b of the a of config").
//
// The reader keeps a reference to the JSON value: the value must outlive it.
class JsonObjectReader {
 public:
  // `given` names the document in messages ("safetensors file 'x'"), `name` the object ("tensor 't'").
  // Throws when `value` is not an object.
  static JsonObjectReader throwing(const nlohmann::json& value, std::string given, std::string name);
  // When `value` is not an object, records that and reads nothing.
  static JsonObjectReader collecting(const nlohmann::json& value, std::string name,
                                     std::vector<std::string>& problems);

  const std::string& name() const { return name_; }
  const nlohmann::json& value() const { return value_; }
  bool has(std::string_view key) const { return value_.is_object() && value_.contains(key); }

  // A required key read as T (the rules at the top). Missing or mistyped: a problem, and nothing.
  template <class T>
  std::optional<T> required(std::string_view key);
  // The same for a key that may be absent: absent is nothing, and no problem.
  template <class T>
  std::optional<T> optional(std::string_view key);
  // A required key holding an array of indices (integers in [0, INT64_MAX]), of exactly `count`
  // elements when given; `form` describes the array in messages ("[begin, end]").
  std::optional<std::vector<int64_t>> indices(std::string_view key,
                                              std::optional<size_t> count = std::nullopt,
                                              std::string_view form = {});
  // A required key holding an object, read by a reader of the same kind named `name` (default: "the
  // {key} of {this name}").
  std::optional<JsonObjectReader> object(std::string_view key, std::string name = {});
  // The same for a key that may be absent.
  std::optional<JsonObjectReader> optional_object(std::string_view key, std::string name = {});
  // A problem for each key of the object that no read above asked for.
  void reject_unknown();

 private:
  JsonObjectReader(const nlohmann::json& value, std::string given, std::string name,
                   std::vector<std::string>* problems);
  // Marks `key` as known to reject_unknown.
  void ask(std::string_view key);
  // The value of `key`, marking it as asked for; nullptr (and a problem) when it is missing.
  const nlohmann::json* take(std::string_view key);
  std::string key_name(std::string_view key) const;
  // Throws "Given {given}, {sentence}", or records "{name}: {line}".
  void report(const std::string& sentence, const std::string& line);

  const nlohmann::json& value_;
  std::string given_;
  std::string name_;
  std::vector<std::string>* problems_;  // nullptr: a throwing reader
  std::vector<std::string> asked_;      // in the order asked, for messages
};

template <class T>
std::optional<T> JsonObjectReader::required(std::string_view key) {
  const nlohmann::json* v = take(key);
  if (v == nullptr) return std::nullopt;
  if (auto f = json_detail::fault<T>(*v)) {
    report(fmt::format("expected {}{} to be {}, but got {} instead", key_name(key), f->at, f->expected,
                       f->got),
           fmt::format("'{}' should be {}, but is {}", key, json_kind<T>(), json_excerpt(*v)));
    return std::nullopt;
  }
  return json_detail::convert<T>(*v);
}

template <class T>
std::optional<T> JsonObjectReader::optional(std::string_view key) {
  if (has(key)) return required<T>(key);
  ask(key);
  return std::nullopt;
}

// Parses `text`, which must hold one JSON object, refusing what nlohmann accepts silently: a key
// that appears twice in one object (it would keep the last), and (with max_levels > 0) objects and
// arrays nested more than max_levels deep, the root being level 1, refused as soon as they open, which
// bounds the work on hostile input. `given` names the text in messages ("Given {given}, expected ...").
struct JsonTextOptions {
  std::string_view document = "object";  // what the text is: "expected a JSON {document}, but parsing failed"
  int max_levels = 0;                     // 0: any depth
};
nlohmann::json parse_json_object(std::string_view text, std::string_view given,
                                 const JsonTextOptions& options = {});

}  // namespace inq
