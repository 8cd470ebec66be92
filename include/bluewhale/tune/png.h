// An 8-bit RGB/RGBA raster and a PNG encoder for the tuning report's plot images.
//
// The encoder writes the four chunks a viewer needs (IHDR, IDAT, IEND; one or more IDAT chunks of a
// zlib stream) with a CRC-32 per chunk, 8 bits per channel, no interlacing. Each row takes the PNG
// filter (none, sub, up, average, Paeth) with the smallest sum of absolute filtered bytes, the heuristic
// the PNG specification recommends; flat plot backgrounds then compress to a few bytes per row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bluewhale::tune {

// Largest width or height accepted, and largest pixel count (bounds memory: 4 bytes per pixel at most).
inline constexpr int kMaxImageSide = 16384;
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

// Pixels row-major, top row first, `channels` bytes per pixel (3: R, G, B; 4: R, G, B, A with straight,
// not premultiplied, alpha). Owns its pixels; copyable and movable.
class Image {
 public:
  // width x height pixels, each set to `fill` (its first `channels` bytes are used). ConfigError when a
  // side is outside 1..kMaxImageSide, the pixel count exceeds kMaxImagePixels or channels is not 3 or 4.
  Image(int width, int height, int channels = 3, const uint8_t* fill = nullptr);

  int width() const { return width_; }
  int height() const { return height_; }
  int channels() const { return channels_; }
  // Bytes of one row: width * channels.
  std::size_t stride() const { return static_cast<std::size_t>(width_) * static_cast<std::size_t>(channels_); }

  // The `channels` bytes of pixel (x, y); 0 <= x < width, 0 <= y < height (asserted).
  uint8_t* pixel(int x, int y);
  const uint8_t* pixel(int x, int y) const;

  // All pixels: height * stride() bytes.
  const std::vector<uint8_t>& data() const { return data_; }
  std::vector<uint8_t>& data() { return data_; }

  bool operator==(const Image& o) const = default;

 private:
  int width_, height_, channels_;
  std::vector<uint8_t> data_;
};

// The PNG file of `img` as bytes. `level` is zlib's compression level 0..9 (ConfigError otherwise).
std::string encode_png(const Image& img, int level = 6);

// Writes encode_png(img) to `path` atomically (temporary file, then rename): a reader sees the old file
// or the complete new one. IoError naming the path when the directory is missing or not writable.
void write_png(const std::filesystem::path& path, const Image& img, int level = 6);

}  // namespace bluewhale::tune
