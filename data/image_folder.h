#pragma once
// ImageFolder: images stored as root/<class>/<image> (the ImageNet layout of PyTorch's ImageNet
// example), listed exactly as torchvision 0.14's datasets.ImageFolder lists them, so class indices
// agree with torchvision-trained weights:
//   classes  every entry of root that is a directory, symlinks to directories included
//            (find_classes: os.scandir + DirEntry.is_dir()), sorted by name in code-point order
//            (Python's sorted(); for UTF-8 names that is byte order). Hidden directories are NOT
//            skipped: torchvision makes ".ipynb_checkpoints" a class too, so this does the same.
//   files    per class in sorted class order, every file below the class directory, recursively,
//            following symlinks (make_dataset: sorted(os.walk(dir, followlinks=True))): directories
//            in the byte order of their full path strings, the file names of each sorted. A file is
//            kept when its lower-cased name ends with one of torchvision's IMG_EXTENSIONS (.jpg
//            .jpeg .png .ppm .bmp .pgm .tif .tiff .webp). Hidden files are NOT skipped either (an
//            AppleDouble "._x.JPEG" is listed by torchvision, and fails to decode in both).
//   errors   no class directory, or a class with no image file, is an error (torchvision raises
//            FileNotFoundError for both). Unlike os.walk, an unreadable directory is an error here
//            rather than silently empty, and a directory reached twice through symlinks is walked
//            once (os.walk would loop).
// Only JPEG and PNG decode (data/image.h): a listed .bmp/.tif/.webp file is a decoding error that
// names the path and what the file looks like.
//
// Decoding happens in get_with_generator, on the DataLoader's worker threads; one image is decoded
// at a time per thread, so memory stays bounded by the loader's prefetch bound. Errors name the
// path and the reason. In skip mode (max_bad_images > 0) a file that fails to read or decode is
// logged once on stderr, counted, and replaced by the next example in listing order that does
// decode (the replacement is the same every epoch and for every worker count); once more than
// max_bad_images distinct files have failed, loading fails with the count and the last reason.
#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"
#include "data/image_transforms.h"

namespace inq {

struct ImageFolderSample {
  std::string path;
  int64_t class_index = 0;
};

struct ImageFolderListing {
  std::string root;
  std::vector<std::string> classes;        // sorted; class i is classes[i]
  std::vector<ImageFolderSample> samples;  // in torchvision's order
};

// torchvision's IMG_EXTENSIONS, lower case.
const std::vector<std::string>& image_folder_extensions();
// Whether torchvision's ImageFolder would list a file of this name (case-insensitive extension).
bool has_image_extension(const std::string& file_name);
// The classes and samples under `root` as described above. Throws inq::Error naming root (or the
// empty classes) when it is not a readable image folder.
ImageFolderListing list_image_folder(const std::string& root);

struct ImageFolderOptions {
  ImagePreprocessing preprocessing = {};  // decoded image -> fixed (3, crop, crop)
  int64_t max_bad_images = 0;             // 0: the first bad file is an error; > 0: skip mode
};

class ImageFolder final : public Dataset {
 public:
  ImageFolder(const std::string& root, ImageFolderOptions options = {});

  int64_t size() const override { return static_cast<int64_t>(listing_.samples.size()); }
  Shape image_shape() const override;  // (3, crop_size, crop_size)
  int64_t num_classes() const override { return static_cast<int64_t>(listing_.classes.size()); }
  // With random preprocessing, get() draws from a Generator seeded with the index, so it is
  // deterministic per example; the DataLoader uses get_with_generator instead.
  void get(int64_t index, float* image_out, int64_t* label_out) const override;
  void get_with_generator(int64_t index, Generator& gen, float* image_out, int64_t* label_out) const override;

  const ImageFolderListing& listing() const { return listing_; }
  const ImageFolderOptions& options() const { return options_; }
  // Distinct files skipped so far (skip mode).
  int64_t bad_images_skipped() const;

 private:
  // Decodes and preprocesses sample `index` into image_out; throws inq::Error naming the path.
  void load(int64_t index, Generator& gen, float* image_out) const;
  bool known_bad(int64_t index) const;
  // Records a failed file; throws once more than max_bad_images distinct files have failed.
  void record_bad(int64_t index, const std::string& reason) const;

  ImageFolderListing listing_;
  ImageFolderOptions options_;
  mutable std::mutex bad_mutex_;
  mutable std::set<int64_t> bad_indices_;  // guarded by bad_mutex_
};

}  // namespace inq
