// Private to the dataset writer: files written front to back or block by block, through the page cache
// or around it (O_DIRECT), whichever costs less on the machine at hand (WriteModeChoice).
//
// Why both: a buffered write() copies every byte into page-cache pages the kernel must first allocate and
// zero. On some of the virtual machines prep runs on fresh memory costs ~2 ms per MiB (the host backs each
// page on first touch): writing the 160 MB of a 1M-row Criteo dataset took 0.2-0.4 s of CPU, a sixth of
// the run, while O_DIRECT from reused, aligned buffers costs almost no CPU. On others the copy costs
// ~0.15 ms per MiB, and O_DIRECT is the slower path: each write waits for the device, the shard's
// periodic fdatasync stalls those writes (160 MB took 225 ms with a sync every 10 MB; buffered, 25 ms of
// copying, the writeback then running in the background), and the write pass waited ~110 ms of its ~255.
// The shards are synced before commit either way. O_DIRECT's other price: the file is not left in the
// page cache, so the first later read comes from disk.
//
// Where O_DIRECT is refused (tmpfs, some network file systems, unaligned devices) the writer falls back to
// ordinary writes, silently: the bytes on disk are the same either way.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "core/zero_buffer.h"

namespace bluewhale {

// Creates (or truncates) path for writing, with O_DIRECT when try_direct and the file system takes it
// (`direct` says which). Throws IoError.
inline int create_for_writing(const fs::path& path, bool try_direct, bool& direct) {
  int fd = -1;
  direct = false;
#ifdef O_DIRECT
  if (try_direct) {
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
    direct = fd >= 0;
  }
#else
  (void)try_direct;
#endif
  if (fd < 0) fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  BW_CHECK(fd >= 0, IoError, "cannot create '", path.string(), "': ", std::strerror(errno));
  return fd;
}

// Whether a writer's files go through the page cache or around it, decided once from what its first
// buffered writes cost: the wall time of the write calls per MiB, the median over the first kSamples
// blocks of at least kMinBlock bytes (a median, so that a write preempted by the prep workers does not
// decide). Up to the limit the page cache's copy is cheaper than waiting for the device; above it fresh
// pages are dear on this machine and O_DIRECT is used from then on. Writes start buffered. One thread.
class WriteModeChoice {
 public:
  // Measured: ~150 us per MiB where pages come cheap, 1.2-2.5 ms where the host backs them on first touch.
  static constexpr double kLimitNsPerMiB = 500'000;
  static constexpr std::size_t kMinBlock = std::size_t{64} << 10;
  static constexpr std::size_t kSamples = 16;

  // limit_ns_per_mib: 0 chooses O_DIRECT after the first measurements, infinity never does.
  explicit WriteModeChoice(double limit_ns_per_mib = kLimitNsPerMiB) : limit_(limit_ns_per_mib) {}

  bool direct() const { return direct_; }
  bool decided() const { return decided_; }
  // The median cost that decided, ns per MiB; NaN before the decision.
  double measured_ns_per_mib() const { return measured_; }

  // Records a buffered write of `bytes` that took `ns`; smaller blocks than kMinBlock are not counted.
  void note_buffered(std::size_t bytes, int64_t ns) {
    if (decided_ || bytes < kMinBlock) return;
    samples_.push_back(static_cast<double>(ns) * static_cast<double>(1 << 20) / static_cast<double>(bytes));
    if (samples_.size() < kSamples) return;
    auto mid = samples_.begin() + static_cast<std::ptrdiff_t>(samples_.size() / 2);
    std::nth_element(samples_.begin(), mid, samples_.end());
    measured_ = *mid;
    direct_ = measured_ > limit_;
    decided_ = true;
    samples_.clear();
  }

  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

 private:
  double limit_;
  bool direct_ = false, decided_ = false;
  double measured_ = std::nan("");
  std::vector<double> samples_;
};

// fdatasync + close of finished files on threads of their own (a few at a time): a sync is tens of
// milliseconds of waiting on some disks, which the writer spends on the next file instead. wait() must
// run before anything relies on the files being on disk (a dataset's commit).
class SyncQueue {
 public:
  SyncQueue() = default;
  SyncQueue(const SyncQueue&) = delete;
  SyncQueue& operator=(const SyncQueue&) = delete;
  ~SyncQueue() {
    for (auto& s : pending_) s->thread.join();
  }

  // Takes ownership of fd.
  void sync_and_close(int fd, const fs::path& path) {
    while (pending_.size() >= kInFlight) reap_oldest();
    start(fd, path);
  }

  // sync_and_close() when fewer than kInFlight syncs are still running, without waiting; false (fd left
  // to the caller) otherwise. For flushes that only shorten a later one.
  bool try_sync_and_close(int fd, const fs::path& path) {
    while (!pending_.empty() && pending_.front()->done.load()) reap_oldest();
    if (pending_.size() >= kInFlight) return false;
    start(fd, path);
    return true;
  }

