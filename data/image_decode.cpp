// JPEG and PNG decoding with stb_image. This is the one translation unit that compiles stb_image
// (docs/FORMATS_AND_RELIABILITY.md): only its JPEG and PNG decoders, reading from memory only (no
// stdio: files are read here, with a size limit, and errors name them).
//
// PNG is stb's whole decoder: lossless, so any correct decoder gives PIL's pixels.
//
// JPEG leaves room: the IDCT, the chroma upsampling and the colour conversion may each round
// differently, and stb's do (measured against PIL: up to 6 levels per pixel, 3/255 after
// torchvision's preprocessing). Models trained with torchvision saw libjpeg-turbo's pixels (PIL
// decodes with it), so this file uses stb for parsing and entropy decoding only, and does the rest
// the way libjpeg-turbo does by default (JDCT_ISLOW, fancy upsampling, its YCbCr tables):
//   IDCT        jidctint.c's jpeg_idct_islow (Loeffler-Ligtenberg-Moschytz, 13-bit constants, two
//               passes with 2 extra bits, its range-limit table), installed as stb's IDCT kernel
//   upsampling  jdsample.c: h2v1 and h2v2 "fancy" triangle filters with their alternating
//               rounding biases (only for components wider than 2 samples; plain replication
//               otherwise), h1v2 fancy, plain replication for other integral factors; edge rows
//               and columns replicated as jdmainct.c does
//   colour      jdcolor.c: 16-bit fixed-point tables for YCbCr -> RGB and YCCK -> CMYK, and
//               libjpeg's rules for which colour space a 3- or 4-component file is in
//   CMYK -> RGB PIL's: it reads every 4-component JPEG as Adobe-inverted CMYK ("CMYK;I") and
//               converts with cmyk2rgb (Convert.c)
#include "data/image.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include <zlib.h>

#include "framework/error.h"

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
// stb_image is third-party C compiled as C++; its warnings are not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace inq {

