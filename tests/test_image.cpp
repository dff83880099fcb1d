// Image decoding (data/image.h): PNG and JPEG, content sniffing, conversions to RGB, and the errors
// for empty, corrupt, truncated, unsupported and oversized files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>

#include <zlib.h>

#include "data/image.h"
#include "error_testing.h"
#include "framework/error.h"
#include "image_testing.h"

using namespace inq;
using namespace inq::test;
namespace fs = std::filesystem;

namespace {

class ImageDecode : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("inq_test_image_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// The error message read_image(path) throws, or "" when it decodes.
std::string read_error(const std::string& path) {
  return error_of([&] { read_image(path); });
}

std::string decode_error(const Bytes& bytes, const std::string& source) {
  return error_of([&] { decode_image(bytes.data(), bytes.size(), source); });
}

void put_u32_be(Bytes& b, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(v >> shift));
}

// A PNG signature and an IHDR chunk announcing width x height RGB, and nothing else: the header
// checks must refuse it before any pixel memory is allocated.
Bytes png_header_only(uint32_t width, uint32_t height);

// Sets the CRC-32 of the chunk at byte `at` to what its type and data give.
void fix_chunk_crc(Bytes& b, size_t at) {
  const uint32_t length = uint32_t{b[at]} << 24 | uint32_t{b[at + 1]} << 16 | uint32_t{b[at + 2]} << 8 | b[at + 3];
  const uint32_t crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), b.data() + at + 4, length + 4));
  for (int k = 0; k < 4; ++k) b[at + 8 + length + k] = static_cast<uint8_t>(crc >> (24 - 8 * k));
}

Bytes png_header_only(uint32_t width, uint32_t height) {
  Bytes b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  put_u32_be(b, 13);
  for (char c : std::string("IHDR")) b.push_back(static_cast<uint8_t>(c));
  put_u32_be(b, width);
  put_u32_be(b, height);
  for (uint8_t v : {8, 2, 0, 0, 0}) b.push_back(v);  // depth 8, colour type 2 (RGB)
  put_u32_be(b, 0);                                   // CRC
  fix_chunk_crc(b, 8);
  return b;
}

// A baseline JPEG start of frame announcing width x height with 3 components.
Bytes jpeg_header_only(uint16_t width, uint16_t height) {
  Bytes b = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 17, 8};
  b.push_back(static_cast<uint8_t>(height >> 8));
  b.push_back(static_cast<uint8_t>(height & 0xFF));
  b.push_back(static_cast<uint8_t>(width >> 8));
  b.push_back(static_cast<uint8_t>(width & 0xFF));
  b.push_back(3);
  for (uint8_t id = 1; id <= 3; ++id) {
    b.push_back(id);
    b.push_back(0x11);
    b.push_back(0);
  }
  return b;
}

double mean_abs_difference(const RgbImage& a, const RgbImage& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int{a.pixels[i]} - int{b.pixels[i]});
  return sum / static_cast<double>(a.pixels.size());
}

}  // namespace

TEST_F(ImageDecode, PngRoundTripsExactlyAndJpegClosely) {
  const RgbImage original = test_pattern(37, 53, 1);
  write_bytes(file("a.png"), encode_png(original));
  const RgbImage png = read_image(file("a.png"));
  EXPECT_EQ(png.height, 37);
  EXPECT_EQ(png.width, 53);
  EXPECT_EQ(png.pixels, original.pixels);

  for (int quality : {95, 75}) {  // 4:4:4 and 4:2:0 chroma
    write_bytes(file("a.jpg"), encode_jpeg(original, quality));
    const RgbImage jpeg = read_image(file("a.jpg"));
    ASSERT_EQ(jpeg.height, 37);
    ASSERT_EQ(jpeg.width, 53);
    EXPECT_LT(mean_abs_difference(jpeg, original), 8.0) << "quality " << quality;
    EXPECT_NE(jpeg.pixels, original.pixels);  // really lossy: the JPEG path was taken
  }
}

TEST_F(ImageDecode, FormatIsSniffedFromContentNotFromTheName) {
  const RgbImage original = test_pattern(20, 30, 2);
  // ImageNet's n02105855_2933.JPEG is a PNG.
  write_bytes(file("png_named.JPEG"), encode_png(original));
  EXPECT_EQ(read_image(file("png_named.JPEG")).pixels, original.pixels);
  write_bytes(file("jpeg_named.png"), encode_jpeg(original, 95));
  EXPECT_EQ(read_image(file("jpeg_named.png")).width, 30);
  const Bytes png = encode_png(original);
  EXPECT_EQ(sniff_image_format(png.data(), png.size()), ImageFormat::Png);
  const Bytes jpeg = encode_jpeg(original, 95);
  EXPECT_EQ(sniff_image_format(jpeg.data(), jpeg.size()), ImageFormat::Jpeg);
  EXPECT_EQ(read_image_header(jpeg.data(), jpeg.size(), "x").height, 20);
}

