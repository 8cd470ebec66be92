// ZeroBuffer and PageVector: zeroed memory from calloc or mappings of either page kind, deep copies,
// growth, reuse of freed regions by kind.
#include "core/zero_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace bluewhale {
namespace {

TEST(ZeroBuffer, SmallAndHugePageSizesStartZeroAndCopyDeep) {
  for (Pages pages : {Pages::kSmall, Pages::kHuge}) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, (kHugeThreshold / 8) - 1,
                          kHugeThreshold / 8, std::size_t{3} << 20}) {
      ZeroBuffer<int64_t> b(n, pages);
      ASSERT_EQ(b.size(), n);
      if (n >= kHugeThreshold / 8) {
        // Huge-page buffers start at their piece's or huge page's boundary, the others at a page's.
        const std::size_t align = pages == Pages::kSmall ? 4096 : n * 8 >= kHugePage ? kHugePage : kHugeThreshold;
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % align, 0u) << n;
      }
      bool zero = true;
      for (int64_t x : b) zero = zero && x == 0;
      EXPECT_TRUE(zero) << n;
      for (std::size_t j = 0; j < n; j += 97) b[j] = int64_t(j) + 1;
      ZeroBuffer<int64_t> c = b;
      for (std::size_t j = 0; j < n; j += 97) b[j] = 0;
      bool same = true;
      for (std::size_t j = 0; j < n; ++j) same = same && c[j] == (j % 97 == 0 ? int64_t(j) + 1 : 0);
      EXPECT_TRUE(same) << n;
      ZeroBuffer<int64_t> d = std::move(c);
      EXPECT_EQ(d.size(), n);
      EXPECT_EQ(c.size(), 0u);
      // Assignment swaps the kinds with the memory: each region goes back to its own kind's cache.
      ZeroBuffer<int64_t> e(n, pages == Pages::kSmall ? Pages::kHuge : Pages::kSmall);
      e = std::move(d);
      EXPECT_EQ(e.size(), n);
    }
  }
}

// PageVector against std::vector over random pushes, overwrites, growth and clears (capacity kept).
TEST(PageVector, MatchesStdVectorThroughGrowthAndReuse) {
  std::mt19937_64 rng(3);
  PageVector<int32_t> pv;
  std::vector<int32_t> ref;
  for (int round = 0; round < 4; ++round) {
    for (int step = 0; step < 2000; ++step) {
      if (rng() % 4 == 0) {
        std::size_t add = rng() % 5000;
        std::size_t base = pv.size();
        pv.resize_for_overwrite(base + add);
        ref.resize(base + add);
        for (std::size_t k = 0; k < add; ++k) pv[base + k] = ref[base + k] = static_cast<int32_t>(rng());
      } else {
        int32_t v = static_cast<int32_t>(rng());
        pv.push_back(v);
        ref.push_back(v);
      }
    }
    ASSERT_EQ(pv.size(), ref.size());
    EXPECT_GE(pv.capacity(), pv.size());
    EXPECT_TRUE(std::equal(ref.begin(), ref.end(), pv.data()));
    const std::size_t cap = pv.capacity();
    pv.clear();
    ref.clear();
    EXPECT_EQ(pv.size(), 0u);
    EXPECT_EQ(pv.capacity(), cap);
  }
  PageVector<int64_t> r;
  r.reserve(100);
  EXPECT_EQ(r.capacity(), 100u);
  EXPECT_EQ(r.size(), 0u);
  r.push_back(-7);
  r.reserve(10);  // never shrinks
  EXPECT_EQ(r.capacity(), 100u);
  EXPECT_EQ(r[0], -7);
}

