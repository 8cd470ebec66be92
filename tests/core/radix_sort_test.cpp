// radix_sort: stable order by a bit range against std::stable_sort, for any thread count.
#include "core/radix_sort.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

namespace bluewhale {
namespace {

// Items sorted by bits [first, first + bits) with a stable sort: the definition.
std::vector<uint64_t> reference(std::vector<uint64_t> v, int first, int bits) {
  const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  std::stable_sort(v.begin(), v.end(), [&](uint64_t a, uint64_t b) { return ((a >> first) & mask) < ((b >> first) & mask); });
  return v;
}

// Every bit range shape the callers use and some they do not: whole words (categorify), 33 bits above a
// label bit (the AUC), ranges that end mid-digit, one bit; random words, words whose high bits are all
// equal (skipped passes), many equal keys (stability); sizes around the threaded cut-off; 1 and 3 threads.
TEST(RadixSort, StableByTheBitRangeForAnyThreadCount) {
  std::mt19937_64 rng(13);
  const std::vector<std::pair<int, int>> ranges = {{0, 64}, {1, 33}, {0, 1}, {5, 20}, {32, 32}, {60, 4}, {3, 58}};
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{1000}, int64_t{(1 << 16) + 7}}) {
    for (int shape = 0; shape < 3; ++shape) {
      std::vector<uint64_t> v(static_cast<std::size_t>(n));
      for (auto& x : v) {
        x = rng();
        if (shape == 1) x = (x & 0xFFFFFFFF) | (uint64_t{0xFFFFFFF0} << 32);  // small counts, high bits equal
        if (shape == 2) x = (x & 0x7) << 40 | (x & 0xFFFF);  // few keys: ties everywhere
      }
      for (const auto& [first, bits] : ranges) {
        const std::vector<uint64_t> want = reference(v, first, bits);
        for (int threads : {1, 3}) {
          std::vector<uint64_t> a = v, tmp(v.size());
          const uint64_t* got = radix_sort(a.data(), tmp.data(), n, first, bits, threads);
          EXPECT_TRUE(std::equal(want.begin(), want.end(), got))
              << "n " << n << ", shape " << shape << ", bits [" << first << ", " << first + bits << "), " << threads
              << " threads";
        }
      }
    }
  }
}

}  // namespace
}  // namespace bluewhale