namespace {

bool starts_with(const uint8_t* data, size_t size, const char* magic, size_t magic_size) {
  return size >= magic_size && std::memcmp(data, magic, magic_size) == 0;
}

// For the message about a file that is neither JPEG nor PNG: torchvision's IMG_EXTENSIONS admit
// .bmp, .ppm, .pgm, .tif, .tiff and .webp files, which an ImageFolder lists and this decoder
// refuses, so say what the file looks like.
std::string describe_unsupported(const uint8_t* data, size_t size) {
  if (starts_with(data, size, "BM", 2)) return "it looks like a BMP image";
  if (starts_with(data, size, "GIF8", 4)) return "it looks like a GIF image";
  if (starts_with(data, size, "II*\0", 4) || starts_with(data, size, "MM\0*", 4)) return "it looks like a TIFF image";
  if (size >= 12 && starts_with(data, size, "RIFF", 4) && std::memcmp(data + 8, "WEBP", 4) == 0)
    return "it looks like a WebP image";
  if (size >= 2 && data[0] == 'P' && data[1] >= '1' && data[1] <= '7') return "it looks like a PNM (PPM/PGM) image";
  return "its first bytes are neither a JPEG nor a PNG signature";
}

// Whether the bytes end the way a complete file does: JPEG with the end-of-image marker FF D9
// (trailing zero padding allowed), PNG with its IEND chunk. Only used to explain a failure.
bool ends_completely(ImageFormat format, const uint8_t* data, size_t size) {
  if (format == ImageFormat::Jpeg) {
    while (size > 0 && data[size - 1] == 0) --size;
    return size >= 2 && data[size - 2] == 0xFF && data[size - 1] == 0xD9;
  }
  return size >= 12 && std::memcmp(data + size - 8, "IEND", 4) == 0;
}

// Why stb failed, in words. stb keeps its last failure reason per thread; callers clear it before
// each call so a stale reason is never reported. Its reasons are terse ("expected marker"), and a
// truncated file is the common cause, so say when the data stops short of the format's end.
std::string failure_reason(ImageFormat format, const uint8_t* data, size_t size) {
  const char* reason = stbi_failure_reason();
  const std::string stb = reason != nullptr && reason[0] != '\0' ? fmt::format("stb_image: {}", reason)
                                                                  : std::string("stb_image gave no reason");
  if (reason != nullptr && std::strcmp(reason, "too large") == 0) {
    return fmt::format("its header announces an image too large to decode ({})", stb);
  }
  if (!ends_completely(format, data, size)) {
    return fmt::format("it is truncated: it does not end with {} ({})",
                       format == ImageFormat::Jpeg ? "the JPEG end-of-image marker FF D9" : "the PNG IEND chunk",
                       stb);
  }
  return fmt::format("it is corrupt ({})", stb);
}

ImageFormat checked_format(const uint8_t* data, size_t size, const std::string& source) {
  INQ_CHECK(size > 0, "Given image file '{}', expected a JPEG or PNG image, but it is empty (0 bytes)", source);
  const ImageFormat format = sniff_image_format(data, size);
  INQ_CHECK(format != ImageFormat::Unknown, "Given image file '{}' ({} bytes), expected a JPEG or PNG image, but {}",
            source, size, describe_unsupported(data, size));
  INQ_CHECK(size <= static_cast<size_t>(kMaxImageFileBytes),
            "Given image file '{}' of {} bytes, expected at most {} bytes", source, size, kMaxImageFileBytes);
  return format;
}

// stb_image 2.27 (Debian 12's libstb-dev) builds a Huffman table without checking that the DHT
// segment's 16 code counts add up to at most 256 symbols, and then writes past its size[257] and
// values[256] arrays (upstream added the check in 2.28; found here by a sanitizer run on corrupted
// files). So walk the marker segments the way stb reads them and refuse such a table first. The
// walk consumes bytes as stb does: marker segments by their length, a DHT table by table (1 byte
// class and id, 16 counts, then the symbols), entropy-coded data byte by byte, FF 00 and restart
// markers inside it. Where stb would stop with an error (a DHT whose tables overrun its length),
// the walk stops too: stb never gets further. Returns the problem, or "" when there is none.
std::string jpeg_huffman_table_problem(const uint8_t* data, size_t size) {
  auto byte_at = [&](size_t i) -> int { return i < size ? data[i] : 0; };  // stb reads 0 past the end
  size_t pos = 2;  // after SOI
  while (pos + 1 < size) {
    if (data[pos] != 0xFF) {
      ++pos;  // entropy-coded data, or padding stb skips a byte at a time
      continue;
    }
    const int marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD9)) {  // stuffing, TEM, RSTn, SOI, EOI
      pos += 2;
      continue;
    }
    const size_t length = static_cast<size_t>(byte_at(pos + 2) << 8 | byte_at(pos + 3));
    if (marker != 0xC4) {
      pos += 2 + length;
      continue;
    }
    int64_t remaining = static_cast<int64_t>(length) - 2;
    size_t table = pos + 4;
    while (remaining > 0) {
      int codes = 0;
      for (size_t i = 1; i <= 16; ++i) codes += byte_at(table + i);
      if (codes > 256) return fmt::format("a Huffman table (DHT) declares {} codes, more than 256", codes);
      table += 17 + static_cast<size_t>(codes);
      remaining -= 17 + codes;
    }
    if (remaining != 0) return "";
    pos = table;
  }
  return "";
}