TEST(ZeroBuffer, FreedLargeRegionsAreReusedZeroed) {
  // A freed large buffer is kept for a later large allocation, which must still read all zeros, over its
  // whole size, whatever the region held and whether it was cut from a bigger one.
  const std::size_t big = (std::size_t{6} << 20) + 123, small = (std::size_t{1} << 20) + 77;
  for (Pages pages : {Pages::kHuge, Pages::kSmall}) {
    const std::size_t mapped = pages == Pages::kHuge ? std::size_t{8} << 20 : (big + 4095) / 4096 * 4096;
    release_zeroed_regions();  // else the in-order buffer could be cut from cached huge-page memory
    {
      ZeroBuffer<char> b(big, pages);
      std::memset(b.data(), 0x5a, big);
      const std::size_t before = zeroed_regions_cached();
      b = ZeroBuffer<char>();
      EXPECT_EQ(before, 0u);
      EXPECT_EQ(zeroed_regions_cached(), mapped);  // kept whole
    }
    for (std::size_t n : {small, big}) {
      ZeroBuffer<char> c(n, pages);
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(c.data()) % (pages == Pages::kHuge ? kHugePage : 4096), 0u);
      std::size_t nonzero = 0;
      for (char x : c) nonzero += x != 0;
      EXPECT_EQ(nonzero, 0u) << n;
      std::memset(c.data(), 0x33, n);  // the whole size is writable
    }
  }
  // Below the threshold nothing is cached (calloc/free).
  const std::size_t before = zeroed_regions_cached();
  { ZeroBuffer<char> tiny(1000, Pages::kHuge); }
  EXPECT_EQ(zeroed_regions_cached(), before);
}

TEST(ZeroBuffer, InOrderBuffersTakeFreedHugePagesButTablesNeverTakeOrdinaryOnes) {
  // Memory a table had (huge pages) serves a later in-order buffer, which then reports the huge kind and
  // goes back to it when freed (pieces included); memory of ordinary pages never serves a table.
  release_zeroed_regions();
  ASSERT_EQ(zeroed_regions_cached(), 0u);
  const std::size_t n = std::size_t{3} << 20;
  Pages kind = Pages::kHuge;
  void* table = alloc_zeroed(n, kind);
  ASSERT_EQ(kind, Pages::kHuge);
  std::memset(table, 0x77, n);
  free_zeroed(table, n, kind);
  EXPECT_EQ(zeroed_regions_cached(), std::size_t{4} << 20);

  kind = Pages::kSmall;
  char* buf = static_cast<char*>(alloc_zeroed(n - 5000, kind));
  EXPECT_EQ(kind, Pages::kHuge);
  EXPECT_EQ(static_cast<void*>(buf), table);
  std::size_t nonzero = 0;
  for (std::size_t j = 0; j < n - 5000; ++j) nonzero += buf[j] != 0;
  EXPECT_EQ(nonzero, 0u);
  free_zeroed(buf, n - 5000, kind);
  kind = Pages::kHuge;
  void* again = alloc_zeroed(n, kind);  // the region is the huge kind's again
  EXPECT_EQ(again, table);
  free_zeroed(again, n, kind);

  // A piece-sized in-order buffer cut from a freed huge page goes back to the pieces of its class.
  release_zeroed_regions();
  kind = Pages::kHuge;
  void* page = alloc_zeroed(kHugePage, kind);
  free_zeroed(page, kHugePage, kind);
  const std::size_t piece = std::size_t{512} << 10;
  kind = Pages::kSmall;
  void* p = alloc_zeroed(piece, kind);
  EXPECT_EQ(kind, Pages::kHuge);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % piece, 0u);
  free_zeroed(p, piece, kind);
  kind = Pages::kHuge;
  void* q = alloc_zeroed(piece, kind);
  EXPECT_EQ(q, p);
  free_zeroed(q, piece, kind);

  // Ordinary pages freed, then a table: a fresh huge-page region, the ordinary one stays cached.
  release_zeroed_regions();
  kind = Pages::kSmall;
  void* ordinary = alloc_zeroed(n, kind);
  ASSERT_EQ(kind, Pages::kSmall);
  free_zeroed(ordinary, n, kind);
  EXPECT_EQ(zeroed_regions_cached(), n);
  kind = Pages::kHuge;
  void* t = alloc_zeroed(n, kind);
  EXPECT_NE(t, ordinary);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t) % kHugePage, 0u);
  EXPECT_EQ(zeroed_regions_cached(), n);
  free_zeroed(t, n, kind);
  release_zeroed_regions();
}

