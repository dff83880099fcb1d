#pragma once
// Whole-file helpers. Every output file is written atomically: a temporary file in the same
// directory is written, flushed to disk and renamed over the target, so an interrupted or failed
// write never destroys what the user already had.
#include <string>
#include <utility>
#include <vector>

namespace inq {

// Writes `contents` to `path` atomically (framework/atomic_file.h). Throws inq::Error naming the
// path on failure.
void write_file_atomic(const std::string& path, const std::string& contents);
// Reads a whole file; throws inq::Error naming the path if it cannot.
std::string read_file(const std::string& path);
// Appends one line (a '\n' is added) to a text file, atomically (read, append, rewrite).
void append_line_atomic(const std::string& path, const std::string& line);
// The same for a file that several processes append to at once (a shared results CSV): the read,
// append and rewrite happen under an exclusive flock on the sidecar file `<path>.lock`
// (framework/file_lock.h), so every line lands exactly once. A missing or empty file first gets
// `header` (a line; none when empty), inside the same lock.
void append_line_locked(const std::string& path, const std::string& line, const std::string& header = {});
bool file_exists(const std::string& path);

// Whether two paths name the same file: std::filesystem::equivalent when both exist, else their
// weakly_canonical forms are equal (so "a/../w.safetensors" and "w.safetensors" match too).
bool same_file(const std::string& a, const std::string& b);

// Refuses to write a command's output over one of its own inputs: throws inq::Error naming both
// flags (e.g. "--output" and "--weights") and the path when `output` is the same file as an input.
// `inputs` holds (flag, path) pairs; empty paths are skipped.
void check_output_is_not_input(const std::string& output_flag, const std::string& output,
                               const std::vector<std::pair<std::string, std::string>>& inputs);

}  // namespace inq