  // Waits for every sync so far; throws IoError naming the first file that failed.
  void wait() {
    while (!pending_.empty()) reap_oldest();
    const int e = error_;
    error_ = 0;
    BW_CHECK(e == 0, IoError, "cannot flush '", error_path_.string(), "': ", std::strerror(e));
  }

 private:
  static constexpr std::size_t kInFlight = 4;
  struct Pending {
    int fd = -1;
    fs::path path;
    int error = 0;
    std::atomic<bool> done{false};
    std::thread thread;
  };
  void start(int fd, const fs::path& path) {
    auto s = std::make_unique<Pending>();
    s->fd = fd;
    s->path = path;
    Pending* raw = s.get();
    s->thread = std::thread([raw] {
      if (::fdatasync(raw->fd) != 0) raw->error = errno;
      if (::close(raw->fd) != 0 && raw->error == 0) raw->error = errno;
      raw->done.store(true);
    });
    pending_.push_back(std::move(s));
  }
  void reap_oldest() {
    std::unique_ptr<Pending> s = std::move(pending_.front());
    pending_.erase(pending_.begin());
    s->thread.join();
    if (s->error != 0 && error_ == 0) {
      error_ = s->error;
      error_path_ = s->path;
    }
  }
  std::vector<std::unique_ptr<Pending>> pending_;
  int error_ = 0;
  fs::path error_path_;
};

class SequentialFileWriter {
 public:
  // Alignment of O_DIRECT offsets, lengths and memory: 4 KiB covers every common logical block size.
  static constexpr std::size_t kDirectAlign = 4096;
  static constexpr std::size_t kStagingBytes = std::size_t{4} << 20;

  // `try_direct` false: always ordinary buffered writes (the reference path, and for tests).
  explicit SequentialFileWriter(bool try_direct = true) : try_direct_(try_direct) {}
  SequentialFileWriter(const SequentialFileWriter&) = delete;
  SequentialFileWriter& operator=(const SequentialFileWriter&) = delete;
  ~SequentialFileWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Creates (or truncates) `path` for writing, around the page cache when `direct` (and the writer and
  // the file system allow it). The staging buffer is kept across files.
  void open(const fs::path& path, bool direct = true) {
    BW_ASSERT(fd_ < 0, "SequentialFileWriter::open while a file is open");
    path_ = path;
    written_ = 0;
    fill_ = 0;
    direct_ = false;
    fd_ = create_for_writing(path, try_direct_ && direct, direct_);
    if (direct_ && staging_.size() == 0) staging_ = ZeroBuffer<char>(kStagingBytes);
  }

  // Appends n bytes.
  void put(const void* p, std::size_t n) {
    written_ += n;
    if (!direct_) {
      write_all(p, n);
      return;
    }
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      const std::size_t take = std::min(n, staging_.size() - fill_);
      std::memcpy(staging_.data() + fill_, c, take);
      fill_ += take;
      c += take;
      n -= take;
      if (fill_ == staging_.size()) flush_staging(fill_);
    }
  }
  // Appends n zero bytes.
  void put_zeros(std::size_t n) {
    static const char zeros[256] = {};
    while (n > 0) {
      const std::size_t take = std::min(n, sizeof zeros);
      put(zeros, take);
      n -= take;
    }
  }

  // Bytes appended so far.
  uint64_t written() const { return written_; }
  // Whether the open file is written around the page cache (for tests).
  bool direct() const { return direct_; }

  // Writes what is staged, syncs the data to disk and closes the file.
  void close() {
    finish_writes();
    // Syncing each file now means a crash after the dataset's commit cannot leave its meta.json
    // pointing at data that never reached the disk.
    if (::fdatasync(fd_) != 0) fail("cannot flush");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) BW_THROW(IoError, "cannot flush '", path_.string(), "': ", std::strerror(errno));
  }

  // close(), except that the sync (tens of milliseconds per file on some disks, mostly waiting) is left
  // to `syncs`, which runs it on a thread of its own while the caller goes on with the next file.
  void close_syncing_later(SyncQueue& syncs) {
    finish_writes();
    syncs.sync_and_close(fd_, path_);
    fd_ = -1;
  }

 private:
  // Writes what is staged (the file stays open).
  void finish_writes() {
    if (direct_ && fill_ > 0) {
      // The last block is written whole (O_DIRECT lengths are block multiples) and the zeros past the
      // real end cut off again.
      const std::size_t padded = (fill_ + kDirectAlign - 1) & ~(kDirectAlign - 1);
      std::memset(staging_.data() + fill_, 0, padded - fill_);
      flush_staging(padded);
      if (::ftruncate(fd_, static_cast<off_t>(written_)) != 0) fail("cannot set the size of");
    }
  }