TEST(ZeroBuffer, SubHugePageBuffersArePiecesOfSharedHugePages) {
  // Sizes from kHugeThreshold to half a huge page are cut from huge pages by power-of-two classes: live
  // buffers never overlap, each starts aligned to its class, and a reused piece reads zero again.
  for (std::size_t piece : {kHugeThreshold, 2 * kHugeThreshold, kHugePage / 2}) {
    // The smallest size of the class (a size below kHugeThreshold is not a large buffer at all).
    const std::size_t n = piece == kHugeThreshold ? piece : piece / 2 + 1;
    std::vector<ZeroBuffer<uint8_t>> live;
    for (int k = 0; k < 12; ++k) {  // more than one huge page's worth
      live.emplace_back(n, Pages::kHuge);
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(live.back().data()) % piece, 0u) << piece;
      std::size_t nonzero = 0;
      for (uint8_t x : live.back()) nonzero += x != 0;
      ASSERT_EQ(nonzero, 0u) << piece << " #" << k;
      std::memset(live.back().data(), k + 1, n);
    }
    for (int k = 0; k < 12; ++k) {
      std::size_t wrong = 0;
      for (uint8_t x : live[k]) wrong += x != k + 1;
      EXPECT_EQ(wrong, 0u) << "piece " << k << " of size " << piece << " was overwritten";
    }
    live.clear();  // back to the free pieces, dirty
    ZeroBuffer<uint8_t> again(n, Pages::kHuge);
    std::size_t nonzero = 0;
    for (uint8_t x : again) nonzero += x != 0;
    EXPECT_EQ(nonzero, 0u) << piece;
  }
}

TEST(ZeroBuffer, FreeBiggerPiecesAreHalvedForSmallerBuffers) {
  // A freed 1 MiB piece serves four 256 KiB buffers (its halves and quarters), zeroed, before any new
  // huge page is cut: the dataset writer's slices come from what the fit's tables gave back.
  const std::size_t big = kHugePage / 2, small = kHugeThreshold;
  // Use up the free 256 KiB and 512 KiB pieces that earlier tests left, so that what follows must split.
  std::vector<ZeroBuffer<uint8_t>> drain;
  for (std::size_t size : {small, 2 * small})
    while (zeroed_pieces_free(size) > 0) drain.emplace_back(size, Pages::kHuge);
  uint8_t* base = nullptr;
  {
    ZeroBuffer<uint8_t> piece(big, Pages::kHuge);
    base = piece.data();
    std::memset(piece.data(), 0xAB, big);
  }
  std::vector<ZeroBuffer<uint8_t>> quarters;
  for (int k = 0; k < 4; ++k) {
    quarters.emplace_back(small, Pages::kHuge);
    if (k == 0) {
      EXPECT_EQ(zeroed_pieces_free(small), 1u);  // the first split: a quarter and a half wait
      EXPECT_EQ(zeroed_pieces_free(2 * small), 1u);
    }
    const uint8_t* p = quarters.back().data();
    EXPECT_GE(p, base) << k;
    EXPECT_LT(p, base + big) << k;
    std::size_t nonzero = 0;
    for (uint8_t x : quarters.back()) nonzero += x != 0;
    EXPECT_EQ(nonzero, 0u) << k;
  }
  std::vector<const uint8_t*> starts;
  for (const auto& q : quarters) starts.push_back(q.data());
  std::sort(starts.begin(), starts.end());
  for (int k = 0; k < 4; ++k) EXPECT_EQ(starts[k], base + k * small);
}

// The smaps entry of the mapping holding address p, or "" when none does.
std::string smaps_entry(const void* p) {
  std::ifstream in("/proc/self/smaps");
  std::string line, entry;
  bool inside = false;
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  while (std::getline(in, line)) {
    const std::size_t dash = line.find('-');
    const std::size_t space = line.find(' ');
    if (dash != std::string::npos && space != std::string::npos && dash < space && line.find(':') > space) {
      if (inside) return entry;
      const std::uintptr_t lo = std::stoull(line.substr(0, dash), nullptr, 16);
      const std::uintptr_t hi = std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16);
      inside = lo <= a && a < hi;
      entry.clear();
    }
    if (inside) entry += line + "\n";
  }
  return inside ? entry : std::string();
}