// stb_image 2.27 copies an IDAT chunk's data with memcpy into a buffer it allocates only when the
// chunk has data, so an empty IDAT chunk (valid PNG: the compressed stream may be split anywhere)
// before any other reaches memcpy(nullptr, ..., 0), undefined behaviour (found by fuzz_image under
// UBSan). An empty IDAT adds nothing to the image, so decode a copy without such chunks. Returns
// that copy, or an empty vector when the file has none (the common case: no copy). The walk stops
// at the first chunk that runs past the end and leaves the rest to stb, which reports the damage.
std::vector<uint8_t> png_without_empty_data_chunks(const uint8_t* data, size_t size) {
  auto be32 = [&](size_t i) {
    return static_cast<uint64_t>(data[i]) << 24 | static_cast<uint64_t>(data[i + 1]) << 16 |
           static_cast<uint64_t>(data[i + 2]) << 8 | data[i + 3];
  };
  auto is_empty_idat = [&](size_t chunk) { return be32(chunk) == 0 && std::memcmp(data + chunk + 4, "IDAT", 4) == 0; };
  std::vector<size_t> chunks;  // offsets of the whole chunks (length, type, data, CRC)
  bool any_empty_idat = false;
  for (size_t pos = 8; pos + 12 <= size;) {
    const uint64_t length = be32(pos);
    if (length > size - pos - 12) break;
    chunks.push_back(pos);
    any_empty_idat = any_empty_idat || is_empty_idat(pos);
    pos += 12 + static_cast<size_t>(length);
  }
  if (!any_empty_idat) return {};
  std::vector<uint8_t> copy(data, data + 8);
  size_t end_of_walk = 8;
  for (const size_t chunk : chunks) {
    end_of_walk = chunk + 12 + static_cast<size_t>(be32(chunk));
    if (!is_empty_idat(chunk)) copy.insert(copy.end(), data + chunk, data + end_of_walk);
  }
  copy.insert(copy.end(), data + end_of_walk, data + size);  // whatever the walk did not reach
  return copy;
}

// stb_image checks neither chunk CRCs nor the zlib stream's Adler-32, so a PNG with a damaged
// header or one flipped byte in its pixel data decodes into wrong pixels where PIL (and so
// torchvision) refuses the file. So check the container first, the way libpng does: the chunk
// structure (every chunk within the file), every chunk's CRC-32, IHDR first with 13 bytes, IEND
// present, and the concatenated IDAT data one zlib stream that inflates to its end with a valid
// Adler-32 (inflated into a scratch buffer, output discarded). Throws naming the file and chunk.
void validate_png(const uint8_t* data, size_t size, const std::string& source, const ImageHeader& header) {
  auto be32 = [&](size_t i) {
    return static_cast<uint32_t>(data[i]) << 24 | static_cast<uint32_t>(data[i + 1]) << 16 |
           static_cast<uint32_t>(data[i + 2]) << 8 | static_cast<uint32_t>(data[i + 3]);
  };
  const std::string what = fmt::format("Given image file '{}' ({}x{} PNG), expected a valid PNG", source,
                                       header.width, header.height);
  auto printable = [&](size_t at) {
    std::string name;
    for (size_t i = 0; i < 4; ++i) {
      const char c = static_cast<char>(data[at + i]);
      name += (c >= 0x21 && c <= 0x7E) ? std::string(1, c) : fmt::format("\\x{:02X}", data[at + i]);
    }
    return name;
  };
  z_stream zs{};
  INQ_CHECK(inflateInit(&zs) == Z_OK, "{}, but zlib could not start inflating ({})", what,
            zs.msg != nullptr ? zs.msg : "inflateInit failed");
  struct End {
    z_stream* z;
    ~End() { inflateEnd(z); }
  } end{&zs};
  std::vector<uint8_t> scratch(64 * 1024);
  bool seen_idat = false, idat_done = false, stream_end = false, seen_iend = false;
  size_t pos = 8, index = 0;
  std::string last_idat_note;
  while (!seen_iend) {
    if (pos + 8 > size) {
      throw Error(fmt::format("{}, but it is truncated: it does not end with the PNG IEND chunk (the file ends at "
                              "byte {}, inside the header of chunk {})",
                              what, size, index));
    }
    const uint32_t length = be32(pos);
    const std::string name = printable(pos + 4);
    INQ_CHECK(length <= 0x7FFFFFFFu, "{}, but it is corrupt: chunk {} '{}' at byte {} declares length {}, more than "
              "PNG's 2^31-1", what, index, name, pos, length);
    if (static_cast<uint64_t>(length) + 12 > size - pos) {
      throw Error(fmt::format("{}, but it is truncated: chunk {} '{}' at byte {} declares {} data bytes, but the file "
                              "ends {} bytes after its start (it does not end with the PNG IEND chunk)",
                              what, index, name, pos, length, size - pos));
    }
    const uint8_t* body = data + pos + 4;  // type and data: what the CRC covers
    const uint32_t stored = be32(pos + 8 + length);
    const uint32_t computed = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), body, length + 4));
    if (stored != computed) {
      throw Error(fmt::format("{}, but it is corrupt: chunk {} '{}' at byte {} has CRC-32 {:08x}, but its type and "
                              "data give {:08x}",
                              what, index, name, pos, stored, computed));
    }
    const bool is_ihdr = name == "IHDR", is_idat = name == "IDAT";
    if (index == 0) {
      INQ_CHECK(is_ihdr && length == 13, "{}, but it is corrupt: its first chunk is '{}' of {} bytes, not IHDR of 13",
                what, name, length);
    } else {
      INQ_CHECK(!is_ihdr, "{}, but it is corrupt: chunk {} at byte {} is a second IHDR", what, index, pos);
    }
    if (is_idat) {
      INQ_CHECK(!idat_done, "{}, but it is corrupt: chunk {} IDAT at byte {} comes after other chunks followed the "
                "image data (IDAT chunks must be consecutive)", what, index, pos);
      seen_idat = true;
      zs.next_in = const_cast<Bytef*>(data + pos + 8);
      zs.avail_in = length;
      while (zs.avail_in > 0 && !stream_end) {
        zs.next_out = scratch.data();
        zs.avail_out = static_cast<uInt>(scratch.size());
        const int rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
          stream_end = true;
        } else if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs.avail_in == 0)) {
          throw Error(fmt::format("{}, but it is corrupt: the compressed image data (zlib stream) is invalid in chunk "
                                  "{} IDAT at byte {} ({})",
                                  what, index, pos, zs.msg != nullptr ? zs.msg : fmt::format("zlib error {}", rc)));
        }
      }
    } else if (seen_idat) {
      idat_done = true;
    }
    seen_iend = name == "IEND";
    pos += 12 + static_cast<size_t>(length);
    ++index;
  }
  INQ_CHECK(seen_idat, "{}, but it is corrupt: it has no IDAT (image data) chunk before IEND", what);
  INQ_CHECK(stream_end, "{}, but it is corrupt: the compressed image data (zlib stream) in its IDAT chunks stops "
            "before its end (after {} bytes of pixel data; a lost or damaged IDAT chunk, or a bad Adler-32)",
            what, zs.total_out);
}

