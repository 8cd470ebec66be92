#include "bluewhale/data/binary_io.h"

#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>

namespace bluewhale {
namespace {

constexpr char kMagic[8] = {'B', 'W', 'B', 'I', 'N', 0, 0, 1};
constexpr std::size_t kFooter = 16;

}  // namespace

BinaryWriter::BinaryWriter(fs::path path, std::string_view tag, uint32_t version) : path_(std::move(path)) {
  tmp_ = path_;
  tmp_ += ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) BW_THROW(IoError, "cannot create '", tmp_.string(), "': ", std::strerror(errno));
  hash_state_ = XXH3_createState();
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(hash_state_));
  // Gathers small writes; arrays of this size or more go to the file directly. Small: on the virtual
  // machines prep runs on each fresh 4 KiB page costs ~11 us, and 1 MiB here was ~250 page faults per
  // state file, only to stage dictionaries that are written whole anyway.
  buf_.reserve(64 << 10);
  write_bytes(kMagic, sizeof kMagic);
  write<uint32_t>(version);
  write<uint32_t>(static_cast<uint32_t>(tag.size()));
  write_bytes(tag.data(), tag.size());
  payload_start_ = written_;
}

BinaryWriter::~BinaryWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_.c_str());
  }
  if (hash_state_) XXH3_freeState(static_cast<XXH3_state_t*>(hash_state_));
}

void BinaryWriter::write_bytes(const void* data, std::size_t size) {
  BW_ASSERT(file_, "write after close");
  XXH3_64bits_update(static_cast<XXH3_state_t*>(hash_state_), data, size);
  written_ += size;
  const char* p = static_cast<const char*>(data);
  if (buf_.size() + size > buf_.capacity()) flush();
  if (size >= buf_.capacity()) {
    if (std::fwrite(p, 1, size, file_) != size)
      BW_THROW(IoError, "cannot write '", tmp_.string(), "': ", std::strerror(errno));
    return;
  }
  buf_.insert(buf_.end(), p, p + size);
}

void BinaryWriter::flush() {
  if (buf_.empty()) return;
  if (std::fwrite(buf_.data(), 1, buf_.size(), file_) != buf_.size())
    BW_THROW(IoError, "cannot write '", tmp_.string(), "': ", std::strerror(errno));
  buf_.clear();
}

void BinaryWriter::close() {
  uint64_t payload = written_ - payload_start_;
  write<uint64_t>(payload);
  uint64_t h = XXH3_64bits_digest(static_cast<XXH3_state_t*>(hash_state_));
  flush();
  if (std::fwrite(&h, 1, sizeof h, file_) != sizeof h || std::fflush(file_) != 0 || ::fsync(fileno(file_)) != 0)
    BW_THROW(IoError, "cannot write '", tmp_.string(), "': ", std::strerror(errno));
  std::fclose(file_);
  file_ = nullptr;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    BW_THROW(IoError, "cannot rename '", tmp_.string(), "' to '", path_.string(), "': ", std::strerror(errno));
}

BinaryReader::BinaryReader(fs::path path, std::string_view tag, uint32_t max_version)
    : path_(std::move(path)), map_(path_) {
  const uint8_t* d = map_.data();
  std::size_t n = map_.size();
  check(n >= sizeof kMagic + 8 + kFooter, "file too short to be a BlueWhale binary file (truncated?)");
  check(std::memcmp(d, kMagic, sizeof kMagic) == 0, "not a BlueWhale binary file (bad magic)");
  uint64_t stored;
  std::memcpy(&stored, d + n - 8, 8);
  check(XXH3_64bits(d, n - 8) == stored, "checksum mismatch: the file is corrupted or truncated");
  std::memcpy(&version_, d + 8, 4);
  uint32_t tag_len;
  std::memcpy(&tag_len, d + 12, 4);
  check(tag_len <= n - 16 - kFooter, "bad tag length");
  std::string_view got(reinterpret_cast<const char*>(d + 16), tag_len);
  check(got == tag, str_cat("holds '", got, "', expected '", tag, "'"));
  check(version_ >= 1 && version_ <= max_version,
        str_cat("format version ", version_, " is not supported (this build reads up to ", max_version, ")"));
  pos_ = 16 + tag_len;
  end_ = n - kFooter;
  uint64_t payload;
  std::memcpy(&payload, d + end_, 8);
  check(payload == end_ - pos_, "payload length mismatch");
}

void BinaryReader::check(bool ok, std::string_view what) const {
  if (!ok) BW_THROW(FormatError, path_.string(), ": ", what);
}

void BinaryReader::read_bytes(void* dst, std::size_t size) {
  check(size <= remaining(), "unexpected end of data");
  if (size) std::memcpy(dst, map_.data() + pos_, size);
  pos_ += size;
}

std::string BinaryReader::read_string() {
  uint64_t n = read<uint64_t>();
  check(n <= remaining(), "string length out of bounds");
  std::string s(reinterpret_cast<const char*>(map_.data() + pos_), n);
  pos_ += n;
  return s;
}

void BinaryReader::expect_end() const { check(pos_ == end_, "trailing bytes after the expected content"); }

}  // namespace bluewhale
