// IDX reader (plain and gzip, good and bad files), IdxClassificationDataset and Fashion-MNIST.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "data/fashion_mnist.h"
#include "data/idx.h"
#include "error_testing.h"
#include "framework/error.h"
#include "framework/random.h"

using namespace inq;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<uint8_t>;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("inq_test_" + std::string(info->test_suite_name()) + "_" +
                                         info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// An IDX image: magic 00 00 <type> <ndims>, big-endian dims, then `data`.
Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& data, uint8_t type = 0x08) {
  Bytes out = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(d >> shift));
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes iota_bytes(size_t n, int start = 0) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((start + static_cast<int>(i)) % 256);
  return b;
}

// One gzip member holding `content` (zlib's deflate with the gzip wrapper).
Bytes gzip_bytes(const Bytes& content) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, content.size()) + 64);
  zs.next_in = const_cast<Bytes::value_type*>(content.data());
  zs.avail_in = static_cast<uInt>(content.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

using test::expect_error;  // the needles include the path

// Writes `bytes` plainly and gzipped under two names and expects read_idx to reject both.
void expect_rejected_both_ways(const TempDir& dir, const std::string& stem, const Bytes& bytes, int ndims,
                               const std::vector<std::string>& needles) {
  const std::string plain = dir.file(stem), gz = dir.file(stem + ".gz");
  write_file(plain, bytes);
  write_file(gz, gzip_bytes(bytes));
  for (const std::string& path : {plain, gz}) {
    std::vector<std::string> all = needles;
    all.insert(all.begin(), path);
    expect_error([&] { read_idx(path, ndims); }, all);
  }
}

}  // namespace

TEST(IdxReader, ReadsPlainFile) {
  TempDir dir;
  const Bytes data = iota_bytes(2 * 3 * 4, 7);
  write_file(dir.file("images"), idx_bytes({2, 3, 4}, data));
  const IdxArray a = read_idx(dir.file("images"), 3);
  EXPECT_EQ(a.type, IdxType::UInt8);
  EXPECT_EQ(a.dims, (std::vector<uint32_t>{2, 3, 4}));
  EXPECT_EQ(a.numel(), 24);
  EXPECT_EQ(a.data, data);
}

TEST(IdxReader, DetectsGzipByMagicNotByName) {
  TempDir dir;
  const Bytes data = iota_bytes(300 * 5, 3);
  const Bytes plain = idx_bytes({300, 5}, data);
  // A gzip stream without .gz in its name, and a plain file named .gz.
  write_file(dir.file("labels-no-suffix"), gzip_bytes(plain));
  write_file(dir.file("plain.gz"), plain);
  for (const char* name : {"labels-no-suffix", "plain.gz"}) {
    const IdxArray a = read_idx(dir.file(name), 2);
    EXPECT_EQ(a.dims, (std::vector<uint32_t>{300, 5})) << name;
    EXPECT_EQ(a.data, data) << name;
  }
}

TEST(IdxReader, ReadsLargeGzipAcrossBufferBoundaries) {
  // Bigger than the reader's 64 KiB input buffer and its 1 MiB first output chunk.
  TempDir dir;
  Bytes data(1536 * 1024 + 17);
  // Compressible but not trivially.
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(((i * 2654435761u) >> 13) & 7);
  write_file(dir.file("big.gz"), gzip_bytes(idx_bytes({static_cast<uint32_t>(data.size())}, data)));
  const IdxArray a = read_idx(dir.file("big.gz"), 1);
  EXPECT_EQ(a.data, data);
}

TEST(IdxReader, AcceptsConcatenatedGzipMembers) {
  TempDir dir;
  const Bytes whole = idx_bytes({10}, iota_bytes(10));
  Bytes first(whole.begin(), whole.begin() + 7), second(whole.begin() + 7, whole.end());
  Bytes gz = gzip_bytes(first);
  const Bytes gz2 = gzip_bytes(second);
  gz.insert(gz.end(), gz2.begin(), gz2.end());
  write_file(dir.file("two-members.gz"), gz);
  EXPECT_EQ(read_idx(dir.file("two-members.gz"), 1).data, iota_bytes(10));
}

