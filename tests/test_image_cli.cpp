// The image datasets in the `inq` tool: dataset inference and split folders, the model's channels
// and classes, `inq train` / `inq eval` on a tiny image folder, bad files (stop, skip mode, eval
// never skips), and `inq verify-data` exit codes.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "app_testing.h"
#include "data/datasets.h"
#include "data/verify_data.h"
#include "train/run_setup.h"
#include "framework/error.h"
#include "framework/fileio.h"
#include "image_testing.h"

using namespace inq;
using namespace inq::test;
namespace fs = std::filesystem;

namespace {

// DIR/train with 3 classes x 4 images and DIR/val with 3 x 2, varied sizes, PNG and JPEG.
std::string tiny_imagenet(const std::string& name) {
  const std::string dir = temp_path(name);
  write_image_folder(dir + "/train", {"n01", "n02", "n03"}, 4, 14, 40, 1);
  write_image_folder(dir + "/val", {"n01", "n02", "n03"}, 2, 14, 40, 2);
  return dir;
}

const std::string kSmallImages = " --image-size 16 --resize-size 20 --threads 1 -j 2";

}  // namespace

TEST(ImageDatasets, DatasetIsInferredFromTheDataDirectory) {
  const std::string dir = tiny_imagenet("infer");
  EXPECT_EQ(infer_dataset(dir), "imagefolder");
  EXPECT_EQ(infer_dataset(dir + "/val"), "imagefolder");
  EXPECT_EQ(infer_dataset("/nonexistent/dir"), "fashion-mnist");  // loading then names the missing files
  write_bytes(dir + "/cifar/cifar-10-batches-bin/test_batch.bin", Bytes(3073, 0));
  EXPECT_EQ(infer_dataset(dir + "/cifar"), "cifar10");
  write_bytes(dir + "/idx/t10k-images-idx3-ubyte.gz", {0});
  EXPECT_EQ(infer_dataset(dir + "/idx"), "fashion-mnist");

  EXPECT_EQ(image_folder_split_root(dir, true), dir + "/train");
  EXPECT_EQ(image_folder_split_root(dir, false), dir + "/val");
  EXPECT_EQ(image_folder_split_root(dir + "/val", false), dir + "/val");
  fs::rename(dir + "/val", dir + "/elsewhere");
  EXPECT_THROW(image_folder_split_root(dir, false), Error);  // train/ without val/
  fs::remove_all(dir);
}

