// ImageFolder: torchvision's class order and file listing, preprocessing to a fixed shape, the
// DataLoader's determinism with random crops, and bad files (stop with the path, or skip mode).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/dataloader.h"
#include "data/image_folder.h"
#include "data/image_transforms.h"
#include "data/transforms.h"
#include "dataloader_testing.h"
#include "error_testing.h"
#include "framework/error.h"
#include "image_testing.h"

using namespace inq;
using namespace inq::test;
namespace fs = std::filesystem;

namespace {

class ImageFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = (fs::temp_directory_path() / ("inq_test_folder_" + std::string(info->name()) + "_" +
                                          std::to_string(getpid())))
                .string();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string path(const std::string& rel) const { return root_ + "/" + rel; }
  void png(const std::string& rel, int64_t h = 6, int64_t w = 5, uint64_t seed = 1) const {
    write_bytes(path(rel), encode_png(test_pattern(h, w, seed)));
  }
  std::vector<std::string> relative_paths(const ImageFolderListing& l) const {
    std::vector<std::string> out;
    for (const auto& s : l.samples) out.push_back(s.path.substr(root_.size() + 1) + "=" + std::to_string(s.class_index));
    return out;
  }

  std::string root_;
};

}  // namespace

TEST_F(ImageFolderTest, ClassesAndFilesAreListedInTorchvisionsOrder) {
  // Class names sorted by code point: upper case before lower, '.' (hidden) first, UTF-8 last.
  png("b/1.png");
  png("B/1.png");
  png(".hidden/1.png");  // torchvision's find_classes keeps hidden directories
  png("\xc3\xb1/1.png");  // "ñ"
  png("a/z.png");
  png("a/Y.JPEG");  // extensions are case-insensitive; names sort by code point (upper first)
  png("a/.dotfile.png");  // hidden files are listed too
  png("a/notes.txt");     // not an image extension: ignored
  png("a/archive.png.gz");
  png("a/x.Jpg");
  png("a/sub/inner.png");   // files below the class directory count (os.walk)
  png("a/sub-x/dash.png");  // full-path order: "a/sub" < "a/sub-x" < "a/sub/inner"
  png("a/sub/deeper/d.webp");
  write_bytes(path("loose.png"), {1});  // a file at the root is not a class
  const ImageFolderListing l = list_image_folder(root_);
  EXPECT_EQ(l.classes, (std::vector<std::string>{".hidden", "B", "a", "b", "\xc3\xb1"}));
  EXPECT_EQ(relative_paths(l), (std::vector<std::string>{
                                   ".hidden/1.png=0", "B/1.png=1", "a/.dotfile.png=2", "a/Y.JPEG=2", "a/x.Jpg=2",
                                   "a/z.png=2", "a/sub/inner.png=2", "a/sub-x/dash.png=2", "a/sub/deeper/d.webp=2",
                                   "b/1.png=3", "\xc3\xb1/1.png=4"}));
}

TEST_F(ImageFolderTest, SymlinkedClassesAndDirectoriesAreFollowedOnce) {
  png("real/1.png");
  fs::create_directories(path("other"));
  png("other/o.png");
  fs::create_directory_symlink(path("real"), path("linked"));
  fs::create_directory_symlink(path("other"), path("real/via_link"));
  fs::create_directory_symlink(path("real"), path("real/loop"));  // a cycle: walked once
  const ImageFolderListing l = list_image_folder(root_);
  EXPECT_EQ(l.classes, (std::vector<std::string>{"linked", "other", "real"}));
  EXPECT_EQ(relative_paths(l),
            (std::vector<std::string>{"linked/1.png=0", "linked/via_link/o.png=0", "other/o.png=1", "real/1.png=2",
                                      "real/via_link/o.png=2"}));
}

