// Checksummed little-endian binary files for state we write and read back (fitted operator state,
// dataset shards' companions, later checkpoints).
//
// Layout: magic "BWBIN\0\0\1" | u32 format version | u32 tag length | tag bytes | payload |
//         u64 payload length | u64 XXH3 of everything before it.
// The writer streams to `path.tmp.<pid>` and renames on close(); the reader verifies size, magic, tag,
// version and checksum before any value is decoded, and every read is bounds-checked, so a truncated,
// corrupted or foreign file raises FormatError naming the path, never undefined behaviour.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"

namespace bluewhale {

class BinaryWriter {
 public:
  // `tag` names the content ("op-state", "shard"); the reader checks it.
  BinaryWriter(fs::path path, std::string_view tag, uint32_t version);
  ~BinaryWriter();  // without close(): the temporary file is removed, nothing appears at path
  BinaryWriter(const BinaryWriter&) = delete;
  BinaryWriter& operator=(const BinaryWriter&) = delete;

  void write_bytes(const void* data, std::size_t size);
  template <class T>
  void write(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    write_bytes(&v, sizeof v);
  }
  void write_string(std::string_view s) {
    write<uint64_t>(s.size());
    write_bytes(s.data(), s.size());
  }
  template <class T>
  void write_vector(const std::vector<T>& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    write<uint64_t>(v.size());
    write_bytes(v.data(), v.size() * sizeof(T));
  }
  // Flushes, appends the footer, fsyncs and renames into place.
  void close();
  const fs::path& path() const { return path_; }

 private:
  void flush();
  fs::path path_, tmp_;
  std::FILE* file_ = nullptr;
  uint64_t payload_start_ = 0, written_ = 0;
  void* hash_state_ = nullptr;  // XXH3 streaming state
  std::vector<char> buf_;
};

class BinaryReader {
 public:
  // Maps and verifies the whole file. Throws FormatError on any mismatch.
  BinaryReader(fs::path path, std::string_view tag, uint32_t max_version);

  uint32_t version() const { return version_; }
  void read_bytes(void* dst, std::size_t size);
  template <class T>
  T read() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    read_bytes(&v, sizeof v);
    return v;
  }
  // Lengths are bounded by the bytes left, so a corrupted length cannot trigger a huge allocation.
  std::string read_string();
  template <class T>
  std::vector<T> read_vector() {
    static_assert(std::is_trivially_copyable_v<T>);
    uint64_t n = read<uint64_t>();
    check(n <= remaining() / (sizeof(T) ? sizeof(T) : 1), "vector length");
    std::vector<T> v(n);
    read_bytes(v.data(), n * sizeof(T));
    return v;
  }
  std::size_t remaining() const { return end_ - pos_; }
  // Throws FormatError("<path>: <what> ...") unless ok.
  void check(bool ok, std::string_view what) const;
  // Fails unless every payload byte was consumed.
  void expect_end() const;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  MappedFile map_;
  uint32_t version_ = 0;
  std::size_t pos_ = 0, end_ = 0;
};

}  // namespace bluewhale