// advise_huge_pages advises only the whole huge pages inside a range and says whether the kernel took it:
// a range holding none is not advised; one holding two is, where huge pages exist.
TEST(ZeroBuffer, AdviseHugePagesCoversWholeHugePagesOnly) {
  void* m = ::mmap(nullptr, 4 * kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  char* base = static_cast<char*>(m);
  char* aligned = reinterpret_cast<char*>((reinterpret_cast<std::uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1));
  EXPECT_FALSE(advise_huge_pages(aligned + 4096, kHugePage - 8192));  // inside one huge page: none whole
  EXPECT_FALSE(advise_huge_pages(aligned, 0));
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  const std::string mode((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (!mode.empty()) {
    // [aligned + 100, + 2 huge pages) holds one whole huge page: the second.
    EXPECT_TRUE(advise_huge_pages(aligned + 100, 2 * kHugePage));
    EXPECT_NE(smaps_entry(aligned + kHugePage).find(" hg"), std::string::npos);  // VmFlags: advised
    EXPECT_EQ(smaps_entry(aligned).find(" hg"), std::string::npos);              // the first is not
  }
  ::munmap(m, 4 * kHugePage);
}

// The heap advice measures a fresh page's first touch, leaves the heap alone under its threshold, and over
// it makes blocks that any thread allocates afterwards come from a mapping eligible for huge pages, and
// large in-order buffers of the huge kind.
// Changes this process's malloc for good (one arena): the last test of the file.
TEST(HeapAdvice, MeasuresFirstTouchAndPutsLaterBlocksOnHugePageEligibleMemory) {
  const HeapAdvice no = advise_heap_huge_pages(std::size_t{16} << 20, 1e15);
  EXPECT_FALSE(no.advised);
  EXPECT_GT(no.ns_per_page, 0.0);
  Pages before = Pages::kSmall;
  void* in_order = alloc_zeroed(std::size_t{1} << 20, before);
  EXPECT_EQ(before, Pages::kSmall);
  free_zeroed(in_order, std::size_t{1} << 20, before);
  const HeapAdvice yes = advise_heap_huge_pages(std::size_t{16} << 20, 0);
  EXPECT_GT(yes.ns_per_page, 0.0);
  // Advised: large in-order buffers are of the huge kind from then on (a 1 MiB one is half a huge page).
  Pages after = Pages::kSmall;
  in_order = alloc_zeroed(std::size_t{1} << 20, after);
  EXPECT_EQ(after, yes.advised ? Pages::kHuge : Pages::kSmall);
  if (yes.advised) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(in_order) % (std::size_t{1} << 20), 0u);
  }
  free_zeroed(in_order, std::size_t{1} << 20, after);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  EXPECT_FALSE(yes.advised);  // the sanitizer's allocator is not the brk heap: left alone
#else
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode((std::istreambuf_iterator<char>(thp)), std::istreambuf_iterator<char>());
  if (mode.empty() || mode.find("[never]") != std::string::npos) GTEST_SKIP() << "transparent huge pages off";
  ASSERT_TRUE(yes.advised);
  std::vector<char*> blocks;
  std::thread t([&] {
    for (int i = 0; i < 64; ++i) {
      blocks.push_back(static_cast<char*>(std::malloc(40 << 10)));
      std::memset(blocks.back(), 1, 40 << 10);
    }
  });
  t.join();
  const std::string e = smaps_entry(blocks.back());
  ASSERT_FALSE(e.empty());
  const std::size_t at = e.find("THPeligible:");
  ASSERT_NE(at, std::string::npos) << e;
  std::istringstream eligible(e.substr(at + 12));
  int flag = -1;
  eligible >> flag;
  EXPECT_EQ(flag, 1) << e;
  for (char* b : blocks) std::free(b);
#endif
}

}  // namespace
}  // namespace bluewhale