// ---- JPEG: libjpeg-turbo's IDCT, upsampling and colour conversion on stb's coefficients ----------

// jpeg_idct_islow's fixed-point constants: FIX(x) = round(x * 2^13).
constexpr int kIdctConstBits = 13;
constexpr int kIdctPass1Bits = 2;
constexpr int64_t kFix_0_298631336 = 2446, kFix_0_390180644 = 3196, kFix_0_541196100 = 4433,
                  kFix_0_765366865 = 6270, kFix_0_899976223 = 7373, kFix_1_175875602 = 9633,
                  kFix_1_501321110 = 12299, kFix_1_847759065 = 15137, kFix_1_961570560 = 16069,
                  kFix_2_053119869 = 16819, kFix_2_562915447 = 20995, kFix_3_072711026 = 25172;

// libjpeg's DESCALE: shift right by n, rounding half up.
int64_t descale(int64_t x, int n) { return (x + (int64_t{1} << (n - 1))) >> n; }

// libjpeg's post-IDCT range limit: sample = value + 128, saturated, with the table's wrap-around
// for values far outside (only corrupt data gets there).
stbi_uc idct_range_limit(int64_t value) {
  const int i = static_cast<int>(value & 1023);
  if (i < 128) return static_cast<stbi_uc>(i + 128);
  if (i < 512) return 255;
  if (i < 896) return 0;
  return static_cast<stbi_uc>(i - 896);
}

