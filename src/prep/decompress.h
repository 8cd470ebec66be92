// Private to the text reader: a sequential byte stream over one raw input file, decompressing gzip
// (including multi-member files) or zstd (including multi-frame files) on the fly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace bluewhale::text {

enum class Compression { kNone, kGzip, kZstd };

std::string_view compression_name(Compression c);

// Decompressed bytes of one file, read front to back. One owner thread at a time.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Writes up to `size` bytes to dst and returns how many; 0 only at the end of the data. A failed read
  // throws IoError; corrupt or truncated compressed data throws InputError. Both name the file.
  virtual std::size_t read(char* dst, std::size_t size) = 0;
  // On-disk bytes consumed so far (compressed bytes for gzip and zstd), for progress.
  int64_t raw_bytes() const { return raw_bytes_; }
  Compression compression() const { return compression_; }
  // Reads until `size` bytes or the end of the data; returns the count.
  std::size_t read_full(char* dst, std::size_t size);

 protected:
  int64_t raw_bytes_ = 0;
  Compression compression_ = Compression::kNone;
};

// Opens `path` for reading. `compression` is auto | none | gzip | zstd; auto picks gzip or zstd by the
// file's magic bytes and falls back to plain text. Throws IoError naming the path when it cannot be opened
// (missing, unreadable, a directory), ConfigError for an unknown compression name.
std::unique_ptr<ByteSource> open_byte_source(const std::string& path, const std::string& compression);

}  // namespace bluewhale::text
