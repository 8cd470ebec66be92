// ZeroBuffer and PageVector: zeroed memory from calloc or huge-page mappings, deep copies, growth.
#include "core/zero_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace bluewhale {
namespace {

TEST(ZeroBuffer, SmallAndHugePageSizesStartZeroAndCopyDeep) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, (kHugeThreshold / 8) - 1,
                        kHugeThreshold / 8, std::size_t{3} << 20}) {
    ZeroBuffer<int64_t> b(n);
    ASSERT_EQ(b.size(), n);
    if (n >= kHugeThreshold / 8) {
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % kHugePage, 0u) << n;
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
  // A freed large buffer is kept for the next large allocation, which must still read all zeros, over
  // its whole size, whatever the region held and whether it was cut from a bigger one.
  const std::size_t big = (std::size_t{6} << 20) + 123, small = (std::size_t{1} << 20) + 77;
  {
    ZeroBuffer<char> b(big);
    std::memset(b.data(), 0x5a, big);
    const std::size_t before = zeroed_regions_cached();
    b = ZeroBuffer<char>();
    if (before + (std::size_t{8} << 20) <= kRegionCacheBytes)  // earlier tests may have filled the cache
      EXPECT_EQ(zeroed_regions_cached(), before + (std::size_t{8} << 20));  // kept whole: 4 huge pages
    else
      EXPECT_EQ(zeroed_regions_cached(), before);  // over the bound: unmapped
  }
  for (std::size_t n : {small, big}) {
    ZeroBuffer<char> c(n);
    ASSERT_EQ(reinterpret_cast<std::uintptr_t>(c.data()) % kHugePage, 0u);
    std::size_t nonzero = 0;
    for (char x : c) nonzero += x != 0;
    EXPECT_EQ(nonzero, 0u) << n;
    std::memset(c.data(), 0x33, n);  // the whole size is writable
  }
  // Below the threshold nothing is cached (calloc/free).
  const std::size_t before = zeroed_regions_cached();
  { ZeroBuffer<char> tiny(1000); }
  EXPECT_EQ(zeroed_regions_cached(), before);
}

TEST(PageVector, ExternalStorageIsUsedInPlace) {
  ZeroBuffer<int32_t> arena(4096);
  PageVector<int32_t> v;
  v.push_back(7);  // owned storage first: use_external empties the vector
  v.use_external(arena.data() + 1024, 2048);
  EXPECT_EQ(v.size(), 0u);
  EXPECT_EQ(v.capacity(), 2048u);
  EXPECT_EQ(v.data(), arena.data() + 1024);
  v.resize_for_overwrite(2048);
  for (int32_t j = 0; j < 2048; ++j) v[j] = j;
  EXPECT_EQ(arena[1024 + 2047], 2047);
  EXPECT_EQ(arena[1023], 0);
  EXPECT_EQ(arena[1024 + 2048], 0);
  v.clear();
  v.push_back(-5);
  EXPECT_EQ(arena[1024], -5);
}

}  // namespace
}  // namespace bluewhale
