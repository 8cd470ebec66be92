#include "core/zero_buffer.h"

#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <tuple>
#include <vector>

#include "bluewhale/core/error.h"

namespace bluewhale {
namespace {

// Sizes from kHugeThreshold up to half a huge page are served as pieces of huge pages (one size class
// per power of two): each such buffer with a 2 MiB page of its own made the kernel clear 2 MiB on first
// touch for as little as 256 KiB used, and prep's count tables have dozens of them.
constexpr std::size_t kPieceClasses = 3;  // 256 KiB, 512 KiB, 1 MiB
static_assert(kHugeThreshold << (kPieceClasses - 1) == kHugePage / 2);

std::size_t piece_class(std::size_t bytes) {
  std::size_t k = 0;
  while ((kHugeThreshold << k) < bytes) ++k;
  return k;  // kPieceClasses and up: not a piece
}

constexpr std::size_t kPage = 4096;

struct RegionCache {
  std::mutex mu;
  // (start, length) per kind (index: Pages); kHuge lengths are multiples of kHugePage, kSmall of kPage.
  std::vector<std::pair<void*, std::size_t>> free[2];
  std::size_t bytes = 0;
  // Free pieces per class. Kept for the life of the process: they only ever number what was once in use
  // at the same time.
  std::vector<void*> pieces[kPieceClasses];
};
// Never destroyed: buffers may be freed by static destructors after this file's statics are gone.
RegionCache& regions() {
  static auto* c = new RegionCache;
  return *c;
}

std::size_t region_length(std::size_t bytes, Pages pages) {
  const std::size_t unit = pages == Pages::kHuge ? kHugePage : kPage;
  return (bytes + unit - 1) & ~(unit - 1);
}

void* map_zeroed(std::size_t len, Pages pages) {
  if (pages == Pages::kSmall) {
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return p;
  }
  // Over-map by one huge page so an aligned start can be cut out; the unaligned ends go back at once.
  void* raw = ::mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t start = (base + kHugePage - 1) & ~(kHugePage - 1);
  if (start > base) ::munmap(raw, start - base);
  const std::uintptr_t end = start + len, raw_end = base + len + kHugePage;
  if (raw_end > end) ::munmap(reinterpret_cast<void*>(end), raw_end - end);
#ifdef MADV_HUGEPAGE
  ::madvise(reinterpret_cast<void*>(start), len, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  return reinterpret_cast<void*>(start);
}

}  // namespace

namespace {

// A region of len bytes (a multiple of the kind's unit) from the cache, cut from the smallest cached
// region of that kind that is big enough (the rest stays cached: it is memory this process already
// touched), else nullptr.
void* take_cached(RegionCache& c, std::size_t len, Pages pages) {
  std::lock_guard<std::mutex> lk(c.mu);
  auto& free = c.free[static_cast<int>(pages)];
  std::size_t best = free.size();
  for (std::size_t k = 0; k < free.size(); ++k)
    if (free[k].second >= len && (best == free.size() || free[k].second < free[best].second)) best = k;
  if (best == free.size()) return nullptr;
  auto [p, have] = free[best];
  if (have > len) {
    free[best] = {static_cast<char*>(p) + len, have - len};
  } else {
    free[best] = free.back();
    free.pop_back();
  }
  c.bytes -= len;
  return p;
}

}  // namespace

namespace {

// Puts the pieces of class k of the huge page at p, but the first, in the free list.
void cut_pieces(RegionCache& c, void* p, std::size_t k) {
  const std::size_t piece = kHugeThreshold << k;
  std::lock_guard<std::mutex> lk(c.mu);
  for (std::size_t off = kHugePage - piece; off > 0; off -= piece) c.pieces[k].push_back(static_cast<char*>(p) + off);
}

// Memory of the huge kind for `bytes` that this process already touched: a free piece of its class (cut
// from a cached huge page if need be) or a cached region; nullptr when there is none. Maps nothing.
void* take_huge_cached(RegionCache& c, std::size_t bytes) {
  const std::size_t k = piece_class(bytes);
  if (k >= kPieceClasses) return take_cached(c, region_length(bytes, Pages::kHuge), Pages::kHuge);
  {
    std::lock_guard<std::mutex> lk(c.mu);
    if (!c.pieces[k].empty()) {
      void* p = c.pieces[k].back();
      c.pieces[k].pop_back();
      return p;
    }
    // A free piece of a bigger class, halved down to this one (the halves wait in their classes).
    for (std::size_t b = k + 1; b < kPieceClasses; ++b) {
      if (c.pieces[b].empty()) continue;
      char* p = static_cast<char*>(c.pieces[b].back());
      c.pieces[b].pop_back();
      for (std::size_t h = b; h-- > k;) c.pieces[h].push_back(p + (kHugeThreshold << h));
      return p;
    }
  }
  void* p = take_cached(c, kHugePage, Pages::kHuge);
  if (p) cut_pieces(c, p, k);
  return p;
}

}  // namespace

namespace {
// Set by advise_heap_huge_pages where fresh ordinary pages cost more than huge ones: in-order buffers are
// then of the huge kind too (their pieces and regions, see the header).
std::atomic<bool> g_in_order_on_huge_pages{false};
}  // namespace

void* alloc_zeroed_large(std::size_t bytes, Pages& pages) {
  if (pages == Pages::kSmall && g_in_order_on_huge_pages.load(std::memory_order_relaxed)) pages = Pages::kHuge;
  RegionCache& c = regions();
  if (pages == Pages::kSmall) {
    const std::size_t len = region_length(bytes, Pages::kSmall);
    void* p = take_cached(c, len, Pages::kSmall);
    if (!p) {
      // Touched huge-page memory serves in-order buffers as well, far cheaper than fresh pages (prep's
      // count tables, freed after the fit, become the dataset writer's buffers); it is freed as what it is.
      p = take_huge_cached(c, bytes);
      if (p) pages = Pages::kHuge;
    }
    if (!p) return map_zeroed(len, Pages::kSmall);
    std::memset(p, 0, bytes);
    return p;
  }
  void* p = take_huge_cached(c, bytes);
  if (p) {
    std::memset(p, 0, bytes);
    return p;
  }
  if (const std::size_t k = piece_class(bytes); k < kPieceClasses) {
    // A fresh huge page cut into pieces of this class: one is returned, the others wait in the free list.
    p = map_zeroed(kHugePage, Pages::kHuge);
    cut_pieces(c, p, k);
    return p;
  }
  return map_zeroed(region_length(bytes, Pages::kHuge), Pages::kHuge);
}

void free_zeroed_large(void* p, std::size_t bytes, Pages pages) {
  RegionCache& c = regions();
  if (const std::size_t k = piece_class(bytes); pages == Pages::kHuge && k < kPieceClasses) {
    std::lock_guard<std::mutex> lk(c.mu);
    c.pieces[k].push_back(p);
    return;
  }
  const std::size_t len = region_length(bytes, pages);
  {
    std::lock_guard<std::mutex> lk(c.mu);
    if (c.bytes + len <= kRegionCacheBytes) {
      c.free[static_cast<int>(pages)].emplace_back(p, len);
      c.bytes += len;
      return;
    }
  }
  ::munmap(p, len);
}

void release_zeroed_regions() {
  RegionCache& c = regions();
  std::lock_guard<std::mutex> lk(c.mu);
  for (auto& list : c.free) {
    for (const auto& [p, len] : list) ::munmap(p, len);
    list.clear();
  }
  c.bytes = 0;
}

std::size_t zeroed_regions_cached() {
  RegionCache& c = regions();
  std::lock_guard<std::mutex> lk(c.mu);
  return c.bytes;
}

HeapAdvice advise_heap_huge_pages(std::size_t bytes, double min_ns_per_page) {
  HeapAdvice out;
  constexpr std::size_t kProbePages = 16, kPage = 4096;
  void* probe = ::mmap(nullptr, kProbePages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (probe == MAP_FAILED) return out;
#ifdef MADV_NOHUGEPAGE
  ::madvise(probe, kProbePages * kPage, MADV_NOHUGEPAGE);
#endif
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < kProbePages; ++i) static_cast<volatile char*>(probe)[i * kPage] = 1;
  const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - t0;
  ::munmap(probe, kProbePages * kPage);
  out.ns_per_page = took.count() / kProbePages;
  if (out.ns_per_page < min_ns_per_page) return out;
#ifdef MADV_HUGEPAGE
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // blocks up to 32 MiB from the heap, not mappings of their own
  mallopt(M_TOP_PAD, static_cast<int>(std::min<std::size_t>(bytes, std::size_t{1} << 30)));
  // A block too big for what the heap has free: the heap grows by it plus the pad, and the block's
  // address says where the new range starts.
  void* grow = std::malloc(kHugePage);
  const auto at = reinterpret_cast<std::uintptr_t>(grow);
  std::free(grow);
  mallopt(M_TOP_PAD, 128 << 10);  // glibc's default again, for later growth
  const auto end = reinterpret_cast<std::uintptr_t>(::sbrk(0));
  // at past the break: the block was not the brk heap's (a sanitizer's allocator, or mmap).
  if (grow && at < end) out.advised = advise_huge_pages(reinterpret_cast<void*>(at), end - at);
  if (!out.advised) mallopt(M_ARENA_MAX, 0);  // the default number of arenas again
  g_in_order_on_huge_pages = out.advised;
#else
  (void)bytes;
#endif
  return out;
}

std::size_t zeroed_pieces_free(std::size_t bytes) {
  const std::size_t k = piece_class(bytes);
  BW_ASSERT(bytes >= kHugeThreshold && k < kPieceClasses, "zeroed_pieces_free: ", bytes, " bytes is not a piece size");
  RegionCache& c = regions();
  std::lock_guard<std::mutex> lk(c.mu);
  return c.pieces[k].size();
}

}  // namespace bluewhale
