#include "prep/ops/key_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/core/hash.h"
#include "prep/ops/flat_map.h"
#include "test_util.h"

namespace bluewhale::prep_ops {
namespace {

std::vector<SimdLevel> levels() { return testing::supported_simd_levels(); }

int64_t key_of(const std::string& text) {
  return categorical_key(text);
}

// Runs both kernels of every level over keys[offset, offset + n) and checks them against the one-key
// definitions: mix64, pack_hex_key (kUnpacked when the key does not pack), and "all pack or are missing".
void check_all_levels(const std::vector<int64_t>& keys, std::size_t offset, std::size_t n, const std::string& what) {
  std::vector<uint64_t> want_h(n);
  std::vector<uint64_t> want_p(n);
  bool want_all = true;
  for (std::size_t j = 0; j < n; ++j) {
    const int64_t k = keys[offset + j];
    want_h[j] = mix64(static_cast<uint64_t>(k));
    uint32_t p = 0;
    const bool packs = pack_hex_key(k, p);
    want_p[j] = packs ? p : kUnpacked;
    want_all = want_all && (packs || k == kEmptyKey);
  }
  for (SimdLevel level : levels()) {
    SCOPED_TRACE(what + " n=" + std::to_string(n) + " offset=" + std::to_string(offset) + " at level " +
                 std::string(simd_level_name(level)));
    // One entry more on each side, as markers that must stay untouched.
    std::vector<uint64_t> h(n + 2, 0xABABABABABABABABull);
    std::vector<uint64_t> p(n + 2, 0xCDCDCDCDCDCDCDCDull);
    hash_keys_for(level)(keys.data() + offset, n, h.data() + 1);
    EXPECT_EQ(std::vector<uint64_t>(h.begin() + 1, h.end() - 1), want_h);
    std::fill(h.begin(), h.end(), 0xABABABABABABABABull);
    const bool all = hash_pack_keys_for(level)(keys.data() + offset, n, h.data() + 1, p.data() + 1);
    EXPECT_EQ(all, want_all);
    EXPECT_EQ(std::vector<uint64_t>(h.begin() + 1, h.end() - 1), want_h);
    EXPECT_EQ(std::vector<uint64_t>(p.begin() + 1, p.end() - 1), want_p);
    EXPECT_EQ(h.front(), 0xABABABABABABABABull);
    EXPECT_EQ(h.back(), 0xABABABABABABABABull);
    EXPECT_EQ(p.front(), 0xCDCDCDCDCDCDCDCDull);
    EXPECT_EQ(p.back(), 0xCDCDCDCDCDCDCDCDull);
  }
}

std::string random_hex(std::mt19937_64& rng) {
  static const char kHex[] = "0123456789abcdef";
  std::string s(8, '0');
  for (char& c : s) c = kHex[rng() % 16];
  return s;
}

TEST(KeyKernels, HexKeysEveryLengthAndOffset) {
  std::mt19937_64 rng(3);
  std::vector<int64_t> keys;
  for (int i = 0; i < 80; ++i) keys.push_back(key_of(random_hex(rng)));
  keys.push_back(key_of("00000000"));
  keys.push_back(key_of("ffffffff"));
  keys.push_back(key_of("09af09af"));
  // Vector bodies and scalar tails of every size, from aligned and unaligned starts.
  for (std::size_t n = 0; n <= 40; ++n)
    for (std::size_t offset : {0, 1, 3, 5}) check_all_levels(keys, offset, n, "hex");
  check_all_levels(keys, 0, keys.size(), "hex");
}

TEST(KeyKernels, MissingKeysAreUnpackedButCountAsPacking) {
  std::mt19937_64 rng(5);
  std::vector<int64_t> keys;
  for (int i = 0; i < 37; ++i) keys.push_back(i % 3 == 0 ? kEmptyKey : key_of(random_hex(rng)));
  check_all_levels(keys, 0, keys.size(), "with missing");
  check_all_levels(std::vector<int64_t>(19, kEmptyKey), 0, 19, "all missing");
}

TEST(KeyKernels, EveryByteValueAtEveryPositionOfAKey) {
  // A key that fails to pack by one byte, at each of the 8 positions and with each of the 256 byte
  // values, placed in a vector body (index 4 of 24 keys) and in the scalar tail (index 22): neighbours of
  // the boundary values ('/', ':', '`', 'g', 'A'-'F', high bytes) must not pack, 0-9 and a-f must.
  std::mt19937_64 rng(11);
  for (int pos = 0; pos < 8; ++pos)
    for (int b = 0; b < 256; ++b) {
      std::string text = random_hex(rng);
      text[pos] = static_cast<char>(b);
      for (std::size_t at : {4, 22}) {
        std::vector<int64_t> keys;
        for (int i = 0; i < 24; ++i) keys.push_back(key_of(random_hex(rng)));
        keys[at] = categorical_key8(text.data());
        check_all_levels(keys, 0, keys.size(), "byte " + std::to_string(b) + " at " + std::to_string(pos));
      }
    }
}

TEST(KeyKernels, KeysThatAreNotEightByteValues) {
  // Hashed keys (other lengths), negative and small integers: hashed like any key, never packed.
  std::mt19937_64 rng(13);
  std::vector<int64_t> keys;
  for (int i = 0; i < 33; ++i) keys.push_back(static_cast<int64_t>(rng()));
  keys.push_back(0);
  keys.push_back(-1);
  keys.push_back(key_of("abc"));
  keys.push_back(key_of("0123456789"));
  keys.push_back(std::numeric_limits<int64_t>::max());
  check_all_levels(keys, 0, keys.size(), "not hex");
}

// compact_keys at every level against the definition (the kept rows' keys, in order), over every length
// up to 40 from four offsets, with and without validity and split bytes (any nonzero valid byte keeps a
// row; any nonzero split drops it), and nothing written past the n + 8 keys the caller provides.
TEST(KeyKernels, CompactKeysKeepsTheCountedRowsInOrder) {
  std::mt19937_64 rng(17);
  std::vector<int64_t> keys(48);
  std::vector<uint8_t> valid(48), split(48);
  for (std::size_t r = 0; r < keys.size(); ++r) {
    keys[r] = static_cast<int64_t>(rng());
    valid[r] = static_cast<uint8_t>(rng() % 3 == 0 ? 0 : 1 + rng() % 255);
    split[r] = static_cast<uint8_t>(rng() % 4 == 0 ? 1 + rng() % 2 : 0);
  }
  const int64_t guard = 0x5A5A5A5A5A5A5A5ALL;
  for (std::size_t n = 0; n <= 40; ++n)
    for (std::size_t offset = 0; offset < 4; ++offset)
      for (int mode = 0; mode < 4; ++mode) {
        const uint8_t* v = mode & 1 ? valid.data() + offset : nullptr;
        const uint8_t* sp = mode & 2 ? split.data() + offset : nullptr;
        std::vector<int64_t> want;
        for (std::size_t r = 0; r < n; ++r)
          if ((!v || v[r] != 0) && (!sp || sp[r] == 0)) want.push_back(keys[offset + r]);
        for (SimdLevel level : levels()) {
          std::vector<int64_t> out(n + kCompactKeysSlack + 4, guard);
          const std::size_t m = compact_keys_for(level)(keys.data() + offset, v, sp, n, out.data());
          const std::string at = std::string(simd_level_name(level)) + ", n " + std::to_string(n) + ", offset " +
                                 std::to_string(offset) + ", mode " + std::to_string(mode);
          ASSERT_EQ(m, want.size()) << at;
          EXPECT_TRUE(std::equal(want.begin(), want.end(), out.begin())) << at;
          for (std::size_t k = n + kCompactKeysSlack; k < out.size(); ++k) EXPECT_EQ(out[k], guard) << at << " at " << k;
        }
      }
}

// zero_missing at every level against the definition (ids of rows whose validity byte is 0 become 0,
// any nonzero byte keeps the id), over every length up to 40 from four offsets, with runs of missing and
// present rows; nothing before or after the n ids changes.
TEST(KeyKernels, ZeroMissingZeroesExactlyTheMissingRows) {
  std::mt19937_64 rng(29);
  std::vector<int64_t> ids(48);
  std::vector<uint8_t> valid(48);
  for (std::size_t r = 0; r < ids.size(); ++r) {
    ids[r] = static_cast<int64_t>(rng()) | 1;  // never 0 already
    valid[r] = static_cast<uint8_t>((r / 5) % 3 == 0 ? 0 : rng() % 3 == 0 ? 0 : 1 + rng() % 255);
  }
  for (std::size_t n = 0; n <= 40; ++n)
    for (std::size_t offset = 0; offset < 4; ++offset) {
      std::vector<int64_t> want = ids;
      for (std::size_t r = 0; r < n; ++r)
        if (valid[offset + r] == 0) want[offset + r] = 0;
      for (SimdLevel level : levels()) {
        std::vector<int64_t> got = ids;
        zero_missing_for(level)(got.data() + offset, valid.data() + offset, n);
        EXPECT_EQ(got, want) << simd_level_name(level) << ", n " << n << ", offset " << offset;
      }
    }
}

// find_tiny at every level against a map: entry lists of 0 to kTinyKeys keys (INT64_MIN, the largest and
// smallest keys, 0 and -1 among them), queries that mix entry keys with keys one bit or one unit away,
// every length up to 80 from four offsets plus a long one, results written elsewhere (nothing outside
// the n results changes) and in place.
TEST(KeyKernels, FindTinyGivesEachKeysEntryValueOrNotFound) {
  std::mt19937_64 rng(31);
  const std::vector<int64_t> edges = {kEmptyKey, std::numeric_limits<int64_t>::max(), 0, -1, 1, key_of("0a1b2c3d")};
  for (std::size_t entries : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{8}, std::size_t{17},
                              kTinyKeys - 1, kTinyKeys}) {
    std::vector<int64_t> ek, ev;
    std::map<int64_t, int64_t> want;
    while (ek.size() < entries) {
      const int64_t k = ek.size() < edges.size() && entries > 3 ? edges[ek.size()] : key_of(random_hex(rng));
      if (!want.emplace(k, static_cast<int64_t>(rng() % 1000) - 500).second) continue;
      ek.push_back(k);
      ev.push_back(want[k]);
    }
    std::vector<int64_t> keys;
    for (std::size_t j = 0; j < 1100; ++j) {
      const int64_t base = ek.empty() || rng() % 4 == 0 ? key_of(random_hex(rng)) : ek[rng() % ek.size()];
      const int r = static_cast<int>(rng() % 8);
      keys.push_back(r == 0 ? base ^ 1 : r == 1 ? static_cast<int64_t>(static_cast<uint64_t>(base) + 1) : base);
    }
    const int64_t not_found = -777;
    auto expect = [&](int64_t k) {
      auto it = want.find(k);
      return it == want.end() ? not_found : it->second;
    };
    std::vector<std::size_t> lengths;
    for (std::size_t n = 0; n <= 80; ++n) lengths.push_back(n);
    lengths.push_back(1000);
    for (SimdLevel level : levels())
      for (std::size_t n : lengths)
        for (std::size_t offset = 0; offset < 4; ++offset) {
          SCOPED_TRACE(std::string(simd_level_name(level)) + ", " + std::to_string(entries) + " entries, n " +
                       std::to_string(n) + ", offset " + std::to_string(offset));
          std::vector<int64_t> out(n + 2, 0x5A5A5A5A);
          find_tiny_for(level)(keys.data() + offset, n, ek.data(), ev.data(), entries, not_found, out.data() + 1);
          ASSERT_EQ(out.front(), 0x5A5A5A5A);
          ASSERT_EQ(out.back(), 0x5A5A5A5A);
          for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(out[j + 1], expect(keys[offset + j])) << j;
          std::vector<int64_t> in_place = keys;
          find_tiny_for(level)(in_place.data() + offset, n, ek.data(), ev.data(), entries, not_found,
                               in_place.data() + offset);
          ASSERT_TRUE(std::equal(out.begin() + 1, out.end() - 1, in_place.begin() + static_cast<std::ptrdiff_t>(offset)));
        }
  }
}

// find_compact against the definition: linear probing from h & mask to the slot whose low half is q
// (and that is not empty) or to the first empty slot. Tables at high load (long clusters, wrapping
// around the end), a stored packed key 0 ("00000000", whose low half equals an empty slot's), absent
// keys, kUnpacked, every length and alignment.
TEST(KeyKernels, FindCompactFollowsLinearProbing) {
  std::mt19937_64 rng(37);
  for (std::size_t slots : {std::size_t{8}, std::size_t{64}, std::size_t{1024}}) {
    for (int load_percent : {0, 30, 60, 90}) {
      const uint64_t mask = slots - 1;
      std::vector<uint64_t> words(slots, 0);
      std::map<uint64_t, int64_t> stored;  // packed key -> value
      const std::size_t target = std::min(slots - 1, slots * static_cast<std::size_t>(load_percent) / 100);
      while (stored.size() < target) {
        const uint64_t q = stored.empty() && load_percent >= 60 ? 0 : rng() % 5000;
        const int64_t value = static_cast<int64_t>(rng() % 100000);
        if (!stored.emplace(q, value).second) continue;
        std::size_t i = static_cast<std::size_t>(mix64(q)) & mask;
        while (words[i] != 0) i = (i + 1) & mask;
        words[i] = (static_cast<uint64_t>(value) + 1) << 32 | q;
      }
      std::vector<uint64_t> qs, hs;
      for (std::size_t j = 0; j < 300; ++j) {
        const int r = static_cast<int>(rng() % 10);
        uint64_t q = rng() % 5000;
        if (r == 0) q = kUnpacked;
        if (r == 1) q = 0;
        if (r >= 5 && !stored.empty()) q = std::next(stored.begin(), static_cast<std::ptrdiff_t>(rng() % stored.size()))->first;
        qs.push_back(q);
        // The hash a lookup starts from; sometimes any other start slot (h is masked by the kernel).
        hs.push_back(r == 2 ? rng() : mix64(q == kUnpacked ? 12345 : q));
      }
      const int64_t not_found = -3;
      auto expect = [&](std::size_t j) -> int64_t {
        if (qs[j] == kUnpacked) return not_found;
        for (std::size_t i = hs[j] & mask;; i = (i + 1) & mask) {
          if (words[i] == 0) return not_found;
          if ((words[i] & 0xFFFFFFFF) == qs[j]) return static_cast<int64_t>(words[i] >> 32) - 1;
        }
      };
      // The definition finds what was stored, from its own hash.
      for (std::size_t j = 0; j < qs.size(); ++j) {
        if (qs[j] != kUnpacked && stored.count(qs[j]) && hs[j] == mix64(qs[j])) {
          ASSERT_EQ(expect(j), stored[qs[j]]);
        }
      }
      std::vector<std::size_t> lengths;
      for (std::size_t n = 0; n <= 40; ++n) lengths.push_back(n);
      lengths.push_back(296);
      for (SimdLevel level : levels())
        for (std::size_t n : lengths)
          for (std::size_t offset = 0; offset < 4; ++offset) {
            SCOPED_TRACE(std::string(simd_level_name(level)) + ", " + std::to_string(slots) + " slots at " +
                         std::to_string(load_percent) + "%, n " + std::to_string(n) + ", offset " + std::to_string(offset));
            std::vector<int64_t> out(n + 2, 0x5A5A5A5A);
            find_compact_for(level)(words.data(), mask, hs.data() + offset, qs.data() + offset, n, not_found, out.data() + 1);
            ASSERT_EQ(out.front(), 0x5A5A5A5A);
            ASSERT_EQ(out.back(), 0x5A5A5A5A);
            for (std::size_t j = 0; j < n; ++j) ASSERT_EQ(out[j + 1], expect(offset + j)) << j;
          }
    }
  }
}

}  // namespace
}  // namespace bluewhale::prep_ops
