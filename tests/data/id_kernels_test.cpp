#include "data/id_kernels.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/data/dataset.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

std::vector<SimdLevel> levels() { return testing::supported_simd_levels(); }

// The definition, one value at a time with branches.
IdStretch reference(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst) {
  IdStretch r;
  for (int64_t k = 0; k < n; ++k) {
    const bool present = !valid || valid[k] != 0;
    const int64_t v = present ? src[k] : 0;
    dst[k] = static_cast<int32_t>(v);
    if (static_cast<uint64_t>(v) >= card) r.out_of_range = true;
    if (!present) continue;
    r.sum = static_cast<int64_t>(static_cast<uint64_t>(r.sum) + static_cast<uint64_t>(v));  // modulo 2^64
    ++r.present;
    if (v < r.lo) r.lo = v;
    if (v > r.hi) r.hi = v;
    if (v >= 0 && v < 64) r.low_marks |= uint64_t{1} << v;
  }
  return r;
}

// Every level against the reference over src[offset, offset + n), with guards around the output.
void check(const std::vector<int64_t>& src, const std::vector<uint8_t>* valid, std::size_t offset, int64_t n,
           uint64_t card, const std::string& what) {
  std::vector<int32_t> want(static_cast<std::size_t>(n) + 2, -7);
  const uint8_t* vp = valid ? valid->data() + offset : nullptr;
  const IdStretch w = reference(src.data() + offset, vp, n, card, want.data() + 1);
  for (SimdLevel level : levels()) {
    std::vector<int32_t> got(static_cast<std::size_t>(n) + 2, -7);
    const IdStretch g = store_ids_for(level)(src.data() + offset, vp, n, card, got.data() + 1);
    const std::string at = what + " at " + std::string(simd_level_name(level)) + ", n " + std::to_string(n) +
                           ", offset " + std::to_string(offset);
    EXPECT_EQ(got, want) << at;
    EXPECT_EQ(g.sum, w.sum) << at;
    EXPECT_EQ(g.present, w.present) << at;
    EXPECT_EQ(g.lo, w.lo) << at;
    EXPECT_EQ(g.hi, w.hi) << at;
    EXPECT_EQ(g.out_of_range, w.out_of_range) << at;
    EXPECT_EQ(g.low_marks, w.low_marks) << at;
  }
}

TEST(IdKernels, EveryLevelMatchesTheDefinition) {
  std::mt19937_64 rng(5);
  const uint64_t card = 1000;
  std::vector<int64_t> in_range(64), mixed(64);
  std::vector<uint8_t> some(64), none(64, 0), all(64, 1);
  for (std::size_t k = 0; k < 64; ++k) {
    in_range[k] = static_cast<int64_t>(rng() % card);
    some[k] = static_cast<uint8_t>(rng() % 3 == 0 ? 0 : 1 + rng() % 255);  // any nonzero byte is present
  }
  const int64_t specials[] = {0,  999, 1000, -1, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
                              int64_t{1} << 32, (int64_t{1} << 31) + 5};
  for (std::size_t k = 0; k < 64; ++k) mixed[k] = k % 5 == 0 ? specials[(k / 5) % 8] : in_range[k];
  // Ids of a tiny column, with the edges of the low marks (63 marks, 64 and negatives do not).
  std::vector<int64_t> tiny(64);
  const int64_t tiny_edges[] = {0, 63, 64, -1, 65, std::numeric_limits<int64_t>::min()};
  for (std::size_t k = 0; k < 64; ++k) tiny[k] = k % 7 == 3 ? tiny_edges[(k / 7) % 6] : static_cast<int64_t>(rng() % 40);
  for (int64_t n = 0; n <= 40; ++n)
    for (std::size_t offset = 0; offset < 4; ++offset) {
      check(in_range, nullptr, offset, n, card, "in range, all present");
      check(in_range, &some, offset, n, card, "in range, some missing");
      check(in_range, &none, offset, n, card, "all missing");
      check(mixed, &all, offset, n, card, "out of range values");
      check(mixed, &some, offset, n, card, "out of range values, some missing");
      check(tiny, nullptr, offset, n, 64, "tiny ids, all present");
      check(tiny, &some, offset, n, 64, "tiny ids, some missing");
    }
  // Out-of-range values under a missing flag store 0 and are not reported.
  std::vector<int64_t> hidden(16, 5000);
  std::vector<uint8_t> off(16, 0);
  check(hidden, &off, 0, 16, card, "out of range but missing");
  // The extremes of the id range.
  std::vector<int64_t> edge = {0, 1, 2147483646, 2147483647, 2147483646, 0, 1, 7, 2147483647};
  check(edge, nullptr, 0, 9, 2147483647, "the int32 limit");
  check(edge, nullptr, 0, 9, 1, "card 1");
}

// The writer reports an out-of-range id (found by the kernel) at every level, naming column and row.
TEST(IdKernels, WriterRefusesOutOfRangeIdsAtEveryLevel) {
  const SimdLevel before = simd_level();
  for (SimdLevel level : levels()) {
    set_simd_level(level);
    TempDir tmp;
    DatasetColumn c;
    c.name = "c";
    c.role = Role::kCategorical;
    c.cardinality = 50;
    DatasetWriter w(tmp / "ds", {c}, {});
    Chunk ch;
    ch.rows = 37;
    Column& col = ch.add_column("c", Role::kCategorical, ColumnKind::kInt);
    for (int64_t r = 0; r < ch.rows; ++r) col.i[r] = r % 50;
    col.i[33] = 50;
    try {
      w.append(ch);
      ADD_FAILURE() << "id 50 accepted at " << simd_level_name(level);
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("id 50 outside [0, 50) at input row 33"), std::string::npos) << e.what();
    }
  }
  set_simd_level(before);
}

}  // namespace
}  // namespace bluewhale