TEST(IdxReader, ReadsFromMemoryWithTheSameChecks) {
  const Bytes plain = idx_bytes({4}, {1, 2, 3, 4});
  const Bytes gz = gzip_bytes(plain);
  EXPECT_EQ(read_idx_from_memory(plain.data(), plain.size(), "mem", 1).data, (Bytes{1, 2, 3, 4}));
  EXPECT_EQ(read_idx_from_memory(gz.data(), gz.size(), "mem.gz", 1).data, (Bytes{1, 2, 3, 4}));
  expect_error([&] { read_idx_from_memory(plain.data(), plain.size() - 1, "short-buffer", 1); },
               {"short-buffer", "expected exactly 12 bytes", "has 11 bytes"});
}

TEST(IdxReader, AcceptsZeroLengthDimension) {
  TempDir dir;
  write_file(dir.file("empty"), idx_bytes({0, 28, 28}, {}));
  const IdxArray a = read_idx(dir.file("empty"), 3);
  EXPECT_EQ(a.numel(), 0);
  EXPECT_TRUE(a.data.empty());
}

// Found by tests/fuzz (fuzz_idx): a zero dimension after two huge ones made numel() overflow int64
// (undefined behaviour), and with four dimensions the reader rejected the empty array as "more than
// 2^64 bytes".
TEST(IdxReader, ZeroDimensionBesideHugeOnesIsEmpty) {
  const Bytes three = idx_bytes({0x8b08faffu, 0xffff7f00u, 0}, {});
  const IdxArray a = read_idx_from_memory(three.data(), three.size(), "huge-then-zero", 3);
  EXPECT_EQ(a.numel(), 0);
  EXPECT_TRUE(a.data.empty());
  const Bytes four = idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu, 0}, {});
  EXPECT_EQ(read_idx_from_memory(four.data(), four.size(), "four", 4).numel(), 0);
  // Without the zero it is still refused before anything is allocated.
  const Bytes huge = idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu, 1}, {});
  expect_error([&] { read_idx_from_memory(huge.data(), huge.size(), "huge", 4); }, {"huge", "more than 2^64"});
  // An array built by hand whose element count overflows says so instead of wrapping.
  IdxArray by_hand;
  by_hand.dims = {0xffffffffu, 0xffffffffu, 0xffffffffu};
  EXPECT_THROW(by_hand.numel(), Error);
}

TEST(IdxReader, RejectsMissingFile) {
  TempDir dir;
  expect_error([&] { read_idx(dir.file("nope"), 3); }, {dir.file("nope"), "opening it failed"});
}

TEST(IdxReader, RejectsTruncatedFiles) {
  TempDir dir;
  Bytes bytes = idx_bytes({2, 3, 4}, iota_bytes(24));
  bytes.pop_back();
  // Plain: caught by the size check before reading; gzip: the stream ends early.
  write_file(dir.file("short"), bytes);
  expect_error([&] { read_idx(dir.file("short"), 3); },
               {dir.file("short"), "expected exactly 40 bytes", "39"});
  write_file(dir.file("short.gz"), gzip_bytes(bytes));
  expect_error([&] { read_idx(dir.file("short.gz"), 3); },
               {dir.file("short.gz"), "truncated after 39 bytes"});
  // Cut inside the header and inside the magic.
  expect_rejected_both_ways(dir, "short-header", Bytes(bytes.begin(), bytes.begin() + 9), 3,
                            {"expected a 16-byte header", "ends after 9 bytes"});
  expect_rejected_both_ways(dir, "short-magic", {0, 0}, 3, {"4-byte magic", "only 2 bytes"});
  expect_rejected_both_ways(dir, "zero-bytes", {}, 3, {"4-byte magic", "only 0 bytes"});
}

