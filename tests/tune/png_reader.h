// A test-side PNG reader, independent of the encoder under test: checks the signature and every chunk's
// CRC-32, reads IHDR (8-bit RGB or RGBA, no interlace), inflates the concatenated IDAT data with zlib and
// undoes the five row filters. Throws std::runtime_error saying what is wrong.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace bluewhale::testing {

struct DecodedPng {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;           // row-major, top row first
  std::vector<std::string> chunk_types;  // in file order
};

inline DecodedPng decode_png(const std::string& file) {
  auto fail = [](const std::string& why) { throw std::runtime_error("PNG: " + why); };
  auto u32 = [&](std::size_t at) {
    if (at + 4 > file.size()) fail("truncated at byte " + std::to_string(at));
    const auto* b = reinterpret_cast<const unsigned char*>(file.data() + at);
    return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | uint32_t{b[3]};
  };
  if (file.compare(0, 8, std::string("\x89PNG\r\n\x1a\n", 8)) != 0) fail("bad signature");
  DecodedPng out;
  std::string idat;
  std::size_t at = 8;
  bool ended = false;
  while (!ended) {
    const uint32_t len = u32(at);
    if (at + 12 + static_cast<std::size_t>(len) > file.size()) fail("chunk overruns the file");
    const std::string type = file.substr(at + 4, 4);
    const auto* body = reinterpret_cast<const Bytef*>(file.data() + at + 4);
    const uint32_t crc = static_cast<uint32_t>(::crc32(::crc32(0L, Z_NULL, 0), body, len + 4));
    if (crc != u32(at + 8 + len)) fail("CRC mismatch in chunk " + type);
    out.chunk_types.push_back(type);
    const std::string data = file.substr(at + 8, len);
    if (type == "IHDR") {
      if (len != 13) fail("IHDR length " + std::to_string(len));
      out.width = static_cast<int>(u32(at + 8));
      out.height = static_cast<int>(u32(at + 12));
      const int depth = static_cast<unsigned char>(data[8]), color = static_cast<unsigned char>(data[9]);
      if (depth != 8 || (color != 2 && color != 6) || data[10] != 0 || data[11] != 0 || data[12] != 0)
        fail("unsupported IHDR");
      out.channels = color == 6 ? 4 : 3;
    } else if (type == "IDAT") {
      idat += data;
    } else if (type == "IEND") {
      ended = true;
      if (at + 12 + len != file.size()) fail("bytes after IEND");
    }
    at += 12 + len;
  }
  if (out.chunk_types.empty() || out.chunk_types.front() != "IHDR") fail("IHDR is not first");
  if (out.width <= 0 || out.height <= 0) fail("empty image");
  const std::size_t stride = static_cast<std::size_t>(out.width) * static_cast<std::size_t>(out.channels);
  const std::size_t rows = static_cast<std::size_t>(out.height);
  std::vector<uint8_t> raw((stride + 1) * rows);
  uLongf raw_size = static_cast<uLongf>(raw.size());
  if (::uncompress(raw.data(), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), static_cast<uLong>(idat.size())) !=
          Z_OK ||
      raw_size != raw.size())
    fail("IDAT does not inflate to the image size");
  out.pixels.resize(stride * rows);
  const std::size_t bpp = static_cast<std::size_t>(out.channels);
  for (std::size_t y = 0; y < rows; ++y) {
    const uint8_t f = raw[y * (stride + 1)];
    const uint8_t* src = &raw[y * (stride + 1) + 1];
    uint8_t* cur = &out.pixels[y * stride];
    const uint8_t* prev = y > 0 ? cur - stride : nullptr;
    for (std::size_t i = 0; i < stride; ++i) {
      const int a = i >= bpp ? cur[i - bpp] : 0, b = prev ? prev[i] : 0, c = prev && i >= bpp ? prev[i - bpp] : 0;
      int pred = 0;
      if (f == 1) pred = a;
      else if (f == 2) pred = b;
      else if (f == 3) pred = (a + b) / 2;
      else if (f == 4) {
        const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (f != 0) {
        fail("unknown filter " + std::to_string(f) + " on row " + std::to_string(y));
      }
      cur[i] = static_cast<uint8_t>(src[i] + pred);
    }
  }
  return out;
}

}  // namespace bluewhale::testing
