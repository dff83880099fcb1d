#pragma once
// Atomic file replacement: the contents go to a temporary file in the target's directory, are
// flushed to disk (fsync) and renamed over the target, then the directory is fsynced. A failure at
// any point removes the temporary file and throws inq::Error naming the path and the system's
// reason; whatever was at the target before stays as it was. Readers never see a partial file.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace inq {

// Writes the concatenation of `pieces` to `path`.
void write_file_atomically(const std::string& path, const std::vector<std::span<const uint8_t>>& pieces);

inline void write_file_atomically(const std::string& path, std::span<const uint8_t> bytes) {
  write_file_atomically(path, std::vector<std::span<const uint8_t>>{bytes});
}

}  // namespace inq