TEST(IdxReader, RejectsExtraTrailingBytes) {
  TempDir dir;
  Bytes bytes = idx_bytes({2, 3, 4}, iota_bytes(24));
  bytes.push_back(0);
  write_file(dir.file("long"), bytes);
  expect_error([&] { read_idx(dir.file("long"), 3); },
               {dir.file("long"), "expected exactly 40 bytes", "has 41"});
  write_file(dir.file("long.gz"), gzip_bytes(bytes));
  expect_error([&] { read_idx(dir.file("long.gz"), 3); }, {dir.file("long.gz"), "1 extra trailing bytes"});
}

TEST(IdxReader, RejectsBadMagic) {
  TempDir dir;
  Bytes bytes = idx_bytes({4}, iota_bytes(4));
  bytes[1] = 0x01;
  expect_rejected_both_ways(dir, "magic1", bytes, 1, {"starting with 00 00", "00 01"});
  bytes[1] = 0;
  bytes[0] = 0x50;
  expect_rejected_both_ways(dir, "magic0", bytes, 1, {"starting with 00 00", "50 00"});
}

TEST(IdxReader, RejectsWrongNumberOfDimensions) {
  TempDir dir;
  // A labels file where images are expected, and the other way round.
  expect_rejected_both_ways(dir, "labels-as-images", idx_bytes({4}, iota_bytes(4)), 3,
                            {"expected 3 dimension(s)", "declares 1"});
  expect_rejected_both_ways(dir, "images-as-labels", idx_bytes({1, 2, 2}, iota_bytes(4)), 1,
                            {"expected 1 dimension(s)", "declares 3"});
  EXPECT_THROW(read_idx(dir.file("labels-as-images"), 0), Error);
}

TEST(IdxReader, RejectsUnknownAndUnsupportedTypes) {
  TempDir dir;
  expect_rejected_both_ways(dir, "unknown-type", idx_bytes({4}, iota_bytes(4), 0x07), 1,
                            {"expected element type 0x08 (unsigned byte)", "0x07 (unknown)"});
  expect_rejected_both_ways(dir, "float-type", idx_bytes({1}, iota_bytes(4), 0x0D), 1, {"0x0d (float32)"});
}

TEST(IdxReader, RejectsGarbageBytes) {
  TempDir dir;
  Generator gen(11);
  Bytes garbage(5000);
  for (uint8_t& b : garbage) b = static_cast<uint8_t>(gen.uniform_int(256));
  garbage[0] = 0x42;  // not 00, not a gzip magic
  write_file(dir.file("garbage"), garbage);
  expect_error([&] { read_idx(dir.file("garbage"), 3); }, {dir.file("garbage"), "starting with 00 00"});
  // Garbage behind a gzip magic: zlib rejects it.
  garbage[0] = 0x1f;
  garbage[1] = 0x8b;
  write_file(dir.file("garbage.gz"), garbage);
  expect_error([&] { read_idx(dir.file("garbage.gz"), 3); }, {dir.file("garbage.gz"), "gzip"});
  // A valid-looking header with random dimensions and random data must fail (never crash).
  for (int trial = 0; trial < 50; ++trial) {
    Bytes b = {0, 0, 8, 3};
    const size_t n = 12 + gen.uniform_int(64);
    for (size_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(gen.uniform_int(256)));
    EXPECT_THROW(read_idx_from_memory(b.data(), b.size(), "random", 3), Error);
  }
}

TEST(IdxReader, RejectsCorruptTruncatedOrPaddedGzipStreams) {
  TempDir dir;
  const Bytes good = gzip_bytes(idx_bytes({2, 3, 4}, iota_bytes(24)));
  // The CRC-32 is the trailer's first four bytes.
  Bytes bad_crc = good;
  bad_crc[bad_crc.size() - 8] ^= 0xff;
  write_file(dir.file("crc.gz"), bad_crc);
  expect_error([&] { read_idx(dir.file("crc.gz"), 3); }, {dir.file("crc.gz"), "incorrect data check"});
  // Cut inside the compressed data or inside the trailer.
  for (size_t cut : {good.size() / 2, good.size() - 3}) {
    write_file(dir.file("cut.gz"), Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut)));
    expect_error([&] { read_idx(dir.file("cut.gz"), 3); }, {dir.file("cut.gz"), "truncated"});
  }
  // Bytes after the gzip stream that are not another member.
  Bytes padded = good;
  padded.insert(padded.end(), {0, 0, 0});
  write_file(dir.file("padded.gz"), padded);
  expect_error([&] { read_idx(dir.file("padded.gz"), 3); }, {dir.file("padded.gz"), "3 unexpected byte(s)"});
}

