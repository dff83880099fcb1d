#pragma once
// Context for an error met while reading a file the user named: the first line of every refusal
// names that file (or its flag), and the inner message is kept as it is.
#include <string>

#include "framework/error.h"

namespace inq {

// `e` unchanged when its first line names `path` already, otherwise
// "Given <flag> '<path>': <e's message>".
inline Error with_file_context(const Error& e, const std::string& flag, const std::string& path) {
  const std::string message = e.what();
  if (message.substr(0, message.find('\n')).find(path) != std::string::npos) return e;
  return Error(fmt::format("Given {} '{}': {}", flag, path, message));
}

}  // namespace inq
