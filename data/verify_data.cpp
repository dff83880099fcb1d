#include "data/verify_data.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "data/image.h"
#include "data/image_folder.h"
#include "framework/error.h"

namespace inq {

namespace fs = std::filesystem;

std::vector<std::string> verify_data_folders(const std::string& dir) {
  std::vector<std::string> folders;
  std::error_code ec;
  for (const char* split : {"train", "val"}) {
    if (fs::is_directory(fs::path(dir) / split, ec)) folders.push_back((fs::path(dir) / split).string());
  }
  if (folders.empty()) folders.push_back(dir);
  return folders;
}

VerifyDataReport verify_image_data(const std::string& dir, int threads, std::FILE* progress) {
  VerifyDataReport report;
  report.folders = verify_data_folders(dir);
  std::vector<std::string> paths;
  for (const std::string& folder : report.folders) {
    const ImageFolderListing listing = list_image_folder(folder);
    for (const ImageFolderSample& s : listing.samples) paths.push_back(s.path);
    if (progress) {
      fmt::print(progress, "verify-data: {}: {} images in {} classes\n", folder, listing.samples.size(),
                 listing.classes.size());
    }
  }
  report.images = static_cast<int64_t>(paths.size());

  // Each thread claims the next unchecked file; reasons land in their file's slot, so the report
  // comes out in listing order whatever the thread timing. One image per thread is in memory.
  std::vector<std::string> reasons(paths.size());
  std::atomic<size_t> next{0};
  std::atomic<size_t> done{0};
  std::atomic<size_t> failed{0};
  std::mutex mutex;
  std::condition_variable finished;
  int workers = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(workers), std::max<size_t>(paths.size(), 1)));
  auto work = [&] {
    for (size_t i = next++; i < paths.size(); i = next++) {
      try {
        read_image(paths[i]);
      } catch (const std::exception& e) {  // inq::Error, or std::bad_alloc on a huge but valid image
        reasons[i] = e.what();
        ++failed;
      }
      if (++done == paths.size()) {
        std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < workers; ++t) pool.emplace_back(work);
  {
    std::unique_lock<std::mutex> lock(mutex);
    while (!finished.wait_for(lock, std::chrono::seconds(5), [&] { return done.load() == paths.size(); })) {
      if (progress) fmt::print(progress, "verify-data: {}/{} decoded, {} bad\n", done.load(), paths.size(), failed.load());
    }
  }
  for (std::thread& t : pool) t.join();
  for (size_t i = 0; i < paths.size(); ++i) {
    if (!reasons[i].empty()) report.bad.push_back({paths[i], reasons[i]});
  }
  return report;
}

int print_verify_data_report(const VerifyDataReport& report, std::FILE* out) {
  for (const BadImage& b : report.bad) fmt::print(out, "BAD {}: {}\n", b.path, b.reason);
  fmt::print(out, "verify-data: {} images in {}: {} bad\n", report.images, fmt::join(report.folders, ", "),
             report.bad.size());
  return report.bad.empty() ? 0 : kVerifyDataFoundBadImages;
}

}  // namespace inq