TEST(IdxReader, RejectsGzipThatDecompressesToTooMuchWithoutReadingItAll) {
  TempDir dir;
  // Header says 2x2x2 bytes; the stream holds 32 MB of zeros after it (a ~32 KB gzip).
  Bytes content = idx_bytes({2, 2, 2}, Bytes(32u << 20, 0));
  write_file(dir.file("bomb.gz"), gzip_bytes(content));
  content.clear();
  content.shrink_to_fit();
  const auto t0 = std::chrono::steady_clock::now();
  expect_error([&] { read_idx(dir.file("bomb.gz"), 3); },
               {dir.file("bomb.gz"), "expected exactly 24 bytes", "at least 1048576 extra trailing bytes"});
  // It stops after about 1 MiB of surplus instead of inflating all 32 MiB.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
}

TEST(IdxReader, RejectsDeclaredSizesAboveTheCapBeforeAllocating) {
  TempDir dir;
  // 4G x 4G x 4G overflows 64 bits; 65536^2 * 1024 = 4 TiB is above the default 2 GiB cap.
  expect_rejected_both_ways(dir, "overflow", idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, {}), 3,
                            {"more than 2^64"});
  expect_rejected_both_ways(dir, "huge", idx_bytes({65536, 65536, 1024}, {}), 3,
                            {"expected at most 2147483648 bytes", "declare 4398046511104"});
  // An explicit cap applies the same way.
  write_file(dir.file("capped"), idx_bytes({100}, iota_bytes(100)));
  expect_error([&] { read_idx(dir.file("capped"), 1, 99); }, {dir.file("capped"), "at most 99 bytes"});
  EXPECT_EQ(read_idx(dir.file("capped"), 1, 100).data.size(), 100u);
  // A gzip whose header claims 1 GB but holds 10 bytes fails as truncated (the buffer grows only
  // with the bytes that arrive).
  write_file(dir.file("liar.gz"), gzip_bytes(idx_bytes({1000, 1000, 1000}, iota_bytes(10))));
  expect_error([&] { read_idx(dir.file("liar.gz"), 3); }, {dir.file("liar.gz"), "truncated after 26 bytes"});
}

// ---- IdxClassificationDataset ----

