// Zero-initialised arrays of trivially copyable records for big, short-lived buffers (prep's hash tables
// and parsed-chunk cache, the dataset writer's shard buffers).
//
// Why not std::vector: a vector value-initialises its elements by writing every byte, and on the
// virtual machines prep runs on each first touch of a page costs far more than the write (the hypervisor
// backs the page then). Large buffers here come straight from mmap, already zero, with no fill pass.
// Small buffers use calloc.
//
// Large buffers come in two kinds (Pages), by how they are used:
//   kHuge   hash tables probed at random: aligned to 2 MiB and advised as transparent huge pages, so that
//           probes do not miss the TLB (a 12 MiB table is 6 pages instead of 3,000). Buffers of 256 KiB to
//           1 MiB share huge pages (power-of-two pieces of one, aligned to their size), since the kernel
//           clears a whole 2 MiB page on its first touch.
//   kSmall  buffers written and read in order (text, parsed columns, output blocks): ordinary pages.
//           On those virtual machines a fresh huge page costs ~2.3 ms per MiB on first touch (the
//           hypervisor backs all of it at once from memory it had taken back) and fresh ordinary pages
//           ~0.7 ms per MiB, while in-order access gains nothing from fewer TLB entries. (Hosts differ:
//           on the 2026-12-06 one ordinary pages cost 11-14 us each, 2.8-3.6 ms per MiB, and huge ones
//           0.06-1.7 ms per MiB; see advise_heap_huge_pages. Not re-measured for these buffers.)
// Without huge page support the advice is ignored and the buffer still works with ordinary pages.
//
// Freed large buffers are not unmapped at once but kept (up to kRegionCacheBytes per process; pieces
// always) for later large allocations, which re-zero what they take with memset: memory a process touched
// before costs ~10 GB/s to clear, fresh pages 0.4-1.5 GB/s. A table takes only huge-page memory; an
// in-order buffer takes ordinary pages first, else freed huge-page memory (prep's count tables, freed
// after the fit, become its dictionaries and the writer's buffers). The bound keeps peak memory close to
// what it was without reuse.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "bluewhale/core/error.h"

