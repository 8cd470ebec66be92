// The per-key arithmetic in front of the count and dictionary tables, one version per ISA level
// (key_kernels.cpp: scalar, key_kernels_avx2.cpp, key_kernels_avx512.cpp), picked through simd_level()
// (core/cpu.h). On Criteo a column's keys are hashed (and packed, see pack_hex_key) as one batch before
// any table probe; one key at a time that took longer than the probes into the small tables (~3 ns per
// key against ~1 ns).
#pragma once

#include <cstddef>
#include <cstdint>

#include "bluewhale/core/cpu.h"

namespace bluewhale::prep_ops {

// h[j] = mix64(keys[j]) for j < n.
using HashKeysFn = void (*)(const int64_t* keys, std::size_t n, uint64_t* h);

// Written for a key that does not pack: above every packed value, so it matches none.
inline constexpr uint64_t kUnpacked = uint64_t{1} << 32;

// h[j] = mix64(keys[j]), and packed[j] = the value pack_hex_key gives keys[j] when it packs, else
// kUnpacked, for j < n. Returns whether every key packs or is kEmptyKey (the missing value).
using HashPackKeysFn = bool (*)(const int64_t* keys, std::size_t n, uint64_t* h, uint64_t* packed);

void hash_keys_scalar(const int64_t* keys, std::size_t n, uint64_t* h);
void hash_keys_avx2(const int64_t* keys, std::size_t n, uint64_t* h);
void hash_keys_avx512(const int64_t* keys, std::size_t n, uint64_t* h);
bool hash_pack_keys_scalar(const int64_t* keys, std::size_t n, uint64_t* h, uint64_t* packed);
bool hash_pack_keys_avx2(const int64_t* keys, std::size_t n, uint64_t* h, uint64_t* packed);
bool hash_pack_keys_avx512(const int64_t* keys, std::size_t n, uint64_t* h, uint64_t* packed);

// The keys a fit counts: out[0 .. m) = keys[r] for the rows r < n, in order, whose valid[r] != 0 (valid
// null: all) and split[r] == 0 (split null: all); returns m. out must have room for n + 8 keys (vector
// kernels store whole vectors past the last key kept) and must not overlap keys.
using CompactKeysFn = std::size_t (*)(const int64_t* keys, const uint8_t* valid, const uint8_t* split, std::size_t n,
                                      int64_t* out);
inline constexpr std::size_t kCompactKeysSlack = 8;

std::size_t compact_keys_scalar(const int64_t* keys, const uint8_t* valid, const uint8_t* split, std::size_t n,
                                int64_t* out);
std::size_t compact_keys_avx2(const int64_t* keys, const uint8_t* valid, const uint8_t* split, std::size_t n,
                              int64_t* out);
std::size_t compact_keys_avx512(const int64_t* keys, const uint8_t* valid, const uint8_t* split, std::size_t n,
                                int64_t* out);

// ids[r] = 0 for the rows r < n whose valid[r] == 0 (missing values), the others unchanged:
// categorify's last step, over every row of every column.
using ZeroMissingFn = void (*)(int64_t* ids, const uint8_t* valid, std::size_t n);

void zero_missing_scalar(int64_t* ids, const uint8_t* valid, std::size_t n);
void zero_missing_avx2(int64_t* ids, const uint8_t* valid, std::size_t n);
void zero_missing_avx512(int64_t* ids, const uint8_t* valid, std::size_t n);

// Dictionaries of at most kTinyKeys keys (Criteo has seven such columns: 3 to 29 values) are looked up
// by comparing every key with every entry, a vector of keys at a time: no hash, no probe, no branch on
// the data. The work per key grows with the entries (~0.17 cycles each at AVX-512 on the 2-core VM: 0.6
// cycles a key for 3 entries, 4-5 for 24-27), so beyond a few dozen a hash probe (~7-8 cycles a key in
// L1) is cheaper.
inline constexpr std::size_t kTinyKeys = 32;

// out[j] = values[e] for the e < entries with entry_keys[e] == keys[j], else not_found, for j < n.
// entry_keys must be distinct (any int64, INT64_MIN included); entries <= kTinyKeys; out may alias keys.
using FindTinyFn = void (*)(const int64_t* keys, std::size_t n, const int64_t* entry_keys, const int64_t* values,
                            std::size_t entries, int64_t not_found, int64_t* out);

void find_tiny_scalar(const int64_t* keys, std::size_t n, const int64_t* entry_keys, const int64_t* values,
                      std::size_t entries, int64_t not_found, int64_t* out);
void find_tiny_avx2(const int64_t* keys, std::size_t n, const int64_t* entry_keys, const int64_t* values,
                    std::size_t entries, int64_t not_found, int64_t* out);
void find_tiny_avx512(const int64_t* keys, std::size_t n, const int64_t* entry_keys, const int64_t* values,
                      std::size_t entries, int64_t not_found, int64_t* out);

// A compact KeyIndex's lookups (see KeyIndex in flat_map.h: a slot is (value + 1) << 32 | packed key, 0
// when empty; linear probing from slot h & mask): out[j] = the value of packed key q[j] probed from h[j],
// or not_found when it is not there or q[j] == kUnpacked, for j < n. words: mask + 1 slots, at least one
// empty. out must not overlap h or q. The vector kernel resolves the lanes whose first slot holds their
// key or is empty with one gather (most lanes, at the loads assign() keeps), and walks the others on.
using FindCompactFn = void (*)(const uint64_t* words, uint64_t mask, const uint64_t* h, const uint64_t* q,
                               std::size_t n, int64_t not_found, int64_t* out);
void find_compact_scalar(const uint64_t* words, uint64_t mask, const uint64_t* h, const uint64_t* q, std::size_t n,
                         int64_t not_found, int64_t* out);
void find_compact_avx512(const uint64_t* words, uint64_t mask, const uint64_t* h, const uint64_t* q, std::size_t n,
                         int64_t not_found, int64_t* out);

// The value of packed key q in a compact index's words, probed from slot i (not_found: absent).
inline int64_t find_compact_from(const uint64_t* words, uint64_t mask, uint64_t q, uint64_t i, int64_t not_found) {
  i &= mask;
  uint64_t w = words[i];
  // One branch per step (the min is 0 when the slot is empty or holds q), as flat_map.h's probe_packed.
  for (; (((w & 0xFFFFFFFF) ^ q) < w ? ((w & 0xFFFFFFFF) ^ q) : w) != 0; w = words[i]) i = (i + 1) & mask;
  return w != 0 ? static_cast<int64_t>(w >> 32) - 1 : not_found;
}

// The kernels for a level (scalar for kScalar).
HashKeysFn hash_keys_for(SimdLevel level);
HashPackKeysFn hash_pack_keys_for(SimdLevel level);
CompactKeysFn compact_keys_for(SimdLevel level);
ZeroMissingFn zero_missing_for(SimdLevel level);
FindTinyFn find_tiny_for(SimdLevel level);
FindCompactFn find_compact_for(SimdLevel level);

// compact_keys over rows [begin, n), appending at out[m]: the vector kernels' tails. Returns the new m.
inline std::size_t compact_keys_tail(const int64_t* keys, const uint8_t* valid, const uint8_t* split, std::size_t begin,
                                     std::size_t n, int64_t* out, std::size_t m) {
  // Branch-free: missing values and held-out rows are common and unpredictable.
  for (std::size_t r = begin; r < n; ++r) {
    out[m] = keys[r];
    m += ((!split || split[r] == 0) && (!valid || valid[r] != 0)) ? 1 : 0;
  }
  return m;
}

}  // namespace bluewhale::prep_ops