TEST(IdxDataset, LoadsImagesScaledToUnitRangeWithStats) {
  TempDir dir;
  // Two 2x3 images; labels 1, 0.
  const Bytes pixels = {0, 255, 51, 102, 0, 0, 255, 255, 255, 255, 255, 255};
  write_file(dir.file("img"), idx_bytes({2, 2, 3}, pixels));
  write_file(dir.file("lbl.gz"), gzip_bytes(idx_bytes({2}, {1, 0})));
  const IdxClassificationDataset ds(dir.file("img"), dir.file("lbl.gz"), 2);
  EXPECT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.image_shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(ds.num_classes(), 2);
  float image[6];
  int64_t label = -1;
  ds.get(0, image, &label);
  EXPECT_EQ(label, 1);
  EXPECT_EQ(image[0], 0.0f);
  EXPECT_EQ(image[1], 1.0f);
  EXPECT_EQ(image[2], 0.2f);  // 51 / 255 rounds to the float nearest 0.2
  EXPECT_EQ(image[3], 0.4f);
  const Example ex = ds.example(1);
  EXPECT_EQ(ex.label, 0);
  EXPECT_EQ(ex.image.shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(ex.image.to_vector(), std::vector<float>(6, 1.0f));
  // Pixel values in [0, 1]: 0, 1, .2, .4, 0, 0 and six 1s.
  double mean = (1 + 0.2 + 0.4 + 6) / 12, var = 0;
  for (uint8_t p : pixels) var += (p / 255.0 - mean) * (p / 255.0 - mean);
  EXPECT_NEAR(ds.pixel_stats().mean.at(0), mean, 1e-6);
  EXPECT_NEAR(ds.pixel_stats().std.at(0), std::sqrt(var / 12), 1e-6);
  EXPECT_THROW(ds.get(2, image, &label), Error);
  EXPECT_THROW(ds.get(-1, image, &label), Error);
  EXPECT_THROW(ds.label(5), Error);
}

TEST(IdxDataset, RejectsLabelAtOrAboveNumberOfClasses) {
  TempDir dir;
  write_file(dir.file("img"), idx_bytes({3, 1, 1}, {1, 2, 3}));
  write_file(dir.file("lbl"), idx_bytes({3}, {0, 9, 10}));
  expect_error([&] { IdxClassificationDataset(dir.file("img"), dir.file("lbl"), 10); },
               {dir.file("lbl"), "below 10", "label 2 is 10"});
  EXPECT_NO_THROW(IdxClassificationDataset(dir.file("img"), dir.file("lbl"), 11));
  EXPECT_THROW(IdxClassificationDataset(dir.file("img"), dir.file("lbl"), 0), Error);
}

TEST(IdxDataset, RejectsImageAndLabelCountMismatch) {
  TempDir dir;
  write_file(dir.file("img"), idx_bytes({3, 1, 1}, {1, 2, 3}));
  write_file(dir.file("lbl"), idx_bytes({2}, {0, 1}));
  expect_error([&] { IdxClassificationDataset(dir.file("img"), dir.file("lbl"), 10); },
               {dir.file("img"), dir.file("lbl"), "with 3 images", "holds 2 instead"});
}

TEST(IdxDataset, RejectsEmptyImages) {
  TempDir dir;
  write_file(dir.file("img"), idx_bytes({0, 28, 28}, {}));
  write_file(dir.file("lbl"), idx_bytes({0}, {}));
  expect_error([&] { IdxClassificationDataset(dir.file("img"), dir.file("lbl"), 10); },
               {dir.file("img"), "all above 0", "0x28x28"});
  write_file(dir.file("img0w"), idx_bytes({2, 28, 0}, {}));
  expect_error([&] { idx_image_stats(dir.file("img0w")); }, {dir.file("img0w"), "2x28x0"});
}

TEST(IdxDataset, RejectsSwappedFiles) {
  TempDir dir;
  write_file(dir.file("img"), idx_bytes({2, 1, 1}, {1, 2}));
  write_file(dir.file("lbl"), idx_bytes({2}, {0, 1}));
  expect_error([&] { IdxClassificationDataset(dir.file("lbl"), dir.file("img"), 10); },
               {dir.file("lbl"), "expected 3 dimension(s)"});
}

// ---- Fashion-MNIST as Debian ships it ----

class FashionMnistTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(FashionMnist::images_file(kFashionMnistDefaultRoot, Split::Train))) return;
    train_ = new FashionMnist(kFashionMnistDefaultRoot, Split::Train);
    test_ = new FashionMnist(kFashionMnistDefaultRoot, Split::Test);
  }
  static void TearDownTestSuite() {
    delete train_;
    delete test_;
    train_ = test_ = nullptr;
  }
  void SetUp() override {
    if (train_ == nullptr) GTEST_SKIP() << "Fashion-MNIST not installed under " << kFashionMnistDefaultRoot;
  }
  static FashionMnist* train_;
  static FashionMnist* test_;
};
FashionMnist* FashionMnistTest::train_ = nullptr;
FashionMnist* FashionMnistTest::test_ = nullptr;

