#include "bluewhale/core/io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "bluewhale/core/error.h"

namespace bluewhale {
namespace {

[[noreturn]] void throw_os(const char* what, const fs::path& path) {
  BW_THROW(IoError, "cannot ", what, " '", path.string(), "': ", std::strerror(errno));
}

}  // namespace

std::string read_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_os("open", path);
  std::string out;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      errno = e;
      throw_os("read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

int64_t file_size(const fs::path& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw_os("stat", path);
  return static_cast<int64_t>(st.st_size);
}

bool write_fully(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;  // no progress (not expected of a regular file)
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_os("create", tmp);
  if (!write_fully(fd, bytes.data(), bytes.size())) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    errno = e;
    throw_os("write", tmp);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    errno = e;
    throw_os("flush", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    errno = e;
    throw_os("rename into", path);
  }
}

MappedFile::MappedFile(const fs::path& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_os("open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    throw_os("stat", path);
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      errno = e;
      throw_os("mmap", path);
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), path_(std::move(o.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    path_ = std::move(o.path_);
  }
  return *this;
}

MappedFile::~MappedFile() { reset(); }

void MappedFile::reset() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

StagedDirectory::StagedDirectory(fs::path final_path, bool overwrite)
    : final_(std::move(final_path)), overwrite_(overwrite) {
  std::error_code ec;
  if (fs::exists(final_, ec) && !overwrite_)
    BW_THROW(IoError, "output '", final_.string(), "' already exists (pass --overwrite to replace it)");
  if (final_.has_parent_path()) {
    fs::create_directories(final_.parent_path(), ec);
    if (ec) BW_THROW(IoError, "cannot create directory '", final_.parent_path().string(), "': ", ec.message());
  }
  tmp_ = final_;
  tmp_ += ".partial-" + std::to_string(::getpid());
  fs::remove_all(tmp_, ec);
  fs::create_directory(tmp_, ec);
  if (ec) BW_THROW(IoError, "cannot create directory '", tmp_.string(), "': ", ec.message());
}

StagedDirectory::~StagedDirectory() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

void StagedDirectory::commit() {
  std::error_code ec;
  fs::path old;
  if (fs::exists(final_, ec)) {
    BW_CHECK(overwrite_, IoError, "output '", final_.string(), "' appeared while writing; not replacing it");
    old = final_;
    old += ".old-" + std::to_string(::getpid());
    fs::rename(final_, old, ec);
    if (ec) BW_THROW(IoError, "cannot move old '", final_.string(), "' aside: ", ec.message());
  }
  fs::rename(tmp_, final_, ec);
  if (ec) BW_THROW(IoError, "cannot rename '", tmp_.string(), "' to '", final_.string(), "': ", ec.message());
  committed_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace bluewhale