TEST(ImageDatasets, ModelTakesChannelsAndClassesFromTheDataUnlessTold) {
  const std::string dir = tiny_imagenet("model_options");
  DataConfig c;
  c.dataset = "imagefolder";
  c.data_dir = dir;
  c.image_size = 16;
  c.resize_size = 20;
  ChannelStats stats;
  const auto val = load_dataset(c, /*train=*/false, &stats);
  EXPECT_EQ(val->image_shape(), (Shape{3, 16, 16}));
  EXPECT_EQ(stats.mean, (std::vector<float>{0.485f, 0.456f, 0.406f}));
  ModelOptions m = model_options_for(c, *val);
  EXPECT_EQ(m.in_channels, 3);
  EXPECT_EQ(m.num_classes, 3);
  c.num_classes = 1000;  // e.g. ImageNet weights evaluated on a few classes' folders
  EXPECT_EQ(model_options_for(c, *val).num_classes, 1000);
  c.num_classes = 2;
  EXPECT_THROW(model_options_for(c, *val), Error);

  // Train and val must name the same classes, or the labels would not agree.
  c.num_classes = 0;
  const auto train = load_dataset(c, /*train=*/true);
  check_same_classes(*train, *val);
  write_image_folder(dir + "/train", {"n04"}, 1, 14, 20, 3);
  const auto more = load_dataset(c, /*train=*/true);
  try {
    check_same_classes(*more, *val);
    FAIL() << "different class folders were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[n04]"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(ImageCli, TrainThenEvalOnATinyImageFolderPrintsAccuracyAndAppendsAResultsRow) {
  const std::string dir = tiny_imagenet("cli_train");
  const std::string run = temp_path("cli_train_run");
  std::string out;
  ASSERT_EQ(run_cli("train --arch resnet20 --data " + dir + " --epochs 1 -b 4 --out " + run + kSmallImages, &out), 0)
      << out;
  EXPECT_NE(out.find("resnet20 on imagefolder: 12 train / 6 test images"), std::string::npos) << out;
  EXPECT_NE(read_file(run + "/config.json").find("\"dataset\": \"imagefolder\""), std::string::npos);

  const std::string results = run + "/eval.csv";
  for (const std::string& data : {dir, dir + "/val"}) {  // a dataset root, or the val folder itself
    ASSERT_EQ(run_cli("eval --arch resnet20 --weights " + run + "/last.safetensors --data " + data + " --results " +
                          results + kSmallImages,
                      &out),
              0)
        << out;
    EXPECT_NE(out.find("(6 images, 3 classes)"), std::string::npos) << out;
    EXPECT_NE(out.find(" * Acc@1 "), std::string::npos) << out;
    EXPECT_NE(out.find(" Acc@5 100.000"), std::string::npos) << out;  // 3 classes: top-5 always right
  }
  const std::string csv = read_file(results);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << csv;  // header + 2 rows
  EXPECT_NE(csv.find("resnet20," + run + "/last.safetensors,imagefolder,6,"), std::string::npos) << csv;

  // A model with other classes cannot take these weights; --num-classes must match them.
  EXPECT_EQ(run_cli("eval --arch resnet20 --weights " + run + "/last.safetensors --data " + dir +
                        " --num-classes 10" + kSmallImages,
                    &out),
            1)
      << out;
  EXPECT_NE(out.find("fc.weight"), std::string::npos) << out;
  fs::remove_all(dir);
  fs::remove_all(run);
}

TEST(ImageCli, BadImagesStopTrainingUnlessSkippedAndEvaluationNeverSkips) {
  const std::string dir = tiny_imagenet("cli_bad");
  const std::string run = temp_path("cli_bad_run");
  const std::string bad_train = dir + "/train/n02/broken.JPEG";
  write_bytes(bad_train, {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F'});
  std::string out;
  const std::string train = "train --arch resnet20 --data " + dir + " --epochs 1 -b 4 --out " + run + kSmallImages;
  EXPECT_EQ(run_cli(train, &out), 1) << out;
  EXPECT_NE(out.find("inq: error:"), std::string::npos) << out;
  EXPECT_NE(out.find(bad_train), std::string::npos) << out;
  EXPECT_NE(out.find("truncated"), std::string::npos) << out;

  ASSERT_EQ(run_cli(train + " --force --skip-bad-images 1", &out), 0) << out;
  EXPECT_NE(out.find("skipping bad image 1 of at most 1"), std::string::npos) << out;
  EXPECT_NE(out.find(bad_train), std::string::npos) << out;

  const std::string bad_val = dir + "/val/n01/zz.png";
  write_bytes(bad_val, {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'});
  EXPECT_EQ(run_cli(train + " --force --skip-bad-images 5", &out), 1) << out;
  EXPECT_NE(out.find(bad_val), std::string::npos) << out;
  EXPECT_EQ(run_cli("eval --arch resnet20 --weights " + run + "/last.safetensors --data " + dir + kSmallImages, &out),
            1)
      << out;
  EXPECT_NE(out.find(bad_val), std::string::npos) << out;
  fs::remove_all(dir);
  fs::remove_all(run);
}

TEST(ImageCli, Cifar10TrainsWithThreeChannelsAndItsOwnStatistics) {
  const std::string dir = temp_path("cli_cifar");
  const std::string run = temp_path("cli_cifar_run");
  // 6 files of 2 records each: label r % 10, pixels varied per record.
  for (const std::string name : {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                                   "test_batch"}) {
    Bytes b;
    for (int r = 0; r < 2; ++r) {
      b.push_back(static_cast<uint8_t>((r + name.size()) % 10));
      for (int k = 0; k < 3072; ++k) b.push_back(static_cast<uint8_t>((k * (r + 3) + name.size()) % 256));
    }
    write_bytes(dir + "/cifar-10-batches-bin/" + name + ".bin", b);
  }
  std::string out;
  ASSERT_EQ(run_cli("train --arch resnet20 --data " + dir + " --epochs 1 -b 5 --threads 1 --out " + run, &out), 0)
      << out;
  EXPECT_NE(out.find("resnet20 on cifar10: 10 train / 2 test images"), std::string::npos) << out;
  ASSERT_EQ(run_cli("eval --arch resnet20 --weights " + run + "/last.safetensors --data " + dir, &out), 0) << out;
  EXPECT_NE(out.find("(2 images, 10 classes)"), std::string::npos) << out;
  fs::remove_all(dir);
  fs::remove_all(run);
}

TEST(ImageCli, VerifyDataListsBadFilesAndExitsWithDistinctStatuses) {
  const std::string dir = tiny_imagenet("verify_data");
  std::string out;
  EXPECT_EQ(run_cli("verify-data " + dir + " -j 3", &out), 0) << out;
  EXPECT_NE(out.find("verify-data: 18 images in " + dir + "/train, " + dir + "/val: 0 bad"), std::string::npos) << out;
  EXPECT_EQ(run_cli("verify-data " + dir + "/val", &out), 0) << out;  // an image folder itself
  EXPECT_NE(out.find("6 images"), std::string::npos) << out;

  write_bytes(dir + "/val/n02/empty.jpg", {});
  write_bytes(dir + "/train/n03/not_a_png.png", {'B', 'M', 1, 2, 3});
  EXPECT_EQ(run_cli("verify-data " + dir, &out), kVerifyDataFoundBadImages) << out;
  EXPECT_NE(out.find("BAD " + dir + "/train/n03/not_a_png.png: "), std::string::npos) << out;
  EXPECT_NE(out.find("BMP"), std::string::npos) << out;
  EXPECT_NE(out.find("BAD " + dir + "/val/n02/empty.jpg: "), std::string::npos) << out;
  EXPECT_NE(out.find("20 images in"), std::string::npos) << out;
  EXPECT_NE(out.find(": 2 bad"), std::string::npos) << out;

  EXPECT_EQ(run_cli("verify-data /nonexistent/images", &out), 1) << out;
  EXPECT_NE(out.find("/nonexistent/images"), std::string::npos) << out;
  EXPECT_EQ(run_cli("verify-data", &out), 2) << out;  // no DIR: a usage error, like every bad flag
  EXPECT_EQ(run_cli("verify-data --help", &out), 0) << out;
  EXPECT_NE(out.find("3 some do not"), std::string::npos) << out;
  fs::remove_all(dir);
}