// One 1-D pass of jpeg_idct_islow over 8 values (a column of coefficients, or a row of the first
// pass's output); writes the 8 results before descaling.
void islow_1d(const int64_t* in, int64_t out[8]) {
  // Even part.
  int64_t z2 = in[2], z3 = in[6];
  int64_t z1 = (z2 + z3) * kFix_0_541196100;
  const int64_t tmp2e = z1 + z3 * -kFix_1_847759065;
  const int64_t tmp3e = z1 + z2 * kFix_0_765366865;
  const int64_t tmp0e = (in[0] + in[4]) * (int64_t{1} << kIdctConstBits);
  const int64_t tmp1e = (in[0] - in[4]) * (int64_t{1} << kIdctConstBits);
  const int64_t tmp10 = tmp0e + tmp3e, tmp13 = tmp0e - tmp3e, tmp11 = tmp1e + tmp2e, tmp12 = tmp1e - tmp2e;
  // Odd part.
  int64_t tmp0 = in[7], tmp1 = in[5], tmp2 = in[3], tmp3 = in[1];
  z1 = tmp0 + tmp3;
  z2 = tmp1 + tmp2;
  z3 = tmp0 + tmp2;
  int64_t z4 = tmp1 + tmp3;
  const int64_t z5 = (z3 + z4) * kFix_1_175875602;
  tmp0 *= kFix_0_298631336;
  tmp1 *= kFix_2_053119869;
  tmp2 *= kFix_3_072711026;
  tmp3 *= kFix_1_501321110;
  z1 *= -kFix_0_899976223;
  z2 *= -kFix_2_562915447;
  z3 = z3 * -kFix_1_961570560 + z5;
  z4 = z4 * -kFix_0_390180644 + z5;
  tmp0 += z1 + z3;
  tmp1 += z2 + z4;
  tmp2 += z2 + z3;
  tmp3 += z1 + z4;
  out[0] = tmp10 + tmp3;
  out[7] = tmp10 - tmp3;
  out[1] = tmp11 + tmp2;
  out[6] = tmp11 - tmp2;
  out[2] = tmp12 + tmp1;
  out[5] = tmp12 - tmp1;
  out[3] = tmp13 + tmp0;
  out[4] = tmp13 - tmp0;
}

// stb's IDCT kernel slot: `data` holds the dequantized coefficients in natural (row-major) order,
// which is what libjpeg's DEQUANTIZE(coef, quantval) produces. Columns first, then rows.
void islow_idct(stbi_uc* out, int out_stride, short data[64]) {
  int workspace[64];
  int64_t column[8], result[8];
  for (int c = 0; c < 8; ++c) {
    for (int r = 0; r < 8; ++r) column[r] = data[r * 8 + c];
    islow_1d(column, result);
    for (int r = 0; r < 8; ++r)
      workspace[r * 8 + c] = static_cast<int>(descale(result[r], kIdctConstBits - kIdctPass1Bits));
  }
  for (int r = 0; r < 8; ++r) {
    int64_t row[8];
    for (int c = 0; c < 8; ++c) row[c] = workspace[r * 8 + c];
    islow_1d(row, result);
    for (int c = 0; c < 8; ++c)
      out[r * out_stride + c] = idct_range_limit(descale(result[c], kIdctConstBits + kIdctPass1Bits + 3));
  }
}

// jdcolor.c's YCbCr tables (SCALEBITS 16).
struct YccTables {
  int cr_r[256], cb_b[256];
  int64_t cr_g[256], cb_g[256];
};
const YccTables& ycc_tables() {
  static const YccTables t = [] {
    constexpr int kScaleBits = 16;
    constexpr int64_t kOneHalf = int64_t{1} << (kScaleBits - 1);
    auto fix = [](double x) { return static_cast<int64_t>(x * static_cast<double>(int64_t{1} << kScaleBits) + 0.5); };
    YccTables y{};
    for (int i = 0; i < 256; ++i) {
      const int64_t x = i - 128;
      y.cr_r[i] = static_cast<int>((fix(1.40200) * x + kOneHalf) >> kScaleBits);
      y.cb_b[i] = static_cast<int>((fix(1.77200) * x + kOneHalf) >> kScaleBits);
      y.cr_g[i] = -fix(0.71414) * x;
      y.cb_g[i] = -fix(0.34414) * x + kOneHalf;  // the rounding half rides along here
    }
    return y;
  }();
  return t;
}

stbi_uc clamp_sample(int64_t v) { return static_cast<stbi_uc>(std::clamp<int64_t>(v, 0, 255)); }

void ycc_to_rgb(stbi_uc y, stbi_uc cb, stbi_uc cr, stbi_uc* rgb) {
  const YccTables& t = ycc_tables();
  rgb[0] = clamp_sample(y + t.cr_r[cr]);
  rgb[1] = clamp_sample(y + ((t.cb_g[cb] + t.cr_g[cr]) >> 16));
  rgb[2] = clamp_sample(y + t.cb_b[cb]);
}

