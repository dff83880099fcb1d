// The shared strict JSON reader (framework/json_value.h): the type rules of json_value and
// JsonObjectReader, indices, required / optional / unknown keys, nested names in messages, the
// collecting reader, and parse_json_object's refusals. Values come from JSON text where the
// representation matters (nlohmann keeps a parsed non-negative integer as unsigned, a negative one as
// signed, and anything with a fraction, an exponent or beyond 64 bits as a float).
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "error_testing.h"
#include "framework/error.h"
#include "framework/json_value.h"

using namespace inq;
using json = nlohmann::json;
using test::expect_error;

namespace {

// The message of the inq::Error `f` throws ("" and a failure when it throws nothing).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "nothing was thrown";
  return "";
}

// A throwing reader of `j` (which must outlive it) in the document "doc", naming the object "config".
JsonObjectReader reader(const json& j) { return JsonObjectReader::throwing(j, "doc", "config"); }

}  // namespace

TEST(JsonRules, IntegersMustBeJsonIntegers) {
  EXPECT_EQ(json_value<int>(json::parse("7"), "x"), 7);
  EXPECT_EQ(json_value<int>(json::parse("-7"), "x"), -7);
  // A float is refused even when its value is a whole number that fits.
  for (const char* text : {"2.0", "1e1", "2.5", "-0.0", "\"7\"", "true", "null", "[1]", "{}"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(json_is<int>(json::parse(text)));
    expect_error([&] { json_value<int>(json::parse(text), "the key"); }, {"Given the key", "expected an integer"});
  }
}

TEST(JsonRules, IntegersMustFitTheirType) {
  EXPECT_EQ(json_value<int>(json::parse("2147483647"), "x"), INT32_MAX);
  EXPECT_EQ(json_value<int>(json::parse("-2147483648"), "x"), INT32_MIN);
  EXPECT_EQ(json_value<int64_t>(json::parse("9223372036854775807"), "x"), INT64_MAX);
  EXPECT_EQ(json_value<int64_t>(json::parse("-9223372036854775808"), "x"), INT64_MIN);
  EXPECT_EQ(json_value<uint64_t>(json::parse("18446744073709551615"), "x"), UINT64_MAX);
  EXPECT_EQ(json_value<uint8_t>(json::parse("255"), "x"), 255);
  expect_error([] { json_value<int>(json::parse("2147483648"), "x"); },
               {"expected an integer in [-2147483648, 2147483647], but got 2147483648 instead"});
  expect_error([] { json_value<int>(json::parse("-2147483649"), "x"); }, {"-2147483649"});
  expect_error([] { json_value<int64_t>(json::parse("9223372036854775808"), "x"); }, {"9223372036854775808"});
  expect_error([] { json_value<uint64_t>(json::parse("-1"), "x"); }, {"[0, 18446744073709551615]", "-1"});
  expect_error([] { json_value<uint8_t>(json::parse("256"), "x"); }, {"[0, 255]"});
  // Beyond 64 bits JSON readers hold a float: refused, never wrapped or cast.
  expect_error([] { json_value<uint64_t>(json::parse("18446744073709551616"), "x"); }, {"expected an integer"});
  expect_error([] { json_value<int64_t>(json::parse("1.9e21"), "x"); }, {"expected an integer"});
}

TEST(JsonRules, BoolsNumbersAndStringsMustBeTheirJsonType) {
  EXPECT_TRUE(json_value<bool>(json::parse("true"), "x"));
  EXPECT_FALSE(json_value<bool>(json::parse("false"), "x"));
  for (const char* text : {"1", "0", "\"true\"", "null"})
    expect_error([&] { json_value<bool>(json::parse(text), "x"); }, {"expected true or false", text});

  EXPECT_EQ(json_value<double>(json::parse("3"), "x"), 3.0);  // an integer is a number
  EXPECT_EQ(json_value<double>(json::parse("-3"), "x"), -3.0);
  EXPECT_EQ(json_value<double>(json::parse("0.25"), "x"), 0.25);
  EXPECT_EQ(json_value<float>(json::parse("1e3"), "x"), 1000.0f);
  for (const char* text : {"\"1\"", "null", "true", "[1]"})
    expect_error([&] { json_value<double>(json::parse(text), "x"); }, {"expected a number", text});

  EXPECT_EQ(json_value<std::string>(json::parse("\"s\""), "x"), "s");
  for (const char* text : {"1", "null", "[\"s\"]", "{}"})
    expect_error([&] { json_value<std::string>(json::parse(text), "x"); }, {"expected a string", text});
}

TEST(JsonRules, ArraysHoldElementsOfTheElementTypeAndMessagesNameTheElement) {
  EXPECT_EQ(json_value<std::vector<int>>(json::parse("[1, -2]"), "x"), (std::vector<int>{1, -2}));
  EXPECT_TRUE(json_value<std::vector<std::string>>(json::parse("[]"), "x").empty());
  EXPECT_EQ(json_value<std::vector<std::vector<int>>>(json::parse("[[1], []]"), "x"),
            (std::vector<std::vector<int>>{{1}, {}}));
  expect_error([] { json_value<std::vector<int>>(json::parse("{\"0\": 1}"), "x"); },
               {"Given x, expected an array of integers in [-2147483648, 2147483647], but got {\"0\":1} instead"});
  expect_error([] { json_value<std::vector<int>>(json::parse("1"), "x"); }, {"expected an array"});
  expect_error([] { json_value<std::vector<int>>(json::parse("[1, 2.5]"), "list"); },
               {"Given list [1], expected an integer", "2.5"});
  expect_error([] { json_value<std::vector<std::vector<int>>>(json::parse("[[1], [2, \"3\"]]"), "list"); },
               {"Given list [1] [1], expected an integer", "\"3\""});
  expect_error([] { json_value<std::vector<std::string>>(json::parse("[\"a\", null]"), "list"); },
               {"list [1]", "expected a string"});
}

TEST(JsonRules, KindsNameTheRule) {
  EXPECT_EQ(json_kind<int8_t>(), "an integer in [-128, 127]");
  EXPECT_EQ(json_kind<uint16_t>(true), "integers in [0, 65535]");
  EXPECT_EQ(json_kind<bool>(), "true or false");
  EXPECT_EQ(json_kind<double>(), "a number");
  EXPECT_EQ(json_kind<std::string>(), "a string");
  EXPECT_EQ(json_kind<std::vector<std::string>>(), "an array of strings");
  EXPECT_EQ(json_kind<std::vector<std::vector<double>>>(), "an array of arrays of numbers");
}

TEST(JsonRules, MessagesShortenLongValues) {
  const json long_array(std::vector<int>(2000, 0));  // "[0,0,...]": 4001 characters
  const std::string excerpt = json_excerpt(long_array);
  EXPECT_LT(excerpt.size(), 150u);
  EXPECT_EQ(excerpt.rfind("[0,0,", 0), 0u) << excerpt;
  EXPECT_NE(excerpt.find("4001 characters"), std::string::npos) << excerpt;
  EXPECT_EQ(json_excerpt(json::parse("[1, 2]")), "[1,2]");
  // Invalid UTF-8 (from a value built in memory) does not make the message itself throw.
  EXPECT_NO_THROW(json_excerpt(json(std::string("\xFF"))));
}

TEST(JsonObjectReader, RequiredKeysMustBeThereWithTheirType) {
  const json j = json::parse(R"({"n": 3, "name": "a", "xs": [1.5, 2], "flag": true})");
  JsonObjectReader r = reader(j);
  EXPECT_EQ(r.required<int>("n"), 3);
  EXPECT_EQ(r.required<std::string>("name"), "a");
  EXPECT_EQ(r.required<std::vector<double>>("xs"), (std::vector<double>{1.5, 2}));
  EXPECT_EQ(r.required<bool>("flag"), true);
  EXPECT_EQ(error_of([&] { r.required<int>("missing"); }),
            "Given doc, expected config to have the key 'missing', but it is missing");
  EXPECT_EQ(error_of([&] { r.required<std::string>("n"); }),
            "Given doc, expected the n of config to be a string, but got 3 instead");
  EXPECT_EQ(error_of([&] { r.required<int>("xs"); }),
            "Given doc, expected the xs of config to be an integer in [-2147483648, 2147483647], but got [1.5,2] "
            "instead");
  expect_error([&] { r.required<std::vector<int>>("xs"); }, {"the xs of config [0]", "expected", "1.5"});
  expect_error([&] { r.required<double>("flag"); }, {"the flag of config to be a number"});
}

TEST(JsonObjectReader, FloatsAndOverflowAreRefusedForIntegerKeys) {
  const json j = json::parse(R"({"whole_float": 2.0, "big": 4294967296, "huge": 1e300, "negative": -1})");
  JsonObjectReader r = reader(j);
  expect_error([&] { r.required<int64_t>("whole_float"); }, {"the whole_float of config", "an integer", "2.0"});
  expect_error([&] { r.required<int>("big"); }, {"the big of config", "4294967296"});
  EXPECT_EQ(r.required<int64_t>("big"), int64_t{1} << 32);
  expect_error([&] { r.required<int64_t>("huge"); }, {"the huge of config", "an integer"});
  expect_error([&] { r.required<uint32_t>("negative"); }, {"[0, 4294967295]", "-1"});
}

TEST(JsonObjectReader, OptionalKeysMayBeAbsentButNotMistyped) {
  const json j = json::parse(R"({"n": 3, "s": 1})");
  JsonObjectReader r = reader(j);
  EXPECT_EQ(r.optional<int>("n"), 3);
  EXPECT_EQ(r.optional<int>("absent"), std::nullopt);
  expect_error([&] { r.optional<std::string>("s"); }, {"the s of config to be a string"});
  EXPECT_FALSE(r.optional_object("absent_object").has_value());
}

TEST(JsonObjectReader, UnknownKeysAreReportedByName) {
  const json j = json::parse(R"({"a": 1, "b": 2, "zz": 3})");
  JsonObjectReader r = reader(j);
  r.required<int>("a");
  r.optional<int>("b");
  r.optional<int>("absent");  // asked for: known even though absent
  EXPECT_EQ(error_of([&] { r.reject_unknown(); }),
            "Given doc, expected only the keys a, b and absent in config, but got 'zz' as well");
  r.required<int>("zz");
  EXPECT_NO_THROW(r.reject_unknown());

  const json two = json::parse(R"({"x": 1})");
  JsonObjectReader nothing_asked = reader(two);
  expect_error([&] { nothing_asked.reject_unknown(); }, {"expected no keys in config, but got 'x' as well"});
}

TEST(JsonObjectReader, NestedObjectsAreNamedInMessages) {
  const json j = json::parse(R"({"a": {"b": {"c": "x", "d": 1}}, "t": {"dtype": 5}, "s": [1]})");
  JsonObjectReader r = reader(j);
  JsonObjectReader a = *r.object("a");
  EXPECT_EQ(a.name(), "the a of config");
  JsonObjectReader b = *a.object("b");
  EXPECT_EQ(error_of([&] { b.required<int>("c"); }),
            "Given doc, expected the c of the b of the a of config to be an integer in [-2147483648, "
            "2147483647], but got \"x\" instead");
  expect_error([&] { b.required<int>("missing"); }, {"expected the b of the a of config to have the key 'missing'"});
  expect_error([&] { b.reject_unknown(); }, {"in the b of the a of config, but got 'd' as well"});
  // A name of the caller's choosing.
  JsonObjectReader t = *r.object("t", "tensor 't'");
  expect_error([&] { t.required<std::string>("dtype"); }, {"expected the dtype of tensor 't' to be a string"});
  // A key that must hold an object but does not.
  expect_error([&] { r.object("s"); }, {"Given doc, expected the s of config to be an object, but got [1] instead"});
  expect_error([&] { r.object("s", "the list"); }, {"expected the list to be an object"});
  expect_error([&] { r.object("missing"); }, {"to have the key 'missing'"});
}

TEST(JsonObjectReader, ThrowingReaderNeedsAnObject) {
  const json j = json::parse("[1, 2]");
  EXPECT_EQ(error_of([&] { JsonObjectReader::throwing(j, "doc", "config"); }),
            "Given doc, expected config to be an object, but got [1,2] instead");
}

TEST(JsonObjectReader, IndicesAreNonNegativeIntegersThatFitInt64) {
  const json j = json::parse(R"({"shape": [2, 0, 9223372036854775807], "empty": [], "neg": [1, -1],
      "float": [2.0], "str": ["2"], "big": [9223372036854775808], "huger": [18446744073709551616],
      "scalar": 3, "pair": [0, 4], "triple": [0, 4, 8]})");
  JsonObjectReader r = reader(j);
  EXPECT_EQ(r.indices("shape"), (std::vector<int64_t>{2, 0, INT64_MAX}));
  EXPECT_EQ(r.indices("empty"), std::vector<int64_t>{});
  EXPECT_EQ(r.indices("pair", 2), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(error_of([&] { r.indices("neg"); }),
            "Given doc, expected the elements of the neg of config to be non-negative, but got -1 instead");
  expect_error([&] { r.indices("float"); }, {"elements of the float of config to be integers, but got 2.0"});
  expect_error([&] { r.indices("str"); }, {"to be integers, but got \"2\""});
  expect_error([&] { r.indices("big"); }, {"to fit in 64-bit signed integers, but got 9223372036854775808"});
  expect_error([&] { r.indices("huger"); }, {"to be integers"});
  expect_error([&] { r.indices("scalar"); }, {"expected the scalar of config to be an array, but got 3 instead"});
  expect_error([&] { r.indices("triple", 2); }, {"the triple of config to be an array of 2 integers"});
  expect_error([&] { r.indices("triple", 2, "[begin, end]"); }, {"to be [begin, end], but got [0,4,8] instead"});
  expect_error([&] { r.indices("absent"); }, {"to have the key 'absent'"});
}

TEST(JsonObjectReader, CollectingReaderListsEveryProblemAndReadsOn) {
  const json j = json::parse(R"({"n": 0.5, "s": "ok", "extra": 1, "sub": {"m": "x", "u": 2}, "bad": []})");
  std::vector<std::string> problems;
  JsonObjectReader r = JsonObjectReader::collecting(j, "metadata", problems);
  EXPECT_EQ(r.required<int>("n"), std::nullopt);
  EXPECT_EQ(r.required<std::string>("s"), "ok");
  EXPECT_EQ(r.required<int>("missing"), std::nullopt);
  EXPECT_EQ(r.indices("s"), std::nullopt);
  EXPECT_FALSE(r.object("bad").has_value());
  auto sub = r.object("sub", "tensor 'w'");
  ASSERT_TRUE(sub.has_value());
  EXPECT_EQ(sub->required<int>("m"), std::nullopt);
  sub->reject_unknown();
  r.reject_unknown();
  EXPECT_EQ(problems, (std::vector<std::string>{
                          "metadata: 'n' should be an integer in [-2147483648, 2147483647], but is 0.5",
                          "metadata: missing key 'missing'",
                          "metadata: 's' should be an array of integers in [0, 9223372036854775807], but is \"ok\"",
                          "metadata: 'bad' should be an object, but is []",
                          "tensor 'w': 'm' should be an integer in [-2147483648, 2147483647], but is \"x\"",
                          "tensor 'w': unknown key 'u'",
                          "metadata: unknown key 'extra'",
                      }));

  // Not an object: one line, and nothing is read from it.
  const json array = json::parse("[]");
  std::vector<std::string> more;
  JsonObjectReader not_object = JsonObjectReader::collecting(array, "metadata", more);
  EXPECT_EQ(not_object.required<int>("n"), std::nullopt);
  not_object.reject_unknown();
  EXPECT_EQ(more, std::vector<std::string>{"metadata should be an object, but is []"});
}

TEST(ParseJsonObject, RefusesDuplicateKeysInAnyObject) {
  EXPECT_EQ(parse_json_object(R"({"a": {"a": 1}, "b": {"a": 2}})", "doc")["b"]["a"], 2);
  EXPECT_EQ(error_of([] { parse_json_object(R"({"a": 1, "a": 1})", "doc"); }),
            "Given doc, expected unique keys in each JSON object, but 'a' appears more than once");
  expect_error([] { parse_json_object(R"({"x": [{"k": 1, "k": 2}]})", "doc"); }, {"'k' appears more than once"});
  expect_error([] { parse_json_object(R"({"x": {"k": 1, "j": {}, "k": 2}})", "doc"); },
               {"'k' appears more than once"});
}

TEST(ParseJsonObject, RefusesNestingBeyondTheLimit) {
  const JsonTextOptions three{.max_levels = 3};
  EXPECT_NO_THROW(parse_json_object(R"({"t": {"shape": [1]}})", "doc", three));
  EXPECT_NO_THROW(parse_json_object(R"({"t": [[1]]})", "doc", three));
  EXPECT_EQ(error_of([&] { parse_json_object(R"({"t": [[[1]]]})", "doc", three); }),
            "Given doc, expected JSON nested at most 3 levels deep, but got deeper nesting");
  expect_error([&] { parse_json_object(R"({"t": {"u": {"v": {}}}})", "doc", three); }, {"at most 3 levels"});
  // No limit by default.
  EXPECT_NO_THROW(parse_json_object(R"({"t": [[[[[[1]]]]]]})", "doc"));
}

TEST(ParseJsonObject, RefusesTextThatIsNotOneJsonObject) {
  expect_error([] { parse_json_object("{", "doc"); }, {"Given doc, expected a JSON object, but parsing failed"});
  expect_error([] { parse_json_object(R"({} x)", "doc", {.document = "header"}); },
               {"Given doc, expected a JSON header, but parsing failed"});
  expect_error([] { parse_json_object(R"({"a": 1,})", "doc"); }, {"parsing failed"});
  EXPECT_EQ(error_of([] { parse_json_object("[]", "doc"); }),
            "Given doc, expected a JSON object, but got array instead");
  expect_error([] { parse_json_object("\"x\"", "doc"); }, {"expected a JSON object, but got string"});
  EXPECT_TRUE(parse_json_object(" {} ", "doc").empty());
}