namespace bluewhale {

// Raw zeroed memory: `bytes` of zeros at a 64-byte aligned address, released by free_zeroed with the
// same size and the kind alloc_zeroed left in `pages`. Sizes of kHugeThreshold and above are mapped
// (kHuge: aligned to and advised for huge pages; kSmall: page aligned).
enum class Pages { kSmall, kHuge };
inline constexpr std::size_t kHugePage = std::size_t{2} << 20;
inline constexpr std::size_t kHugeThreshold = std::size_t{256} << 10;
inline constexpr std::size_t kRegionCacheBytes = std::size_t{64} << 20;

// Large sizes: a region of the same kind freed earlier by free_zeroed (re-zeroed with memset), else a
// fresh mapping. A kSmall request may get freed memory of the huge kind instead (touched memory costs
// far less than fresh pages): `pages` then says kHuge, and the buffer must be freed as such.
void* alloc_zeroed_large(std::size_t bytes, Pages& pages);
void free_zeroed_large(void* p, std::size_t bytes, Pages pages);

inline void* alloc_zeroed(std::size_t bytes, Pages& pages) {
  if (bytes == 0) return nullptr;
  if (bytes < kHugeThreshold) {
    void* p = std::calloc(1, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  return alloc_zeroed_large(bytes, pages);
}

inline void free_zeroed(void* p, std::size_t bytes, Pages pages) {
  if (!p) return;
  if (bytes < kHugeThreshold) {
    std::free(p);
    return;
  }
  free_zeroed_large(p, bytes, pages);
}

// Bytes of freed large regions kept for reuse (process-wide, both kinds), for tests.
std::size_t zeroed_regions_cached();
// Free pieces of the class that serves `bytes` (kHugeThreshold to half a huge page), for tests.
std::size_t zeroed_pieces_free(std::size_t bytes);
// Unmaps the freed regions kept for reuse (not the free pieces of huge pages): tests, and prep once nothing
// more is allocated.
void release_zeroed_regions();

// Advises the 2 MiB-aligned huge pages inside [p, p + bytes) for transparent huge pages, for memory
// allocated elsewhere (the C heap, see advise_heap_huge_pages) before it is first written. Advice only:
// no effect on contents. True when the kernel took the advice for at least one huge page.
inline bool advise_huge_pages(void* p, std::size_t bytes) {
#ifdef MADV_HUGEPAGE
  const auto b = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t start = (b + kHugePage - 1) & ~(kHugePage - 1), end = (b + bytes) & ~(kHugePage - 1);
  return end > start && ::madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE) == 0;
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

// Puts the C heap (glibc's malloc) on transparent huge pages when fresh ordinary pages are expensive on
// this machine, for a batch process that allocates its many medium buffers (parsed columns of a few tens
// of KiB, vectors) once and touches all of them. Measured first: the first touch of 16 fresh 4 KiB pages,
// in ns a page. At min_ns_per_page or more, every thread is made to allocate from the main heap
// (M_ARENA_MAX 1: the other arenas are mappings this cannot advise), blocks up to 32 MiB come from the heap
// (M_MMAP_THRESHOLD), the heap is grown by `bytes` at once (M_TOP_PAD, through a 2 MiB block: when the heap
// has that much free already it does not grow and only what it has is advised), and the new range is
// advised for huge pages; from then on, large in-order buffers (Pages::kSmall) are mapped as the huge kind
// too. On the 2-vCPU PVM guest prep was tuned on (2026-12-06) a fresh 4 KiB page cost 11-14 us and a
// 2 MiB huge page 0.12-3.4 ms (0.24-6.6 us per 4 KiB, less when the guest reuses huge pages it freed): a
// 1M-row Criteo prep made ~4,500 page faults, ~1,500 with the heap advised, and took 18-47 ms less CPU,
// 7-21 ms less wall (30-40 alternating pairs, two spells). Earlier hosts charged 0.7 ms per MiB for
// ordinary pages and 2.3 for huge ones (~2.7 us per 4 KiB page: under the default threshold, so left
// alone). Call before other threads start. Does nothing (advised false) where the heap is not glibc's brk
// heap (sanitizers) or the kernel refuses the advice; memory use is what was touched either way.
struct HeapAdvice {
  bool advised = false;
  double ns_per_page = 0;  // the measured first touch of an ordinary page
};
HeapAdvice advise_heap_huge_pages(std::size_t bytes, double min_ns_per_page = 5000);

// n records of T, all bytes zero at construction. Copyable (deep copy) and movable.
template <class T>
class ZeroBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "ZeroBuffer holds plain records");

 public:
  ZeroBuffer() = default;
  explicit ZeroBuffer(std::size_t n, Pages pages = Pages::kSmall)
      : n_(n), pages_(pages) {
    p_ = static_cast<T*>(alloc_zeroed(n * sizeof(T), pages_));
  }
  ZeroBuffer(const ZeroBuffer& o) : ZeroBuffer(o.n_, o.pages_) {
    if (n_) std::memcpy(p_, o.p_, n_ * sizeof(T));
  }
  ZeroBuffer(ZeroBuffer&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)), pages_(o.pages_) {}
  ZeroBuffer& operator=(ZeroBuffer o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    std::swap(pages_, o.pages_);
    return *this;
  }
  ~ZeroBuffer() { free_zeroed(p_, n_ * sizeof(T), pages_); }

  T* data() { return p_; }
  const T* data() const { return p_; }
  std::size_t size() const { return n_; }
  T& operator[](std::size_t i) { return p_[i]; }
  const T& operator[](std::size_t i) const { return p_[i]; }
  T* begin() { return p_; }
  T* end() { return p_ + n_; }
  const T* begin() const { return p_; }
  const T* end() const { return p_ + n_; }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
  Pages pages_ = Pages::kSmall;
};

// A growable array over ZeroBuffer for buffers that are filled, used and cleared many times (capacity is
// kept). Unlike std::vector, resize_for_overwrite() does not initialise new elements: fresh memory reads
// zero, reused memory keeps what it held, and the caller writes every element it grew by.
template <class T>
class PageVector {
 public:
  std::size_t size() const { return n_; }
  std::size_t capacity() const { return mem_.size(); }
  T* data() { return mem_.data(); }
  const T* data() const { return mem_.data(); }
  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }
  T* begin() { return data(); }
  T* end() { return data() + n_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + n_; }
  void clear() { n_ = 0; }
  void reserve(std::size_t cap) {
    if (cap <= mem_.size()) return;
    ZeroBuffer<T> bigger(cap);
    if (n_) std::memcpy(bigger.data(), mem_.data(), n_ * sizeof(T));
    mem_ = std::move(bigger);
  }
  void resize_for_overwrite(std::size_t n) {
    if (n > capacity()) reserve(std::max(n, 2 * capacity()));
    n_ = n;
  }
  void push_back(const T& v) {
    resize_for_overwrite(n_ + 1);
    data()[n_ - 1] = v;
  }

 private:
  ZeroBuffer<T> mem_;
  std::size_t n_ = 0;
};

}  // namespace bluewhale