// PIL's MULDIV255 (a * b / 255, rounded).
int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

// PIL's "CMYK;I" unpacking then cmyk2rgb, for one channel and the K sample as stored.
stbi_uc pil_inverted_cmyk_to_rgb(stbi_uc stored, stbi_uc stored_k) {
  const int nk = stored_k;  // 255 - (255 - stored_k)
  return clamp_sample(nk - muldiv255(255 - stored, nk));
}

// One decoded component plane and how it maps to full resolution.
struct Plane {
  const stbi_uc* data = nullptr;
  int64_t stride = 0, width = 0, height = 0;  // width, height: libjpeg's downsampled size
  int hs = 1, vs = 1;                         // upsampling factors (max factor / own factor)
  const stbi_uc* row(int64_t r) const { return data + std::clamp<int64_t>(r, 0, height - 1) * stride; }
};

// Full-resolution row y of a component into out[0 .. out_width), as jdsample.c upsamples it.
// `scratch` holds 2 * width + 2 ints.
void upsample_row(const Plane& p, int64_t y, int64_t out_width, stbi_uc* out, std::vector<int>& scratch) {
  const int64_t w = p.width;
  if (p.hs == 1 && p.vs == 1) {
    std::memcpy(out, p.row(y), static_cast<size_t>(out_width));
    return;
  }
  if (p.hs == 1 && p.vs == 2) {  // h1v2_fancy_upsample: bias 1 towards the row above, 2 below
    const int64_t in_row = y / 2;
    const bool upper = y % 2 == 0;
    const stbi_uc* near_row = p.row(in_row);
    const stbi_uc* far_row = p.row(upper ? in_row - 1 : in_row + 1);
    const int bias = upper ? 1 : 2;
    for (int64_t x = 0; x < out_width; ++x) out[x] = static_cast<stbi_uc>((near_row[x] * 3 + far_row[x] + bias) >> 2);
    return;
  }
  if (p.hs == 2 && p.vs == 1 && w > 2) {  // h2v1_fancy_upsample: biases 1 (left) and 2 (right)
    const stbi_uc* in = p.row(y);
    for (int64_t c = 0, x = 0; c < w && x < out_width; ++c) {
      const int three = in[c] * 3;
      const int left = in[c == 0 ? 0 : c - 1], right = in[c == w - 1 ? c : c + 1];
      out[x++] = static_cast<stbi_uc>((three + left + 1) >> 2);
      if (x < out_width) out[x++] = static_cast<stbi_uc>((three + right + 2) >> 2);
    }
    return;
  }
  if (p.hs == 2 && p.vs == 2 && w > 2) {  // h2v2_fancy_upsample: column sums, biases 8 and 7
    const int64_t in_row = y / 2;
    const stbi_uc* near_row = p.row(in_row);
    const stbi_uc* far_row = p.row(y % 2 == 0 ? in_row - 1 : in_row + 1);
    int* colsum = scratch.data();
    for (int64_t c = 0; c < w; ++c) colsum[c] = near_row[c] * 3 + far_row[c];
    for (int64_t c = 0, x = 0; c < w && x < out_width; ++c) {
      const int this_sum = colsum[c] * 3;
      const int last = colsum[c == 0 ? 0 : c - 1], next = colsum[c == w - 1 ? c : c + 1];
      out[x++] = static_cast<stbi_uc>((this_sum + last + 8) >> 4);
      if (x < out_width) out[x++] = static_cast<stbi_uc>((this_sum + next + 7) >> 4);
    }
    return;
  }
  // Plain replication (int_upsample, and h2v1/h2v2_upsample for components 1 or 2 samples wide).
  const stbi_uc* in = p.row(y / p.vs);
  for (int64_t x = 0; x < out_width; ++x) out[x] = in[x / p.hs];
}

// jdapimin.c's default_decompress_parms: is a 3-component file RGB (else YCbCr), is a
// 4-component file YCCK (else CMYK)?
bool jpeg_is_rgb(const stbi__jpeg& j) {
  if (j.jfif) return false;
  if (j.app14_color_transform >= 0) return j.app14_color_transform == 0;
  return j.img_comp[0].id == 'R' && j.img_comp[1].id == 'G' && j.img_comp[2].id == 'B';
}
bool jpeg_is_ycck(const stbi__jpeg& j) { return j.app14_color_transform >= 0 && j.app14_color_transform != 0; }