  [[noreturn]] void fail(const char* what) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    BW_THROW(IoError, what, " '", path_.string(), "': ", std::strerror(e));
  }

  void write_all(const void* p, std::size_t n) {
    if (!write_fully(fd_, p, n)) fail("cannot write");
  }

  // Writes the first n bytes of the staging buffer (n a multiple of kDirectAlign, or the whole buffer).
  void flush_staging(std::size_t n) {
    const char* c = staging_.data();
    std::size_t left = n;
    while (left > 0) {
      const ssize_t w = ::write(fd_, c, left);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EINVAL) {
        // The file system accepted O_DIRECT at open but not these writes: continue buffered.
        fall_back_to_buffered(c, left);
        return;
      }
      if (w < 0) fail("cannot write");
      // A short direct write leaves an unaligned remainder: finish it buffered.
      c += w;
      left -= static_cast<std::size_t>(w);
      if (left > 0 && (static_cast<std::size_t>(w) % kDirectAlign) != 0) {
        fall_back_to_buffered(c, left);
        return;
      }
    }
    fill_ = 0;
  }

  void fall_back_to_buffered(const char* c, std::size_t left) {
    const int flags = ::fcntl(fd_, F_GETFL);
#ifdef O_DIRECT
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) fail("cannot write");
#else
    (void)flags;
#endif
    direct_ = false;
    // Only the real bytes: the zeros that pad a last block must not reach the file.
    const std::size_t at = static_cast<std::size_t>(c - staging_.data());
    write_all(c, std::min(left, fill_ > at ? fill_ - at : 0));
    fill_ = 0;
  }

  const bool try_direct_;
  fs::path path_;
  int fd_ = -1;
  bool direct_ = false;
  ZeroBuffer<char> staging_;
  std::size_t fill_ = 0;  // staged bytes not yet written
  uint64_t written_ = 0;  // bytes appended (the file's final size)
};

// A file written at given offsets, in whole kDirectAlign blocks from aligned memory, bypassing the page
// cache where it can (same reasons and fallback as SequentialFileWriter). For shards whose layout is
// known before their data: each block is streamed to its place as it fills.
class PositionalFileWriter {
 public:
  static constexpr std::size_t kDirectAlign = SequentialFileWriter::kDirectAlign;

  explicit PositionalFileWriter(bool try_direct = true) : try_direct_(try_direct) {}
  PositionalFileWriter(const PositionalFileWriter&) = delete;
  PositionalFileWriter& operator=(const PositionalFileWriter&) = delete;
  ~PositionalFileWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

  void open(const fs::path& path) {
    BW_ASSERT(fd_ < 0, "PositionalFileWriter::open while a file is open");
    path_ = path;
    direct_ = false;
    fd_ = create_for_writing(path, try_direct_, direct_);
    direct_ok_ = direct_;
  }

  // Writes n bytes at `offset`; p, n and offset multiples of kDirectAlign (p in memory).
  void write_at(const char* p, std::size_t n, uint64_t offset) {
    BW_ASSERT(n % kDirectAlign == 0 && offset % kDirectAlign == 0 &&
              reinterpret_cast<std::uintptr_t>(p) % kDirectAlign == 0, "PositionalFileWriter: unaligned write");
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
      if (w < 0 && errno == EINTR) continue;
#ifdef O_DIRECT
      if (w < 0 && errno == EINVAL && direct_) {
        set_direct(false);
        direct_ok_ = false;  // the file system took O_DIRECT at open but not these writes
        continue;
      }
#endif
      if (w <= 0) fail("cannot write");
      p += w;
      n -= static_cast<std::size_t>(w);
      offset += static_cast<uint64_t>(w);
    }
  }

  bool direct() const { return direct_; }

  // Later writes go around the page cache (O_DIRECT) or through it; O_DIRECT only where the file system
  // took it when the file was opened (and the writer may use it), else the call changes nothing.
  void set_direct(bool on) {
#ifdef O_DIRECT
    on = on && direct_ok_;
    if (on == direct_) return;
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, on ? flags | O_DIRECT : flags & ~O_DIRECT) != 0) fail("cannot write");
    direct_ = on;
#else
    (void)on;
#endif
  }

  // Starts a flush of what was written so far, the file staying open, unless `syncs` is busy (then
  // nothing): the flush at close then has less to wait for. Never waits.
  void sync_later(SyncQueue& syncs) {
    const int fd = ::dup(fd_);
    if (fd < 0) fail("cannot duplicate the descriptor of");
    if (!syncs.try_sync_and_close(fd, path_)) ::close(fd);
  }

  // Cuts the file to `size` bytes (the zeros written past its end go) and hands it to `syncs`.
  void close_syncing_later(uint64_t size, SyncQueue& syncs) {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) fail("cannot set the size of");
    syncs.sync_and_close(fd_, path_);
    fd_ = -1;
  }

 private:
  [[noreturn]] void fail(const char* what) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    BW_THROW(IoError, what, " '", path_.string(), "': ", std::strerror(e));
  }
  const bool try_direct_;
  fs::path path_;
  int fd_ = -1;
  bool direct_ = false;
  bool direct_ok_ = false;  // O_DIRECT taken by the file system for this file
};

}  // namespace bluewhale
