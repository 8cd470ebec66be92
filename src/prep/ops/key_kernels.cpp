#include "prep/ops/key_kernels.h"

#include "prep/ops/flat_map.h"

namespace bluewhale::prep_ops {

void hash_keys_scalar(const int64_t* keys, std::size_t n, uint64_t* h) {
  for (std::size_t j = 0; j < n; ++j) h[j] = mix64(static_cast<uint64_t>(keys[j]));
}

bool hash_pack_keys_scalar(const int64_t* keys, std::size_t n, uint64_t* h, uint64_t* packed) {
  hash_keys_scalar(keys, n, h);
  bool all = true;
  for (std::size_t j = 0; j < n; ++j) {
    uint32_t v = 0;
    const bool packs = pack_hex_key(keys[j], v);
    all &= packs | (keys[j] == kEmptyKey);
    packed[j] = packs ? v : kUnpacked;
  }
  return all;
}

void find_compact_scalar(const uint64_t* words, uint64_t mask, const uint64_t* h, const uint64_t* q, std::size_t n,
                         int64_t not_found, int64_t* out) {
  for (std::size_t j = 0; j < n; ++j)
    out[j] = q[j] == kUnpacked ? not_found : find_compact_from(words, mask, q[j], h[j], not_found);
}

FindCompactFn find_compact_for(SimdLevel level) {
  // AVX2's four-lane gathers were not tried; the scalar probes there.
  return simd_pick(level, find_compact_scalar, find_compact_scalar, find_compact_avx512);
}

HashKeysFn hash_keys_for(SimdLevel level) {
  return simd_pick(level, hash_keys_scalar, hash_keys_avx2, hash_keys_avx512);
}

std::size_t compact_keys_scalar(const int64_t* keys, const uint8_t* valid, const uint8_t* split, std::size_t n,
                                int64_t* out) {
  return compact_keys_tail(keys, valid, split, 0, n, out, 0);
}

CompactKeysFn compact_keys_for(SimdLevel level) {
  return simd_pick(level, compact_keys_scalar, compact_keys_avx2, compact_keys_avx512);
}

void zero_missing_scalar(int64_t* ids, const uint8_t* valid, std::size_t n) {
  // Branch-free: missing values are common and unpredictable (40 % in some of Criteo's columns).
  for (std::size_t r = 0; r < n; ++r) ids[r] &= -static_cast<int64_t>(valid[r] != 0);
}

ZeroMissingFn zero_missing_for(SimdLevel level) {
  return simd_pick(level, zero_missing_scalar, zero_missing_avx2, zero_missing_avx512);
}

void find_tiny_scalar(const int64_t* keys, std::size_t n, const int64_t* entry_keys, const int64_t* values,
                      std::size_t entries, int64_t not_found, int64_t* out) {
  for (std::size_t j = 0; j < n; ++j) {
    const int64_t k = keys[j];
    int64_t r = not_found;
    for (std::size_t e = 0; e < entries; ++e) r = k == entry_keys[e] ? values[e] : r;
    out[j] = r;
  }
}

FindTinyFn find_tiny_for(SimdLevel level) {
  return simd_pick(level, find_tiny_scalar, find_tiny_avx2, find_tiny_avx512);
}

HashPackKeysFn hash_pack_keys_for(SimdLevel level) {
  return simd_pick(level, hash_pack_keys_scalar, hash_pack_keys_avx2, hash_pack_keys_avx512);
}

}  // namespace bluewhale::prep_ops