RgbImage decode_jpeg(const uint8_t* data, size_t size, const std::string& source, const ImageHeader& header) {
  stbi__context context;
  stbi__start_mem(&context, data, static_cast<int>(size));
  auto jpeg = std::make_unique<stbi__jpeg>();
  jpeg->s = &context;
  stbi__setup_jpeg(jpeg.get());
  jpeg->idct_block_kernel = islow_idct;
  context.img_n = 0;  // what stb's cleanup frees until the frame header is read
  struct Cleanup {
    stbi__jpeg* j;
    ~Cleanup() { stbi__cleanup_jpeg(j); }
  } cleanup{jpeg.get()};
  stbi__g_failure_reason = nullptr;
  if (!stbi__decode_jpeg_image(jpeg.get())) {
    throw Error(fmt::format("Given image file '{}' ({}x{} JPEG), expected it to decode, but {}", source, header.width,
                            header.height, failure_reason(ImageFormat::Jpeg, data, size)));
  }
  const int64_t width = context.img_x, height = context.img_y;
  const int components = context.img_n;
  INQ_CHECK(height == header.height && width == header.width,
            "Given image file '{}', expected the decoded size to match the header's {}x{}, but got {}x{} instead",
            source, header.width, header.height, width, height);
  Plane planes[4];
  for (int k = 0; k < components; ++k) {
    const auto& c = jpeg->img_comp[k];
    planes[k] = Plane{c.data, c.w2, c.x, c.y, jpeg->img_h_max / c.h, jpeg->img_v_max / c.v};
  }
  RgbImage image(height, width);
  std::vector<stbi_uc> rows(static_cast<size_t>(4 * width));
  std::vector<int> scratch(static_cast<size_t>(2 * width + 2));
  const bool rgb = components == 3 && jpeg_is_rgb(*jpeg);
  const bool ycck = components == 4 && jpeg_is_ycck(*jpeg);
  for (int64_t y = 0; y < height; ++y) {
    for (int k = 0; k < components; ++k) upsample_row(planes[k], y, width, rows.data() + k * width, scratch);
    const stbi_uc* c0 = rows.data();
    const stbi_uc* c1 = c0 + width;
    const stbi_uc* c2 = c1 + width;
    const stbi_uc* c3 = c2 + width;
    stbi_uc* out = image.row(y);
    for (int64_t x = 0; x < width; ++x, out += 3) {
      if (components == 1) {
        out[0] = out[1] = out[2] = c0[x];
      } else if (components == 3) {
        if (rgb) {
          out[0] = c0[x], out[1] = c1[x], out[2] = c2[x];
        } else {
          ycc_to_rgb(c0[x], c1[x], c2[x], out);
        }
      } else {
        stbi_uc cmy[3] = {c0[x], c1[x], c2[x]};
        if (ycck) {  // jdcolor.c's ycck_cmyk_convert: C, M, Y = 255 - R, G, B of the YCbCr part
          ycc_to_rgb(c0[x], c1[x], c2[x], cmy);
          for (stbi_uc& v : cmy) v = static_cast<stbi_uc>(255 - v);
        }
        for (int ch = 0; ch < 3; ++ch) out[ch] = pil_inverted_cmyk_to_rgb(cmy[ch], c3[x]);
      }
    }
  }
  return image;
}

}  // namespace

RgbImage::RgbImage(int64_t h, int64_t w) : height(h), width(w), pixels(static_cast<size_t>(h * w * 3), 0) {}

ImageFormat sniff_image_format(const uint8_t* data, size_t size) {
  static const uint8_t kJpeg[] = {0xFF, 0xD8, 0xFF};
  static const uint8_t kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= sizeof kJpeg && std::memcmp(data, kJpeg, sizeof kJpeg) == 0) return ImageFormat::Jpeg;
  if (size >= sizeof kPng && std::memcmp(data, kPng, sizeof kPng) == 0) return ImageFormat::Png;
  return ImageFormat::Unknown;
}

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