TEST_F(ImageDecode, GreyAndAlphaBecomeRgbLikePilConvertRgb) {
  const int w = 7, h = 5;
  Bytes grey(w * h), grey_alpha(w * h * 2), rgba(w * h * 4);
  for (int i = 0; i < w * h; ++i) {
    grey[i] = static_cast<uint8_t>(i * 7);
    grey_alpha[2 * i] = static_cast<uint8_t>(i * 5);
    grey_alpha[2 * i + 1] = static_cast<uint8_t>(255 - i);  // alpha is dropped, never composited
    for (int c = 0; c < 3; ++c) rgba[4 * i + c] = static_cast<uint8_t>(i * 3 + c * 50);
    rgba[4 * i + 3] = static_cast<uint8_t>(i % 2 ? 0 : 128);
  }
  write_bytes(file("grey.png"), encode_png(grey.data(), w, h, 1));
  write_bytes(file("grey_alpha.png"), encode_png(grey_alpha.data(), w, h, 2));
  write_bytes(file("rgba.png"), encode_png(rgba.data(), w, h, 4));
  const RgbImage g = read_image(file("grey.png"));
  const RgbImage ga = read_image(file("grey_alpha.png"));
  const RgbImage c = read_image(file("rgba.png"));
  for (int i = 0; i < w * h; ++i) {
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(g.pixels[3 * i + k], grey[i]);
      EXPECT_EQ(ga.pixels[3 * i + k], grey_alpha[2 * i]);
      EXPECT_EQ(c.pixels[3 * i + k], rgba[4 * i + k]);
    }
  }
}

TEST_F(ImageDecode, EmptyMissingAndUnsupportedFilesNameThePathAndTheReason) {
  write_bytes(file("empty.jpg"), {});
  std::string msg = read_error(file("empty.jpg"));
  EXPECT_NE(msg.find(file("empty.jpg")), std::string::npos) << msg;
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;

  msg = read_error(file("missing.png"));
  EXPECT_NE(msg.find(file("missing.png")), std::string::npos) << msg;

  write_bytes(file("bitmap.bmp"), {'B', 'M', 0x3A, 0, 0, 0, 0, 0});
  msg = read_error(file("bitmap.bmp"));
  EXPECT_NE(msg.find("BMP"), std::string::npos) << msg;
  write_bytes(file("text.jpg"), {'h', 'e', 'l', 'l', 'o'});
  msg = read_error(file("text.jpg"));
  EXPECT_NE(msg.find("neither a JPEG nor a PNG"), std::string::npos) << msg;
  EXPECT_NE(msg.find(file("text.jpg")), std::string::npos) << msg;

  fs::create_directories(file("a_directory.png"));
  msg = read_error(file("a_directory.png"));
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
}

