#include "data/image_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <utility>

#include "framework/error.h"

namespace inq {

namespace fs = std::filesystem;

namespace {

struct DirectoryEntries {
  std::vector<std::string> directories;  // names of entries that are (or link to) directories
  std::vector<std::string> others;       // every other name: files, broken links, ...
};

// One directory's entries split the way os.walk splits them (DirEntry.is_dir(), which follows
// symlinks and is false when the target is missing).
DirectoryEntries read_directory(const fs::path& dir) {
  DirectoryEntries out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  INQ_CHECK(!ec, "Given image folder directory '{}', expected a readable directory, but got: {}", dir.string(),
            ec.message());
  for (const fs::directory_iterator end; it != end; it.increment(ec)) {
    std::error_code type_ec;
    const bool is_dir = it->is_directory(type_ec);
    (is_dir ? out.directories : out.others).push_back(it->path().filename().string());
  }
  INQ_CHECK(!ec, "Given image folder directory '{}', expected to list it, but got: {}", dir.string(), ec.message());
  return out;
}

// A directory's identity, to walk a directory reached twice through symlinks only once.
std::pair<uint64_t, uint64_t> directory_identity(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return {0, 0};
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

// os.walk(top, followlinks=True) collected as (directory path string, file names), unsorted.
void walk(const std::string& dir, std::vector<std::pair<std::string, std::vector<std::string>>>& out,
          std::set<std::pair<uint64_t, uint64_t>>& visited) {
  if (!visited.insert(directory_identity(dir)).second) return;
  DirectoryEntries entries = read_directory(dir);
  out.emplace_back(dir, std::move(entries.others));
  for (const std::string& sub : entries.directories) walk(dir + "/" + sub, out, visited);
}

}  // namespace

const std::vector<std::string>& image_folder_extensions() {
  static const std::vector<std::string> extensions = {".jpg", ".jpeg", ".png",  ".ppm", ".bmp",
                                                      ".pgm", ".tif",  ".tiff", ".webp"};
  return extensions;
}

bool has_image_extension(const std::string& file_name) {
  std::string lower = file_name;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (const std::string& ext : image_folder_extensions()) {
    if (lower.size() >= ext.size() && lower.compare(lower.size() - ext.size(), ext.size(), ext) == 0) return true;
  }
  return false;
}

ImageFolderListing list_image_folder(const std::string& root) {
  std::error_code ec;
  const fs::file_status status = fs::status(root, ec);
  INQ_CHECK(fs::is_directory(status), "Given image folder '{}', expected a directory (root/<class>/<image>), but {}",
            root,
            status.type() == fs::file_type::not_found ? std::string("it does not exist")
            : ec                                      ? ec.message()
                                                      : std::string("it is not a directory"));
  ImageFolderListing listing;
  listing.root = root;
  listing.classes = read_directory(root).directories;
  // std::string compares as unsigned bytes: code-point order for UTF-8, like Python's sorted().
  std::sort(listing.classes.begin(), listing.classes.end());
  INQ_CHECK(!listing.classes.empty(),
            "Given image folder '{}', expected class subdirectories (root/<class>/<image>), but found none", root);

  std::vector<std::string> empty_classes;
  for (size_t c = 0; c < listing.classes.size(); ++c) {
    std::vector<std::pair<std::string, std::vector<std::string>>> directories;
    std::set<std::pair<uint64_t, uint64_t>> visited;
    walk((fs::path(root) / listing.classes[c]).string(), directories, visited);
    // sorted(os.walk(...)) orders the (root, dirs, files) tuples by their root path string.
    std::sort(directories.begin(), directories.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    const size_t before = listing.samples.size();
    for (auto& [dir, files] : directories) {
      std::sort(files.begin(), files.end());
      for (const std::string& name : files) {
        if (has_image_extension(name)) listing.samples.push_back({dir + "/" + name, static_cast<int64_t>(c)});
      }
    }
    if (listing.samples.size() == before) empty_classes.push_back(listing.classes[c]);
  }
  INQ_CHECK(empty_classes.empty(),
            "Given image folder '{}', expected at least one image file ({}) in every class directory, but found "
            "none in: {}",
            root, fmt::join(image_folder_extensions(), " "), fmt::join(empty_classes, ", "));
  return listing;
}

ImageFolder::ImageFolder(const std::string& root, ImageFolderOptions options)
    : listing_(list_image_folder(root)), options_(std::move(options)) {
  options_.preprocessing.validate();
  INQ_CHECK(options_.max_bad_images >= 0, "Given ImageFolder max_bad_images {}, expected a count >= 0",
            options_.max_bad_images);
}

Shape ImageFolder::image_shape() const {
  return {3, options_.preprocessing.crop_size, options_.preprocessing.crop_size};
}

void ImageFolder::load(int64_t index, Generator& gen, float* image_out) const {
  const ImageFolderSample& sample = listing_.samples[static_cast<size_t>(index)];
  const RgbImage decoded = read_image(sample.path);
  RgbImage ready;
  try {
    ready = options_.preprocessing.apply(decoded, gen);
  } catch (const Error& e) {
    throw Error(fmt::format("Given image file '{}' ({}x{} pixels, width x height), expected it to preprocess, but: {}",
                            sample.path, decoded.width, decoded.height, e.what()));
  }
  rgb_to_chw_unit(ready, image_out);
}

void ImageFolder::get(int64_t index, float* image_out, int64_t* label_out) const {
  Generator gen(static_cast<uint64_t>(index));
  get_with_generator(index, gen, image_out, label_out);
}

void ImageFolder::get_with_generator(int64_t index, Generator& gen, float* image_out, int64_t* label_out) const {
  check_dataset_index(index, size(), "ImageFolder");
  if (options_.max_bad_images == 0) {
    load(index, gen, image_out);
    *label_out = listing_.samples[static_cast<size_t>(index)].class_index;
    return;
  }
  // A failed decode draws nothing from gen, so the replacement sees the generator untouched.
  const int64_t n = size();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t candidate = (index + k) % n;
    if (known_bad(candidate)) continue;
    try {
      load(candidate, gen, image_out);
    } catch (const Error& e) {
      record_bad(candidate, e.what());
      continue;
    }
    *label_out = listing_.samples[static_cast<size_t>(candidate)].class_index;
    return;
  }
  throw Error(fmt::format("Given image folder '{}', expected at least one image that decodes, but all {} failed",
                          listing_.root, n));
}

bool ImageFolder::known_bad(int64_t index) const {
  std::lock_guard<std::mutex> lock(bad_mutex_);
  return bad_indices_.count(index) != 0;
}

void ImageFolder::record_bad(int64_t index, const std::string& reason) const {
  std::lock_guard<std::mutex> lock(bad_mutex_);
  if (!bad_indices_.insert(index).second) return;  // another worker found it first and logged it
  const auto count = static_cast<int64_t>(bad_indices_.size());
  INQ_CHECK(count <= options_.max_bad_images,
            "Given image folder '{}' in skip mode, expected at most {} bad images, but {} failed to load; the last: {}",
            listing_.root, options_.max_bad_images, count, reason);
  fmt::print(stderr, "inq: warning: skipping bad image {} of at most {}: {}\n", count, options_.max_bad_images, reason);
}

int64_t ImageFolder::bad_images_skipped() const {
  std::lock_guard<std::mutex> lock(bad_mutex_);
  return static_cast<int64_t>(bad_indices_.size());
}

}  // namespace inq