ImageHeader read_image_header(const uint8_t* data, size_t size, const std::string& source) {
  const ImageFormat format = checked_format(data, size, source);
  if (format == ImageFormat::Jpeg) {
    const std::string problem = jpeg_huffman_table_problem(data, size);
    INQ_CHECK(problem.empty(), "Given image file '{}', expected a valid JPEG, but it is corrupt: {}", source, problem);
  }
  int width = 0, height = 0, channels = 0;
  stbi__g_failure_reason = nullptr;
  // Reads only the header (PNG: IHDR and the chunks before IDAT; JPEG: up to the frame header).
  // The format's own reader, not stbi_info_from_memory: that one tries every format in turn and
  // reports the last one's "unknown image type" instead of the real reason.
  stbi__context context;
  stbi__start_mem(&context, data, static_cast<int>(size));
  const int ok = format == ImageFormat::Jpeg ? stbi__jpeg_info(&context, &width, &height, &channels)
                                             : stbi__png_info(&context, &width, &height, &channels);
  if (!ok) {
    throw Error(fmt::format("Given image file '{}', expected a readable {} header, but {}", source,
                            image_format_name(format), failure_reason(format, data, size)));
  }
  const int64_t h = height, w = width;
  INQ_CHECK(h > 0 && w > 0 && h <= kMaxImageSide && w <= kMaxImageSide && h * w <= kMaxImagePixels,
            "Given image file '{}' of {}x{} pixels (width x height), expected at most {} pixels per side and {} "
            "pixels in all",
            source, w, h, kMaxImageSide, kMaxImagePixels);
  return ImageHeader{format, h, w, channels};
}

RgbImage decode_image(const uint8_t* data, size_t size, const std::string& source) {
  const ImageHeader header = read_image_header(data, size, source);
  if (header.format == ImageFormat::Jpeg) return decode_jpeg(data, size, source, header);
  validate_png(data, size, source, header);
  const std::vector<uint8_t> repaired = png_without_empty_data_chunks(data, size);
  if (!repaired.empty()) {
    data = repaired.data();
    size = repaired.size();
  }
  int width = 0, height = 0, channels_in_file = 0;
  stbi__g_failure_reason = nullptr;
  // req_comp = 3: stb converts grey, grey + alpha and RGBA to RGB as described in image.h.
  std::unique_ptr<stbi_uc, decltype(&stbi_image_free)> pixels(
      stbi_load_from_memory(data, static_cast<int>(size), &width, &height, &channels_in_file, 3), &stbi_image_free);
  if (!pixels) {
    throw Error(fmt::format("Given image file '{}' ({}x{} {}), expected it to decode, but {}", source, header.width,
                            header.height, image_format_name(header.format),
                            failure_reason(header.format, data, size)));
  }
  INQ_CHECK(height == header.height && width == header.width,
            "Given image file '{}', expected the decoded size to match the header's {}x{}, but got {}x{} instead",
            source, header.width, header.height, width, height);
  RgbImage image;
  image.height = height;
  image.width = width;
  image.pixels.assign(pixels.get(), pixels.get() + static_cast<size_t>(image.height * image.width * 3));
  return image;
}

RgbImage read_image(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  INQ_CHECK(!ec && fs::is_regular_file(status), "Given image file '{}', expected a readable regular file, but {}",
            path, ec ? ec.message() : std::string("it is not a regular file"));
  const uintmax_t size = fs::file_size(path, ec);
  INQ_CHECK(!ec, "Given image file '{}', expected its size, but got: {}", path, ec.message());
  INQ_CHECK(size <= static_cast<uintmax_t>(kMaxImageFileBytes),
            "Given image file '{}' of {} bytes, expected at most {} bytes", path, size, kMaxImageFileBytes);
  std::ifstream in(path, std::ios::binary);
  INQ_CHECK(in.good(), "Given image file '{}', expected to open it, but got: {}", path, std::strerror(errno));
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  INQ_CHECK(in.gcount() == static_cast<std::streamsize>(bytes.size()),
            "Given image file '{}', expected to read its {} bytes, but read {}", path, bytes.size(), in.gcount());
  return decode_image(bytes.data(), bytes.size(), path);
}

}  // namespace inq
