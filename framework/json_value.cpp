#include "framework/json_value.h"

#include <algorithm>
#include <set>

namespace inq {

using json = nlohmann::json;

namespace {

constexpr size_t kExcerptChars = 100;

// "a", "a and b", "a, b and c".
std::string join_and(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += i + 1 == words.size() ? " and " : ", ";
    out += words[i];
  }
  return out;
}

// An index (a size, an offset, a shape dimension): an integer in [0, INT64_MAX]. What is wrong with
// `v` as one, as "to be ..." for messages, or nothing.
std::optional<std::string> index_fault(const json& v) {
  if (!v.is_number_integer()) return "to be integers";
  if (!json_is<int64_t>(v)) return "to fit in 64-bit signed integers";
  if (json_detail::convert<int64_t>(v) < 0) return "to be non-negative";
  return std::nullopt;
}

}  // namespace

std::string json_excerpt(const json& v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > kExcerptChars)
    text = text.substr(0, kExcerptChars) + fmt::format("... ({} characters)", text.size());
  return text;
}

JsonObjectReader::JsonObjectReader(const json& value, std::string given, std::string name,
                                   std::vector<std::string>* problems)
    : value_(value), given_(std::move(given)), name_(std::move(name)), problems_(problems) {}

JsonObjectReader JsonObjectReader::throwing(const json& value, std::string given, std::string name) {
  INQ_CHECK(value.is_object(), "Given {}, expected {} to be an object, but got {} instead", given, name,
            json_excerpt(value));
  return JsonObjectReader(value, std::move(given), std::move(name), nullptr);
}

JsonObjectReader JsonObjectReader::collecting(const json& value, std::string name,
                                              std::vector<std::string>& problems) {
  if (!value.is_object())
    problems.push_back(fmt::format("{} should be an object, but is {}", name, json_excerpt(value)));
  return JsonObjectReader(value, "", std::move(name), &problems);
}

std::string JsonObjectReader::key_name(std::string_view key) const {
  return fmt::format("the {} of {}", key, name_);
}

void JsonObjectReader::report(const std::string& sentence, const std::string& line) {
  if (problems_ == nullptr) throw Error(fmt::format("Given {}, {}", given_, sentence));
  problems_->push_back(fmt::format("{}: {}", name_, line));
}

void JsonObjectReader::ask(std::string_view key) {
  if (std::find(asked_.begin(), asked_.end(), key) == asked_.end()) asked_.emplace_back(key);
}

const json* JsonObjectReader::take(std::string_view key) {
  ask(key);
  // A collecting reader of something that is not an object has recorded that already.
  if (!value_.is_object()) return nullptr;
  const auto it = value_.find(key);
  if (it == value_.end()) {
    report(fmt::format("expected {} to have the key '{}', but it is missing", name_, key),
           fmt::format("missing key '{}'", key));
    return nullptr;
  }
  return &*it;
}

std::optional<std::vector<int64_t>> JsonObjectReader::indices(std::string_view key,
                                                              std::optional<size_t> count,
                                                              std::string_view form) {
  const json* v = take(key);
  if (v == nullptr) return std::nullopt;
  const std::string shape = !form.empty() ? std::string(form)
                            : count       ? fmt::format("an array of {} integers", *count)
                                          : std::string("an array");
  const std::string line = fmt::format("'{}' should be {} of integers in [0, {}], but is {}", key, shape,
                                       std::numeric_limits<int64_t>::max(), json_excerpt(*v));
  if (!v->is_array() || (count && v->size() != *count)) {
    report(fmt::format("expected {} to be {}, but got {} instead", key_name(key), shape, json_excerpt(*v)),
           line);
    return std::nullopt;
  }
  std::vector<int64_t> out;
  for (const json& e : *v) {
    if (const auto fault = index_fault(e)) {
      report(fmt::format("expected the elements of {} {}, but got {} instead", key_name(key), *fault,
                         json_excerpt(e)),
             line);
      return std::nullopt;
    }
    out.push_back(json_detail::convert<int64_t>(e));
  }
  return out;
}

std::optional<JsonObjectReader> JsonObjectReader::object(std::string_view key, std::string name) {
  const json* v = take(key);
  if (v == nullptr) return std::nullopt;
  if (name.empty()) name = key_name(key);
  if (!v->is_object()) {
    report(fmt::format("expected {} to be an object, but got {} instead", name, json_excerpt(*v)),
           fmt::format("'{}' should be an object, but is {}", key, json_excerpt(*v)));
    return std::nullopt;
  }
  return JsonObjectReader(*v, given_, std::move(name), problems_);
}

std::optional<JsonObjectReader> JsonObjectReader::optional_object(std::string_view key, std::string name) {
  if (has(key)) return object(key, std::move(name));
  ask(key);
  return std::nullopt;
}

void JsonObjectReader::reject_unknown() {
  if (!value_.is_object()) return;
  for (const auto& item : value_.items()) {
    const std::string& key = item.key();
    if (std::find(asked_.begin(), asked_.end(), key) != asked_.end()) continue;
    const std::string known = asked_.empty() ? "no keys" : "only the keys " + join_and(asked_);
    report(fmt::format("expected {} in {}, but got '{}' as well", known, name_, key),
           fmt::format("unknown key '{}'", key));
  }
}

json parse_json_object(std::string_view text, std::string_view given, const JsonTextOptions& options) {
  // The keys of every open object; arrays open no set.
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // depth counts from 0 at the root.
        INQ_CHECK(options.max_levels <= 0 || depth < options.max_levels,
                  "Given {}, expected JSON nested at most {} levels deep, but got deeper nesting", given,
                  options.max_levels);
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        INQ_CHECK(open_objects.back().insert(key).second,
                  "Given {}, expected unique keys in each JSON object, but '{}' appears more than once",
                  given, key);
        break;
      }
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), callback);
  } catch (const json::exception& e) {
    throw Error(fmt::format("Given {}, expected a JSON {}, but parsing failed: {}", given, options.document,
                            e.what()));
  }
  INQ_CHECK(root.is_object(), "Given {}, expected a JSON object, but got {} instead", given,
            root.type_name());
  return root;
}

}  // namespace inq