TEST_F(FashionMnistTest, SizesShapesAndLabels) {
  EXPECT_EQ(train_->size(), 60000);
  EXPECT_EQ(test_->size(), 10000);
  EXPECT_EQ(train_->image_shape(), (Shape{1, 28, 28}));
  EXPECT_EQ(train_->num_classes(), 10);
  EXPECT_EQ(train_->split(), Split::Train);
  EXPECT_EQ(test_->split(), Split::Test);
  // First labels of each split (checked independently with Python's gzip module).
  const std::vector<int64_t> first_train = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(train_->label(i), first_train[static_cast<size_t>(i)]) << i;
  EXPECT_STREQ(FashionMnist::class_names()[static_cast<size_t>(train_->label(0))], "Ankle boot");
  EXPECT_EQ(train_->label(59999), 5);
  const std::vector<int64_t> first_test = {9, 2, 1, 1, 6};
  for (int64_t i = 0; i < 5; ++i) EXPECT_EQ(test_->label(i), first_test[static_cast<size_t>(i)]) << i;
  // The train split is balanced: 6000 per class.
  std::vector<int> counts(10, 0);
  for (uint8_t l : train_->labels()) ++counts[l];
  for (int c : counts) EXPECT_EQ(c, 6000);
}

TEST_F(FashionMnistTest, PixelSanity) {
  std::vector<float> image(28 * 28);
  int64_t label = -1;
  train_->get(0, image.data(), &label);
  EXPECT_EQ(label, 9);
  // Known facts of image 0: byte sum 76247, 433 non-zero pixels, max 255, a blank top row,
  // pixel (14, 14) = 217.
  double sum = 0;
  int nonzero = 0;
  float max = 0;
  for (float v : image) {
    ASSERT_GE(v, 0.0f);
    ASSERT_LE(v, 1.0f);
    sum += v * 255.0;
    nonzero += v != 0.0f;
    max = std::max(max, v);
  }
  EXPECT_NEAR(sum, 76247, 0.05);
  EXPECT_EQ(nonzero, 433);
  EXPECT_EQ(max, 1.0f);
  for (int x = 0; x < 28; ++x) EXPECT_EQ(image[static_cast<size_t>(x)], 0.0f);
  EXPECT_EQ(image[14 * 28 + 14], 217.0f / 255.0f);
  train_->get(59999, image.data(), &label);
  sum = 0;
  for (float v : image) sum += v * 255.0;
  EXPECT_NEAR(sum, 16684, 0.05);
}

TEST_F(FashionMnistTest, TrainMeanAndStd) {
  // Commonly quoted 0.2860 / 0.3530; exact values from Python: 0.28604059698879553, 0.3530242445149224.
  EXPECT_NEAR(train_->pixel_stats().mean.at(0), 0.2860406, 1e-6);
  EXPECT_NEAR(train_->pixel_stats().std.at(0), 0.3530242, 1e-6);
  // The test split has its own, different statistics; train_stats gives the train split's.
  EXPECT_NE(test_->pixel_stats().mean.at(0), train_->pixel_stats().mean.at(0));
  const ChannelStats s = FashionMnist::train_stats();
  EXPECT_EQ(s.mean, train_->pixel_stats().mean);
  EXPECT_EQ(s.std, train_->pixel_stats().std);
}

TEST(FashionMnist, MissingRootNamesThePath) {
  expect_error([] { FashionMnist("/nonexistent/fashion", Split::Test); },
               {"/nonexistent/fashion/t10k-images-idx3-ubyte.gz", "opening it failed"});
}

TEST(FashionMnist, UsesUncompressedFilesWhenGzipIsAbsent) {
  TempDir dir;
  write_file(dir.file("t10k-images-idx3-ubyte"), idx_bytes({1, 2, 2}, {0, 255, 0, 255}));
  write_file(dir.file("t10k-labels-idx1-ubyte.gz"), gzip_bytes(idx_bytes({1}, {7})));
  const FashionMnist ds(dir.file(""), Split::Test);
  EXPECT_EQ(ds.size(), 1);
  EXPECT_EQ(ds.label(0), 7);
  EXPECT_EQ(ds.images_path(), dir.file("t10k-images-idx3-ubyte"));
  EXPECT_EQ(ds.labels_path(), dir.file("t10k-labels-idx1-ubyte.gz"));
}