TEST_F(ImageDecode, TruncatedAndCorruptFilesAreErrorsThatSaySo) {
  const RgbImage original = test_pattern(64, 48, 3);
  for (const bool png : {true, false}) {
    const Bytes whole = png ? encode_png(original) : encode_jpeg(original, 90);
    const std::string kind = png ? "PNG" : "JPEG";
    // JPEG must end with its end-of-image marker (libjpeg and so PIL also fail without it), and a
    // PNG with its IEND chunk (validate_png); PNG is cut inside the pixel data here.
    for (const size_t keep : {whole.size() / 2, png ? whole.size() - 20 : whole.size() - 1, size_t{40}}) {
      Bytes cut(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(keep));
      const std::string path = file("cut" + std::to_string(keep) + (png ? ".png" : ".jpg"));
      write_bytes(path, cut);
      const std::string msg = read_error(path);
      ASSERT_FALSE(msg.empty()) << kind << " cut to " << keep << " of " << whole.size() << " bytes decoded";
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
      EXPECT_NE(msg.find(kind), std::string::npos) << msg;
    }
    // Garbage after the header, complete end marker: corrupt, not truncated.
    Bytes corrupt = whole;
    const size_t from = png ? 60 : whole.size() / 3;
    for (size_t i = from; i + 12 < corrupt.size(); ++i) corrupt[i] = static_cast<uint8_t>(i * 131 + 7);
    const std::string msg = decode_error(corrupt, "corrupt." + kind);
    ASSERT_FALSE(msg.empty()) << kind;
    EXPECT_NE(msg.find("corrupt." + kind), std::string::npos) << msg;
    EXPECT_NE(msg.find("is corrupt"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("truncated"), std::string::npos) << msg;
  }
}

// stb_image checks neither chunk CRCs nor the zlib stream's Adler-32; PIL refuses both, so the
// decoder validates the container first (data/image_decode.cpp validate_png).
TEST_F(ImageDecode, APngWithABadCrcOrDamagedPixelDataIsRefusedNamingTheChunk) {
  const RgbImage original = test_pattern(40, 30, 3);
  const Bytes png = encode_png(original);
  ASSERT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  ASSERT_EQ(std::string(png.begin() + 37, png.begin() + 41), "IDAT");
  EXPECT_EQ(decode_error(png, "good.png"), "");

  Bytes bad_ihdr_crc = png;
  bad_ihdr_crc[29] ^= 0x01;  // IHDR's CRC
  std::string msg = decode_error(bad_ihdr_crc, "ihdr_crc.png");
  EXPECT_NE(msg.find("ihdr_crc.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("IHDR"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CRC"), std::string::npos) << msg;

  // One flipped byte in the pixel data: the chunk CRC catches it...
  Bytes flipped = png;
  flipped[41 + 20] ^= 0x10;
  msg = decode_error(flipped, "idat_flip.png");
  EXPECT_NE(msg.find("idat_flip.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("IDAT"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CRC"), std::string::npos) << msg;
  // ...and with the CRC recomputed, the zlib stream (its Adler-32 or its structure) does.
  fix_chunk_crc(flipped, 33);
  msg = decode_error(flipped, "idat_flip_crc_fixed.png");
  EXPECT_NE(msg.find("idat_flip_crc_fixed.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("zlib"), std::string::npos) << msg;
  // The last byte of the Adler-32 (the 4 bytes before IDAT's CRC) changed: a bad check value.
  const uint32_t idat_length = uint32_t{png[33]} << 24 | uint32_t{png[34]} << 16 | uint32_t{png[35]} << 8 | png[36];
  Bytes bad_adler = png;
  bad_adler[41 + idat_length - 1] ^= 0x01;
  fix_chunk_crc(bad_adler, 33);
  msg = decode_error(bad_adler, "adler.png");
  EXPECT_NE(msg.find("adler.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("zlib"), std::string::npos) << msg;

  // Truncated inside IDAT, and a file without IEND.
  msg = decode_error(Bytes(png.begin(), png.begin() + 41 + idat_length / 2), "cut.png");
  EXPECT_NE(msg.find("cut.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("IDAT"), std::string::npos) << msg;
  msg = decode_error(Bytes(png.begin(), png.end() - 12), "no_iend.png");
  EXPECT_NE(msg.find("no_iend.png"), std::string::npos) << msg;
  EXPECT_NE(msg.find("IEND"), std::string::npos) << msg;
}

TEST_F(ImageDecode, OversizedHeadersAreRefusedBeforeDecoding) {
  struct Case {
    Bytes bytes;
    std::string expect;
  };
  const Case cases[] = {
      {png_header_only(10000, 10000), "10000x10000"},  // 10^8 pixels > kMaxImagePixels
      {png_header_only(40000, 10), "40000x10"},        // a side > kMaxImageSide
      {png_header_only(100000, 100000), "too large"},  // stb's own 2^30-byte limit
      {jpeg_header_only(60000, 2000), "60000x2000"},
      {jpeg_header_only(9000, 9000), "9000x9000"},
  };
  for (const Case& c : cases) {
    const auto start = std::chrono::steady_clock::now();
    const std::string msg = decode_error(c.bytes, "huge.img");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_NE(msg.find("huge.img"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    EXPECT_LT(seconds, 0.05) << msg;  // refused from the header, nothing decoded
  }
  // Within the limits, a header-only file gets as far as decoding and fails there.
  const std::string msg = decode_error(png_header_only(100, 100), "small.png");
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
}

TEST_F(ImageDecode, AJpegHuffmanTableWithTooManyCodesIsRefusedBeforeStbBuildsIt) {
  // stb_image 2.27 would write past its 257-entry arrays building this table (data/image_decode.cpp).
  Bytes b = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 19, 0x00};  // SOI, DHT of length 19: class 0, id 0
  for (int i = 0; i < 16; ++i) b.push_back(255);       // 16 x 255 = 4080 codes
  b.insert(b.end(), {0xFF, 0xD9});
  const std::string msg = decode_error(b, "bad_dht.jpg");
  EXPECT_NE(msg.find("bad_dht.jpg"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4080 codes, more than 256"), std::string::npos) << msg;
  // A valid file's tables pass the same walk.
  const Bytes good = encode_jpeg(test_pattern(9, 9, 4), 80);
  EXPECT_EQ(decode_error(good, "good.jpg"), "");
}

TEST_F(ImageDecode, AnEmptyPngDataChunkAddsNothing) {
  // An IDAT chunk of length 0 is valid PNG; stb_image 2.27 would memcpy from it into a buffer it
  // never allocated (undefined behaviour, found by fuzz_image), so the decoder drops such chunks.
  const RgbImage original = test_pattern(5, 7, 3);
  const Bytes png = encode_png(original);
  const size_t after_ihdr = 8 + 4 + 4 + 13 + 4;
  ASSERT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  const uint8_t empty_idat[] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xAF, 0x06, 0x1E};  // CRC of "IDAT"
  Bytes with_empty(png.begin(), png.begin() + after_ihdr);
  with_empty.insert(with_empty.end(), std::begin(empty_idat), std::end(empty_idat));
  with_empty.insert(with_empty.end(), png.begin() + after_ihdr, png.end());
  with_empty.insert(with_empty.end() - 12, std::begin(empty_idat), std::end(empty_idat));  // and one before IEND
  const RgbImage decoded = decode_image(with_empty.data(), with_empty.size(), "empty_idat.png");
  EXPECT_EQ(decoded.height, original.height);
  EXPECT_EQ(decoded.width, original.width);
  EXPECT_EQ(decoded.pixels, original.pixels);
}
