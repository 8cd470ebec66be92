#include "prep/decompress.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "bluewhale/core/error.h"

namespace bluewhale::text {
namespace {

// Compressed input is read in blocks this large: big enough to amortise syscalls, small enough to stay
// in L2 next to the decompressor's window.
constexpr std::size_t kInputBlock = std::size_t{1} << 18;

class FileHandle {
 public:
  explicit FileHandle(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) BW_THROW(IoError, "cannot open input file '", path, "': ", std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd_);
      BW_THROW(IoError, "cannot read input file '", path, "': it is a directory");
    }
    // The whole file is read once, front to back: let the kernel read ahead aggressively.
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~FileHandle() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;

  std::size_t read_some(char* dst, std::size_t size) {
    // Keeps the kernel reading kAhead bytes past this read in the background: its own readahead window
    // (a few hundred KiB) left each 1 MiB read waiting on the disk for the part it had not fetched yet
    // whenever the file was not in the page cache.
    constexpr off_t kAhead = off_t{32} << 20;
    if (pos_ + static_cast<off_t>(size) + kAhead / 2 > advised_) {
      advised_ = std::max(advised_, pos_);
      ::posix_fadvise(fd_, advised_, kAhead, POSIX_FADV_WILLNEED);  // advice only: failure is harmless
      advised_ += kAhead;
    }
    for (;;) {
      ssize_t n = ::read(fd_, dst, size);
      if (n >= 0) {
        pos_ += n;
        return static_cast<std::size_t>(n);
      }
      if (errno == EINTR) continue;
      BW_THROW(IoError, "cannot read input file '", path_, "': ", std::strerror(errno));
    }
  }
  std::size_t read_full(char* dst, std::size_t size) {
    std::size_t got = 0;
    while (got < size) {
      std::size_t n = read_some(dst + got, size - got);
      if (n == 0) break;
      got += n;
    }
    return got;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  off_t pos_ = 0;      // file offset of the next read
  off_t advised_ = 0;  // end of the range handed to POSIX_FADV_WILLNEED so far
};

// The first bytes of the file were read for magic-byte detection; every source starts by serving them.
class PlainSource final : public ByteSource {
 public:
  PlainSource(std::unique_ptr<FileHandle> file, std::string head) : file_(std::move(file)), head_(std::move(head)) {}
  std::size_t read(char* dst, std::size_t size) override {
    std::size_t n;
    if (head_pos_ < head_.size()) {
      n = std::min(size, head_.size() - head_pos_);
      std::memcpy(dst, head_.data() + head_pos_, n);
      head_pos_ += n;
    } else {
      n = file_->read_some(dst, size);
    }
    raw_bytes_ += static_cast<int64_t>(n);
    return n;
  }

 private:
  std::unique_ptr<FileHandle> file_;
  std::string head_;
  std::size_t head_pos_ = 0;
};

// Compressed sources keep a block of file bytes; `in_` starts with the detection bytes.
class BlockInput {
 public:
  BlockInput(std::unique_ptr<FileHandle> file, const std::string& head) : file_(std::move(file)), buf_(kInputBlock) {
    std::memcpy(buf_.data(), head.data(), head.size());
    size_ = head.size();
  }
  // Replaces the consumed block with the next one; returns the bytes added (0 at end of file).
  std::size_t refill() {
    size_ = file_->read_some(buf_.data(), buf_.size());
    if (size_ == 0) eof_ = true;
    return size_;
  }
  char* data() { return buf_.data(); }
  std::size_t size() const { return size_; }
  bool eof() const { return eof_; }
  const std::string& path() const { return file_->path(); }

 private:
  std::unique_ptr<FileHandle> file_;
  std::vector<char> buf_;
  std::size_t size_ = 0;
  bool eof_ = false;
};

class GzipSource final : public ByteSource {
 public:
  GzipSource(std::unique_ptr<FileHandle> file, const std::string& head) : in_(std::move(file), head) {
    compression_ = Compression::kGzip;
    std::memset(&zs_, 0, sizeof zs_);
    // 15 window bits + 16: gzip wrapper only, so a zlib or raw stream is reported as corrupt.
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) BW_THROW(IoError, in_.path(), ": cannot initialise zlib");
    zs_.next_in = reinterpret_cast<Bytef*>(in_.data());
    zs_.avail_in = static_cast<uInt>(in_.size());
    raw_bytes_ = static_cast<int64_t>(in_.size());
  }
  ~GzipSource() override { inflateEnd(&zs_); }

