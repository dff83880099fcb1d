#pragma once
// 8-bit RGB images and their decoding from JPEG and PNG files.
//
// Decoding is stb_image, compiled into data/image_decode.cpp and nowhere else, for JPEG and PNG
// only (docs/FORMATS_AND_RELIABILITY.md), so sanitizers and fuzzers cover the decoder. The format
// is sniffed from the bytes, never from a file name: ImageNet holds a PNG named .JPEG, and it must
// decode. Every image comes out as 3-channel RGB, the way torchvision's loader does it
// (PIL's Image.open(f).convert('RGB')):
//   grey             -> the grey value in R, G and B (PIL's L -> RGB)
//   grey + alpha     -> grey replicated, alpha dropped (PIL's LA -> RGB)
//   RGBA             -> alpha dropped, no compositing (PIL's RGBA -> RGB)
//   palette PNG      -> the palette's colors, transparency dropped (PIL's P -> RGB)
//   CMYK/YCCK JPEG   -> PIL's cmyk2rgb on the samples read as Adobe-inverted CMYK ("CMYK;I"),
//                       to the same rounding
//   16-bit PNG       -> the high byte of each sample. PIL agrees for RGB(A) (raw mode "RGB;16B"),
//                       but opens 16-bit grey as 32-bit "I" and clips to 255 in convert('RGB').
// Neither applies EXIF orientation or colour profiles (torchvision's loader does not either).
// JPEG pixels are libjpeg-turbo's (PIL's decoder) as far as this file's reimplementation of its
// IDCT, upsampling and colour conversion goes: see data/image_decode.cpp.
//
// Limits, checked on the header before the decoder allocates the image: at most kMaxImageSide
// pixels per side and kMaxImagePixels pixels in all; files larger than kMaxImageFileBytes are
// refused before they are read.
//
// Errors are inq::Error naming the file (or the `source` given for bytes) and the reason: this
// module's own for what it checks (empty, not a JPEG or PNG, too large), otherwise "truncated" (the
// data does not end with JPEG's end-of-image marker or PNG's IEND chunk) or "corrupt", followed by
// the decoder's terse reason ("stb_image: bad huffman code") or a note that it gave none.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace inq {

// pixels: (H, W, 3), rows top to bottom, channels R, G, B interleaved.
struct RgbImage {
  int64_t height = 0, width = 0;
  std::vector<uint8_t> pixels;  // (H, W, 3)

  RgbImage() = default;
  // A black image of the given size (height, width >= 0).
  RgbImage(int64_t height, int64_t width);
  uint8_t* row(int64_t y) { return pixels.data() + y * width * 3; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * 3; }
  bool empty() const { return height == 0 || width == 0; }
};

inline constexpr int64_t kMaxImageSide = 32768;
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 26;     // 64 Mi pixels: 192 MiB as RGB
inline constexpr int64_t kMaxImageFileBytes = int64_t{1} << 28;  // 256 MiB

enum class ImageFormat { Jpeg, Png, Unknown };
// The format the leading bytes announce: JPEG's SOI + marker (FF D8 FF), PNG's 8-byte signature.
ImageFormat sniff_image_format(const uint8_t* data, size_t size);
const char* image_format_name(ImageFormat format);

// The size an image's header announces, after the same checks as decode_image but without
// decoding the pixels. Throws inq::Error like decode_image for a bad or oversized header.
struct ImageHeader {
  ImageFormat format = ImageFormat::Unknown;
  int64_t height = 0, width = 0;
  int channels = 0;  // as stored: 1 grey, 2 grey + alpha, 3 RGB or YCbCr, 4 RGBA or CMYK
};
ImageHeader read_image_header(const uint8_t* data, size_t size, const std::string& source);

// Decodes JPEG or PNG bytes into RGB. `source` names the bytes in error messages (a path, or a
// name like "<fuzz input>"). Safe to call from several threads at once.
RgbImage decode_image(const uint8_t* data, size_t size, const std::string& source);
// Reads and decodes the file at `path`; errors name the path.
RgbImage read_image(const std::string& path);

}  // namespace inq
