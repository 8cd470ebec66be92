#include "core/zero_buffer.h"

#include <cstring>
#include <mutex>
#include <tuple>
#include <vector>

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

struct RegionCache {
  std::mutex mu;
  std::vector<std::pair<void*, std::size_t>> free;  // (start, length), lengths multiples of kHugePage
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

std::size_t region_length(std::size_t bytes) { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }

void* map_zeroed(std::size_t len) {
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

// A region of len bytes (a multiple of kHugePage) from the cache, cut from the smallest cached region
// that is big enough (the rest stays cached: it is memory this process already touched), else nullptr.
void* take_cached(RegionCache& c, std::size_t len) {
  std::lock_guard<std::mutex> lk(c.mu);
  std::size_t best = c.free.size();
  for (std::size_t k = 0; k < c.free.size(); ++k)
    if (c.free[k].second >= len && (best == c.free.size() || c.free[k].second < c.free[best].second)) best = k;
  if (best == c.free.size()) return nullptr;
  auto [p, have] = c.free[best];
  if (have > len) {
    c.free[best] = {static_cast<char*>(p) + len, have - len};
  } else {
    c.free[best] = c.free.back();
    c.free.pop_back();
  }
  c.bytes -= len;
  return p;
}

}  // namespace

void* alloc_zeroed_large(std::size_t bytes) {
  RegionCache& c = regions();
  if (const std::size_t k = piece_class(bytes); k < kPieceClasses) {
    const std::size_t piece = kHugeThreshold << k;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lk(c.mu);
      if (!c.pieces[k].empty()) {
        p = c.pieces[k].back();
        c.pieces[k].pop_back();
      }
    }
    bool fresh = false;
    if (!p) {
      // Cut a huge page into pieces of this class: one is returned, the others wait in the free list.
      p = take_cached(c, kHugePage);
      if (!p) {
        p = map_zeroed(kHugePage);
        fresh = true;
      }
      std::lock_guard<std::mutex> lk(c.mu);
      for (std::size_t off = kHugePage - piece; off > 0; off -= piece) c.pieces[k].push_back(static_cast<char*>(p) + off);
    }
    if (!fresh) std::memset(p, 0, bytes);
    return p;
  }
  const std::size_t len = region_length(bytes);
  void* p = take_cached(c, len);
  if (!p) return map_zeroed(len);
  std::memset(p, 0, bytes);
  return p;
}

void free_zeroed_large(void* p, std::size_t bytes) {
  RegionCache& c = regions();
  if (const std::size_t k = piece_class(bytes); k < kPieceClasses) {
    std::lock_guard<std::mutex> lk(c.mu);
    c.pieces[k].push_back(p);
    return;
  }
  const std::size_t len = region_length(bytes);
  {
    std::lock_guard<std::mutex> lk(c.mu);
    if (c.bytes + len <= kRegionCacheBytes) {
      c.free.emplace_back(p, len);
      c.bytes += len;
      return;
    }
  }
  ::munmap(p, len);
}

std::size_t zeroed_regions_cached() {
  RegionCache& c = regions();
  std::lock_guard<std::mutex> lk(c.mu);
  return c.bytes;
}

}  // namespace bluewhale