  std::size_t read(char* dst, std::size_t size) override {
    zs_.next_out = reinterpret_cast<Bytef*>(dst);
    zs_.avail_out = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    const uInt want = zs_.avail_out;
    for (;;) {
      if (zs_.avail_in == 0 && !in_.eof()) {
        raw_bytes_ += static_cast<int64_t>(in_.refill());
        zs_.next_in = reinterpret_cast<Bytef*>(in_.data());
        zs_.avail_in = static_cast<uInt>(in_.size());
      }
      const bool no_input = zs_.avail_in == 0;
      if (no_input && between_members_) return want - zs_.avail_out;
      if (between_members_) {
        // Another member follows (concatenated gzip files, pigz/bgzip output): start a fresh stream.
        if (members_ > 0) inflateReset(&zs_);
        between_members_ = false;
        ++members_;
      }
      const uInt before = zs_.avail_out;
      int ret = inflate(&zs_, Z_NO_FLUSH);
      if (ret == Z_STREAM_END) {
        between_members_ = true;
      } else if (ret == Z_BUF_ERROR) {
        // No progress was possible: with the file exhausted the member is cut short.
        if (no_input) BW_THROW(InputError, in_.path(), ": truncated gzip stream (the file ends inside member ", members_, ")");
      } else if (ret != Z_OK) {
        BW_THROW(InputError, in_.path(), ": corrupt gzip stream: ", zs_.msg ? zs_.msg : "error code " + std::to_string(ret));
      }
      if (zs_.avail_out == 0) return want;
      if (no_input && ret == Z_OK && zs_.avail_out == before)
        BW_THROW(InputError, in_.path(), ": truncated gzip stream (the file ends inside member ", members_, ")");
    }
  }

 private:
  BlockInput in_;
  z_stream zs_;
  bool between_members_ = true;
  int members_ = 0;
};

class ZstdSource final : public ByteSource {
 public:
  ZstdSource(std::unique_ptr<FileHandle> file, const std::string& head) : in_(std::move(file), head) {
    compression_ = Compression::kZstd;
    dctx_ = ZSTD_createDCtx();
    if (!dctx_) BW_THROW(IoError, in_.path(), ": cannot create a zstd decompression context");
    zin_ = ZSTD_inBuffer{in_.data(), in_.size(), 0};
    raw_bytes_ = static_cast<int64_t>(in_.size());
  }
  ~ZstdSource() override { ZSTD_freeDCtx(dctx_); }

  std::size_t read(char* dst, std::size_t size) override {
    ZSTD_outBuffer out{dst, size, 0};
    for (;;) {
      if (zin_.pos == zin_.size && !in_.eof()) {
        raw_bytes_ += static_cast<int64_t>(in_.refill());
        zin_ = ZSTD_inBuffer{in_.data(), in_.size(), 0};
      }
      const bool no_input = zin_.pos == zin_.size;
      if (no_input && frame_done_) return out.pos;
      const std::size_t before = out.pos;
      std::size_t ret = ZSTD_decompressStream(dctx_, &out, &zin_);
      if (ZSTD_isError(ret)) BW_THROW(InputError, in_.path(), ": corrupt zstd stream: ", ZSTD_getErrorName(ret));
      // 0 means a frame ended and everything was flushed; a following frame starts on the next call.
      frame_done_ = ret == 0;
      if (out.pos == out.size) return out.pos;
      if (no_input && out.pos == before && !frame_done_)
        BW_THROW(InputError, in_.path(), ": truncated zstd stream (the file ends inside a frame)");
    }
  }

 private:
  BlockInput in_;
  ZSTD_DCtx* dctx_ = nullptr;
  ZSTD_inBuffer zin_{};
  bool frame_done_ = true;
};

constexpr unsigned char kGzipMagic[] = {0x1f, 0x8b};
constexpr unsigned char kZstdMagic[] = {0x28, 0xb5, 0x2f, 0xfd};

bool starts_with(const std::string& head, const unsigned char* magic, std::size_t n) {
  return head.size() >= n && std::memcmp(head.data(), magic, n) == 0;
}

}  // namespace

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone: return "none";
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
  }
  return "?";
}

std::size_t ByteSource::read_full(char* dst, std::size_t size) {
  std::size_t got = 0;
  while (got < size) {
    std::size_t n = read(dst + got, size - got);
    if (n == 0) break;
    got += n;
  }
  return got;
}

std::unique_ptr<ByteSource> open_byte_source(const std::string& path, const std::string& compression) {
  BW_CHECK(compression == "auto" || compression == "none" || compression == "gzip" || compression == "zstd",
           ConfigError, "input compression must be one of auto, none, gzip, zstd, got '", compression, "'");
  auto file = std::make_unique<FileHandle>(path);
  std::string head(4, '\0');
  head.resize(file->read_full(head.data(), head.size()));
  Compression c = Compression::kNone;
  if (compression == "gzip") c = Compression::kGzip;
  else if (compression == "zstd") c = Compression::kZstd;
  else if (compression == "auto") {
    if (starts_with(head, kGzipMagic, sizeof kGzipMagic)) c = Compression::kGzip;
    else if (starts_with(head, kZstdMagic, sizeof kZstdMagic)) c = Compression::kZstd;
  }
  switch (c) {
    case Compression::kGzip: return std::make_unique<GzipSource>(std::move(file), head);
    case Compression::kZstd: return std::make_unique<ZstdSource>(std::move(file), head);
    case Compression::kNone: break;
  }
  return std::make_unique<PlainSource>(std::move(file), std::move(head));
}

}  // namespace bluewhale::text
