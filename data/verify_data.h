#pragma once
// `inq verify-data DIR`: decodes every image an ImageFolder would load, on several threads, and
// reports each file that fails with its reason, so bad files are found before a long run stops on
// them. DIR is a dataset root holding train/ and/or val/ (each checked), or an image folder itself.
//
// Exit status: 0 every image decodes; 3 some do not (each printed); 1 DIR is not a readable image
// folder (no class folders, a class without images, an unreadable directory); 2 bad flags.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace inq {

inline constexpr int kVerifyDataFoundBadImages = 3;

struct BadImage {
  std::string path;
  std::string reason;  // the decoding error (names the path too)
};

struct VerifyDataReport {
  std::vector<std::string> folders;  // the image folders checked
  int64_t images = 0;
  std::vector<BadImage> bad;  // in listing order
};

// The image folders verify-data checks under `dir`: dir/train and dir/val where present, else dir.
std::vector<std::string> verify_data_folders(const std::string& dir);
// Lists each folder (throws inq::Error when one is not an image folder) and decodes every image
// with `threads` threads (0 = the hardware's). Progress goes to `progress` when it is not null.
VerifyDataReport verify_image_data(const std::string& dir, int threads, std::FILE* progress);
// Prints the bad files and a summary to `out`; returns the exit status (0 or 3).
int print_verify_data_report(const VerifyDataReport& report, std::FILE* out);

}  // namespace inq