TEST_F(ImageFolderTest, FoldersWithoutClassesOrWithEmptyClassesAreErrors) {
  std::string msg = error_of([&] { list_image_folder(root_); });
  EXPECT_NE(msg.find("found none"), std::string::npos) << msg;
  EXPECT_NE(msg.find(root_), std::string::npos) << msg;
  png("full/1.png");
  fs::create_directories(path("empty_one"));
  write_bytes(path("text_only/readme.txt"), {'h', 'i'});
  msg = error_of([&] { list_image_folder(root_); });
  EXPECT_NE(msg.find("empty_one, text_only"), std::string::npos) << msg;
  msg = error_of([&] { list_image_folder(root_ + "/nonexistent"); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  msg = error_of([&] { list_image_folder(path("full/1.png")); });
  EXPECT_NE(msg.find("not a directory"), std::string::npos) << msg;
}

TEST_F(ImageFolderTest, ExamplesHaveTheCropShapeTheEvalPipelineAndTheirLabels) {
  const std::vector<std::string> paths = write_image_folder(root_, {"cat", "dog"}, 3, 20, 70, 3);
  ImageFolder ds(root_, {.preprocessing = {.resize_size = 20, .crop_size = 16}});
  EXPECT_EQ(ds.size(), 6);
  EXPECT_EQ(ds.num_classes(), 2);
  EXPECT_EQ(ds.image_shape(), (Shape{3, 16, 16}));
  for (int64_t i = 0; i < ds.size(); ++i) {
    const Example ex = ds.example(i);
    EXPECT_EQ(ex.label, i / 3);
    const RgbImage expected = center_crop(resize_shorter_side(read_image(paths[static_cast<size_t>(i)]), 20), 16, 16);
    std::vector<float> want(3 * 16 * 16);
    rgb_to_chw_unit(expected, want.data());
    EXPECT_EQ(ex.image.to_vector(), want) << i;
  }
}

TEST_F(ImageFolderTest, DataLoaderBatchesAreTheSameForAnyWorkerCountWithRandomCrops) {
  write_image_folder(root_, {"a", "b", "c"}, 4, 12, 60, 4);
  ImageFolder ds(root_, {.preprocessing = {.kind = ImagePreprocessing::Kind::RandomResizedCrop, .crop_size = 10}});
  auto options = [](int64_t workers) {
    return DataLoaderOptions{.batch_size = 5, .shuffle = true, .seed = 21, .workers = workers,
                             .transforms = {random_horizontal_flip(), normalize({0.5f}, {0.25f})}};
  };
  DataLoader reference(ds, options(0));
  const std::vector<Batch> e0 = run_epoch(reference, 0), e1 = run_epoch(reference, 1);
  ASSERT_EQ(e0.size(), 3u);
  for (int64_t workers : {1, 3}) {
    DataLoader loader(ds, options(workers));
    for (const auto& [epoch, expected] : {std::pair{0, &e0}, std::pair{1, &e1}}) {
      const std::vector<Batch> got = run_epoch(loader, epoch);
      ASSERT_EQ(got.size(), expected->size());
      for (size_t b = 0; b < got.size(); ++b) {
        EXPECT_EQ(got[b].example_indices, (*expected)[b].example_indices);
        EXPECT_EQ(got[b].labels, (*expected)[b].labels);
        EXPECT_EQ(got[b].images.to_vector(), (*expected)[b].images.to_vector()) << "workers " << workers;
      }
    }
  }
  // The crops are random: the same example differs between epochs.
  auto image_of = [](const std::vector<Batch>& epoch, int64_t index) {
    for (const Batch& b : epoch)
      for (size_t i = 0; i < b.example_indices.size(); ++i)
        if (b.example_indices[i] == index) {
          const int64_t n = b.images.numel() / b.images.size(0);
          const std::vector<float> all = b.images.to_vector();
          return std::vector<float>(all.begin() + static_cast<std::ptrdiff_t>(i) * n,
                                    all.begin() + static_cast<std::ptrdiff_t>(i + 1) * n);
        }
    return std::vector<float>{};
  };
  EXPECT_NE(image_of(e0, 0), image_of(e1, 0));
}

TEST_F(ImageFolderTest, ACorruptFileStopsTheLoaderWithItsPath) {
  write_image_folder(root_, {"a", "b"}, 3, 12, 30, 5);
  write_bytes(path("b/broken.png"), {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H'});
  ImageFolder ds(root_, {.preprocessing = {.resize_size = 12, .crop_size = 8}});
  DataLoader loader(ds, {.batch_size = 2, .workers = 2});
  loader.start_epoch(0);
  Batch b;
  const std::string msg = error_of([&] {
    while (loader.next(b)) {
    }
  });
  EXPECT_NE(msg.find(path("b/broken.png")), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST_F(ImageFolderTest, SkipModeReplacesBadFilesByTheNextGoodOneAndGivesUpPastTheLimit) {
  write_image_folder(root_, {"a", "b"}, 2, 12, 30, 6);
  write_bytes(path("a/bad1.png"), {'n', 'o', 'p', 'e'});  // sorts first in class a
  write_bytes(path("b/bad2.jpg"), {});
  ImageFolder strict(root_, {.preprocessing = {.resize_size = 12, .crop_size = 8}});
  const std::vector<ImageFolderSample>& samples = strict.listing().samples;
  ASSERT_EQ(samples.size(), 6u);
  EXPECT_EQ(samples[0].path, path("a/bad1.png"));
  EXPECT_EQ(samples[3].path, path("b/bad2.jpg"));
  EXPECT_THROW(strict.example(0), Error);

  ImageFolder skipping(root_, {.preprocessing = {.resize_size = 12, .crop_size = 8}, .max_bad_images = 2});
  // Example 0 is bad: it becomes example 1 (label and pixels); example 3 becomes example 4.
  for (const auto& [bad, replacement] : {std::pair<int64_t, int64_t>{0, 1}, {3, 4}}) {
    const Example got = skipping.example(bad);
    const Example want = strict.example(replacement);
    EXPECT_EQ(got.label, want.label);
    EXPECT_EQ(got.image.to_vector(), want.image.to_vector());
  }
  EXPECT_EQ(skipping.bad_images_skipped(), 2);
  skipping.example(0);  // already known: not counted again
  EXPECT_EQ(skipping.bad_images_skipped(), 2);

  ImageFolder limited(root_, {.preprocessing = {.resize_size = 12, .crop_size = 8}, .max_bad_images = 1});
  limited.example(0);
  const std::string msg = error_of([&] { limited.example(3); });
  EXPECT_NE(msg.find("at most 1 bad images, but 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path("b/bad2.jpg")), std::string::npos) << msg;
}
