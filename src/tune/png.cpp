#include "bluewhale/tune/png.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"

namespace bluewhale::tune {
namespace {

// IDAT payloads are split so no chunk nears the format's 2^31 - 1 length limit and a streaming reader
// never needs a huge buffer.
constexpr std::size_t kIdatChunk = std::size_t{1} << 20;

void put_u32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
  out.append(b, 4);
}

void put_chunk(std::string& out, const char type[4], const uint8_t* data, std::size_t size) {
  BW_ASSERT(size <= 0x7fffffffu, "PNG chunk of ", size, " bytes");
  put_u32(out, static_cast<uint32_t>(size));
  const std::size_t start = out.size();
  out.append(type, 4);
  if (size > 0) out.append(reinterpret_cast<const char*>(data), size);
  // The CRC covers the type and the data, not the length.
  const uLong crc = ::crc32(::crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(out.data() + start),
                            static_cast<uInt>(out.size() - start));
  put_u32(out, static_cast<uint32_t>(crc));
}

uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  return static_cast<uint8_t>(pb <= pc ? b : c);
}

// Writes filter type `f` of row `cur` (previous row `prev`, all zero for the first) into dst.
void filter_row(int f, const uint8_t* cur, const uint8_t* prev, std::size_t n, std::size_t bpp, uint8_t* dst) {
  for (std::size_t i = 0; i < n; ++i) {
    const int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
    int pred = 0;
    switch (f) {
      case 1: pred = a; break;
      case 2: pred = b; break;
      case 3: pred = (a + b) / 2; break;
      case 4: pred = paeth(a, b, c); break;
      default: break;
    }
    dst[i] = static_cast<uint8_t>(cur[i] - pred);
  }
}

}  // namespace

Image::Image(int width, int height, int channels, const uint8_t* fill)
    : width_(width), height_(height), channels_(channels) {
  BW_CHECK(width >= 1 && width <= kMaxImageSide && height >= 1 && height <= kMaxImageSide, ConfigError,
           "image size ", width, "x", height, " is out of bounds: each side must be 1..", kMaxImageSide);
  BW_CHECK(int64_t{width} * height <= kMaxImagePixels, ConfigError, "image size ", width, "x", height, " exceeds ",
           kMaxImagePixels, " pixels");
  BW_CHECK(channels == 3 || channels == 4, ConfigError, "image channels must be 3 (RGB) or 4 (RGBA), got ", channels);
  data_.assign(stride() * static_cast<std::size_t>(height), 0);
  if (fill)
    for (std::size_t i = 0; i < data_.size(); i += static_cast<std::size_t>(channels)) std::memcpy(&data_[i], fill, channels);
}

uint8_t* Image::pixel(int x, int y) {
  BW_ASSERT(x >= 0 && x < width_ && y >= 0 && y < height_, "pixel (", x, ", ", y, ") outside ", width_, "x", height_);
  return data_.data() + static_cast<std::size_t>(y) * stride() + static_cast<std::size_t>(x) * channels_;
}

const uint8_t* Image::pixel(int x, int y) const { return const_cast<Image*>(this)->pixel(x, y); }

std::string encode_png(const Image& img, int level) {
  BW_CHECK(level >= 0 && level <= 9, ConfigError, "PNG compression level must be 0..9, got ", level);
  const std::size_t n = img.stride(), bpp = static_cast<std::size_t>(img.channels());
  const std::size_t rows = static_cast<std::size_t>(img.height());
  // Filtered scanlines: one filter-type byte, then the row.
  std::vector<uint8_t> raw((n + 1) * rows);
  std::vector<uint8_t> zero(n, 0), trial(n);
  for (std::size_t y = 0; y < rows; ++y) {
    const uint8_t* cur = img.data().data() + y * n;
    const uint8_t* prev = y > 0 ? cur - n : zero.data();
    uint8_t* dst = raw.data() + y * (n + 1);
    uint64_t best_cost = UINT64_MAX;
    for (int f = 0; f < 5; ++f) {
      filter_row(f, cur, prev, n, bpp, trial.data());
      // Bytes read as signed, so small negative residuals count as small.
      uint64_t cost = 0;
      for (uint8_t v : trial) cost += static_cast<uint64_t>(std::abs(static_cast<int>(static_cast<int8_t>(v))));
      if (cost < best_cost) {
        best_cost = cost;
        dst[0] = static_cast<uint8_t>(f);
        std::memcpy(dst + 1, trial.data(), n);
      }
    }
  }
  uLongf zsize = ::compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> z(zsize);
  const int rc = ::compress2(z.data(), &zsize, raw.data(), static_cast<uLong>(raw.size()), level);
  BW_ASSERT(rc == Z_OK, "zlib compress2 failed with code ", rc);

  std::string out("\x89PNG\r\n\x1a\n", 8);
  uint8_t ihdr[13];
  const uint32_t w = static_cast<uint32_t>(img.width()), h = static_cast<uint32_t>(img.height());
  for (int i = 0; i < 4; ++i) ihdr[i] = static_cast<uint8_t>(w >> (24 - 8 * i)), ihdr[4 + i] = static_cast<uint8_t>(h >> (24 - 8 * i));
  ihdr[8] = 8;                              // bits per channel
  ihdr[9] = img.channels() == 4 ? 6 : 2;    // colour type: 6 RGBA, 2 RGB
  ihdr[10] = ihdr[11] = ihdr[12] = 0;       // deflate, adaptive filtering, no interlace
  put_chunk(out, "IHDR", ihdr, sizeof ihdr);
  for (std::size_t off = 0; off < zsize; off += kIdatChunk)
    put_chunk(out, "IDAT", z.data() + off, std::min<std::size_t>(kIdatChunk, zsize - off));
  put_chunk(out, "IEND", nullptr, 0);
  return out;
}

void write_png(const std::filesystem::path& path, const Image& img, int level) {
  write_file_atomic(path, encode_png(img, level));
}

}  // namespace bluewhale::tune
