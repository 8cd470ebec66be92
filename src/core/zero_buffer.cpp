#include "core/zero_buffer.h"

#include <mutex>
#include <tuple>
#include <vector>

namespace bluewhale {
namespace {

struct RegionCache {
  std::mutex mu;
  std::vector<std::pair<void*, std::size_t>> free;  // (start, length), lengths multiples of kHugePage
  std::size_t bytes = 0;
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

void* alloc_zeroed_large(std::size_t bytes) {
  const std::size_t len = region_length(bytes);
  RegionCache& c = regions();
  void* p = nullptr;
  std::size_t have = 0;
  {
    std::lock_guard<std::mutex> lk(c.mu);
    std::size_t best = c.free.size();
    for (std::size_t k = 0; k < c.free.size(); ++k)
      if (c.free[k].second >= len && (best == c.free.size() || c.free[k].second < c.free[best].second)) best = k;
    if (best < c.free.size()) {
      std::tie(p, have) = c.free[best];
      c.free[best] = c.free.back();
      c.free.pop_back();
      c.bytes -= have;
    }
  }
  if (!p) return map_zeroed(len);
  if (have > len) ::munmap(static_cast<char*>(p) + len, have - len);  // lengths stay region_length(bytes)
  std::memset(p, 0, bytes);
  return p;
}

void free_zeroed_large(void* p, std::size_t bytes) {
  const std::size_t len = region_length(bytes);
  RegionCache& c = regions();
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
