// CIFAR-10 binary reader: good files, the split's files, the nested archive folder, statistics,
// and the bad files it must refuse (size not a multiple of 3073, label >= 10, missing files).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "data/cifar10.h"
#include "error_testing.h"
#include "framework/error.h"
#include "image_testing.h"

using namespace inq;
using namespace inq::test;
namespace fs = std::filesystem;

namespace {

// `count` records; record r has label (r + offset) % 10 and pixel k = (r * 7 + k) % 256.
Bytes cifar_records(int count, int offset) {
  Bytes b;
  for (int r = 0; r < count; ++r) {
    b.push_back(static_cast<uint8_t>((r + offset) % 10));
    for (int k = 0; k < 3072; ++k) b.push_back(static_cast<uint8_t>((r * 7 + k) % 256));
  }
  return b;
}

std::string parse_error(const Bytes& b, const std::string& name) {
  return error_of([&] { parse_cifar10_records(b.data(), b.size(), name); });
}

class Cifar10Test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("inq_test_cifar_" + std::to_string(getpid()))).string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // data_batch_1..5 with 2, 3, 1, 2, 2 records and test_batch with 3, under `folder`.
  void write_split_files(const std::string& folder) const {
    const int counts[5] = {2, 3, 1, 2, 2};
    for (int i = 0; i < 5; ++i)
      write_bytes(folder + "/data_batch_" + std::to_string(i + 1) + ".bin", cifar_records(counts[i], i));
    write_bytes(folder + "/test_batch.bin", cifar_records(3, 5));
  }
  std::string dir_;
};

}  // namespace

TEST(Cifar10Parse, RecordsSplitIntoLabelsAndChannelPlanes) {
  const Bytes b = cifar_records(3, 4);
  const Cifar10Records r = parse_cifar10_records(b.data(), b.size(), "mem");
  EXPECT_EQ(r.labels, (std::vector<uint8_t>{4, 5, 6}));
  ASSERT_EQ(r.pixels.size(), 3u * 3072);
  EXPECT_EQ(r.pixels[3072 + 1024], (7 + 1024) % 256);  // record 1, green plane, pixel 0
}

TEST(Cifar10Parse, BadSizesAndLabelsAreRefusedNamingTheSource) {
  std::string msg = parse_error({}, "empty.bin");
  EXPECT_NE(msg.find("empty.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  Bytes b = cifar_records(2, 0);
  b.pop_back();
  msg = parse_error(b, "short.bin");
  EXPECT_NE(msg.find("short.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("multiple of 3073"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3072 bytes are left over after 1 records"), std::string::npos) << msg;
  b = cifar_records(3, 0);
  b[2 * 3073] = 10;
  msg = parse_error(b, "label.bin");
  EXPECT_NE(msg.find("label.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("record 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("label 10"), std::string::npos) << msg;
}

TEST_F(Cifar10Test, TrainIsTheFiveBatchesInOrderTestIsTestBatch) {
  write_split_files(dir_);
  const Cifar10 train(dir_, Split::Train), test(dir_, Split::Test);
  EXPECT_EQ(train.size(), 10);
  EXPECT_EQ(test.size(), 3);
  EXPECT_EQ(train.image_shape(), (Shape{3, 32, 32}));
  EXPECT_EQ(train.num_classes(), 10);
  // Batch 2's first record (offset 1) is example 2.
  EXPECT_EQ(train.labels()[2], 1);
  std::vector<float> image(3072);
  int64_t label = -1;
  train.get(3, image.data(), &label);
  EXPECT_EQ(label, 2);                                 // batch 2, record 1, offset 1
  EXPECT_EQ(image[5], static_cast<float>(7 + 5) / 255.0f);
  EXPECT_THROW(train.get(10, image.data(), &label), Error);
  // Statistics: exact per channel, population std.
  const ChannelStats& s = train.pixel_stats();
  ASSERT_EQ(s.mean.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    double sum = 0.0, sq = 0.0;
    int64_t n = 0;
    for (int64_t i = 0; i < train.size(); ++i) {
      train.get(i, image.data(), &label);
      for (int k = 0; k < 1024; ++k) {
        sum += image[static_cast<size_t>(c * 1024 + k)];
        sq += double{image[static_cast<size_t>(c * 1024 + k)]} * image[static_cast<size_t>(c * 1024 + k)];
        ++n;
      }
    }
    const double mean = sum / static_cast<double>(n);
    EXPECT_NEAR(s.mean[static_cast<size_t>(c)], mean, 1e-6);
    EXPECT_NEAR(s.std[static_cast<size_t>(c)], std::sqrt(sq / static_cast<double>(n) - mean * mean), 1e-5);
  }
}

TEST_F(Cifar10Test, TheArchivesBatchesFolderIsFoundAndMissingOrBadFilesAreNamed) {
  write_split_files(dir_ + "/cifar-10-batches-bin");
  EXPECT_EQ(Cifar10(dir_, Split::Test).size(), 3);
  fs::remove(dir_ + "/cifar-10-batches-bin/data_batch_4.bin");
  try {
    Cifar10 c(dir_, Split::Train);
    FAIL() << "a missing batch file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data_batch_4.bin"), std::string::npos) << e.what();
  }
  Bytes bad = cifar_records(1, 0);
  bad.push_back(0);
  write_bytes(dir_ + "/cifar-10-batches-bin/test_batch.bin", bad);
  try {
    Cifar10 c(dir_, Split::Test);
    FAIL() << "a file of 3074 bytes was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test_batch.bin' of 3074 bytes"), std::string::npos) << e.what();
  }
}
