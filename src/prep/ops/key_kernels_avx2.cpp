// The key kernels for AVX2: four keys per step. AVX2 has no 64-bit multiply; mix64's multiplies by
// constants are built from three 32 x 32 -> 64-bit ones.
#include <immintrin.h>

#include <cstring>

#include "prep/ops/flat_map.h"
#include "prep/ops/key_kernels.h"

namespace bluewhale::prep_ops {
namespace {

// x * c mod 2^64 per lane: lo(x) lo(c) + (hi(x) lo(c) + lo(x) hi(c)) << 32.
__m256i mul64_by(__m256i x, uint64_t c) {
  const __m256i lo = _mm256_set1_epi64x(static_cast<int64_t>(c & 0xFFFFFFFF));
  const __m256i hi = _mm256_set1_epi64x(static_cast<int64_t>(c >> 32));
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(x, 32), lo), _mm256_mul_epu32(x, hi));
  return _mm256_add_epi64(_mm256_mul_epu32(x, lo), _mm256_slli_epi64(cross, 32));
}

__m256i mix64x4(__m256i x) {
  x = _mm256_add_epi64(x, _mm256_set1_epi64x(static_cast<int64_t>(0x9E3779B97F4A7C15ull)));
  x = mul64_by(_mm256_xor_si256(x, _mm256_srli_epi64(x, 30)), 0xBF58476D1CE4E5B9ull);
  x = mul64_by(_mm256_xor_si256(x, _mm256_srli_epi64(x, 27)), 0x94D049BB133111EBull);
  return _mm256_xor_si256(x, _mm256_srli_epi64(x, 31));
}

// Bytes of t that are at most `max` (unsigned), as 0xFF bytes.
__m256i at_most(__m256i t, char max) {
  return _mm256_cmpeq_epi8(_mm256_min_epu8(t, _mm256_set1_epi8(max)), t);
}

}  // namespace

void hash_keys_avx2(const int64_t* keys, std::size_t n, uint64_t* h) {
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + j),
                        mix64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + j))));
  hash_keys_scalar(keys + j, n - j, h + j);
}

bool hash_pack_keys_avx2(const int64_t* keys, std::size_t n, uint64_t* h, uint64_t* packed) {
  const __m256i ones = _mm256_set1_epi64x(-1);
  const __m256i unpacked = _mm256_set1_epi64x(static_cast<int64_t>(kUnpacked));
  int failed = 0;
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + j));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + j), mix64x4(x));
    // As in the AVX-512 version: digits are byte - '0' <= 9, letters a-f byte - 'a' <= 5 (unsigned).
    const __m256i digit = at_most(_mm256_sub_epi8(x, _mm256_set1_epi8('0')), 9);
    const __m256i alpha = at_most(_mm256_sub_epi8(x, _mm256_set1_epi8('a')), 5);
    const __m256i hex = _mm256_cmpeq_epi64(_mm256_or_si256(digit, alpha), ones);
    const __m256i empty = _mm256_cmpeq_epi64(x, _mm256_set1_epi64x(kEmptyKey));
    failed |= ~_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_or_si256(hex, empty))) & 0xF;
    const __m256i nib = _mm256_and_si256(x, _mm256_set1_epi8(0x0F));
    const __m256i v = _mm256_add_epi8(nib, _mm256_and_si256(alpha, _mm256_set1_epi8(9)));
    const __m256i d16 = _mm256_maddubs_epi16(v, _mm256_set1_epi16(0x1001));
    const __m256i d32 = _mm256_madd_epi16(d16, _mm256_set1_epi32(0x01000001));
    const __m256i d64 = _mm256_or_si256(_mm256_and_si256(d32, _mm256_set1_epi64x(0xFFFF)),
                                        _mm256_and_si256(_mm256_srli_epi64(d32, 16), _mm256_set1_epi64x(0xFFFF0000)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(packed + j), _mm256_blendv_epi8(unpacked, d64, hex));
  }
  return hash_pack_keys_scalar(keys + j, n - j, h + j, packed + j) && failed == 0;
}

// Four rows per step: the kept lanes are moved to the front by a permutation of 32-bit halves looked up
// by the lane mask, and the whole vector is stored; the output advances by their number.
std::size_t compact_keys_avx2(const int64_t* keys, const uint8_t* valid, const uint8_t* split, std::size_t n,
                              int64_t* out) {
  static const struct Table {
    alignas(32) int32_t idx[16][8];
    Table() {
      for (int mask = 0; mask < 16; ++mask) {
        int k = 0;
        for (int lane = 0; lane < 4; ++lane)
          if (mask & (1 << lane)) {
            idx[mask][2 * k] = 2 * lane;
            idx[mask][2 * k + 1] = 2 * lane + 1;
            ++k;
          }
        for (; k < 4; ++k) idx[mask][2 * k] = idx[mask][2 * k + 1] = 0;
      }
    }
  } table;
  std::size_t m = 0, r = 0;
  for (; r + 4 <= n; r += 4) {
    int keep = 0xF;
    if (valid) {
      int32_t bytes;
      std::memcpy(&bytes, valid + r, 4);
      const __m128i b = _mm_cvtsi32_si128(bytes);
      keep &= ~_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_setzero_si128())) & 0xF;
    }
    if (split) {
      int32_t bytes;
      std::memcpy(&bytes, split + r, 4);
      const __m128i b = _mm_cvtsi32_si128(bytes);
      keep &= _mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_setzero_si128())) & 0xF;
    }
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + r));
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(table.idx[keep]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + m), _mm256_permutevar8x32_epi32(v, perm));
    m += static_cast<std::size_t>(__builtin_popcount(static_cast<unsigned>(keep)));
  }
  return compact_keys_tail(keys, valid, split, r, n, out, m);
}

// Four rows per step: four validity bytes widened to 64-bit lanes, all ones where the byte is not 0.
void zero_missing_avx2(int64_t* ids, const uint8_t* valid, std::size_t n) {
  std::size_t r = 0;
  for (; r + 4 <= n; r += 4) {
    int32_t bytes;
    std::memcpy(&bytes, valid + r, 4);
    const __m256i present = _mm256_xor_si256(
        _mm256_cmpeq_epi64(_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(bytes)), _mm256_setzero_si256()), _mm256_set1_epi64x(-1));
    __m256i* at = reinterpret_cast<__m256i*>(ids + r);
    _mm256_storeu_si256(at, _mm256_and_si256(_mm256_loadu_si256(at), present));
  }
  zero_missing_scalar(ids + r, valid + r, n - r);
}

// 16 keys per step in four vectors (see find_tiny_avx512), a byte blend per entry.
void find_tiny_avx2(const int64_t* keys, std::size_t n, const int64_t* entry_keys, const int64_t* values,
                    std::size_t entries, int64_t not_found, int64_t* out) {
  const __m256i none = _mm256_set1_epi64x(not_found);
  auto load = [&](std::size_t at) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + at)); };
  auto store = [&](std::size_t at, __m256i r) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + at), r); };
  std::size_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256i x0 = load(j), x1 = load(j + 4), x2 = load(j + 8), x3 = load(j + 12);
    __m256i r0 = none, r1 = none, r2 = none, r3 = none;
    for (std::size_t e = 0; e < entries; ++e) {
      const __m256i k = _mm256_set1_epi64x(entry_keys[e]);
      const __m256i v = _mm256_set1_epi64x(values[e]);
      r0 = _mm256_blendv_epi8(r0, v, _mm256_cmpeq_epi64(x0, k));
      r1 = _mm256_blendv_epi8(r1, v, _mm256_cmpeq_epi64(x1, k));
      r2 = _mm256_blendv_epi8(r2, v, _mm256_cmpeq_epi64(x2, k));
      r3 = _mm256_blendv_epi8(r3, v, _mm256_cmpeq_epi64(x3, k));
    }
    store(j, r0);
    store(j + 4, r1);
    store(j + 8, r2);
    store(j + 12, r3);
  }
  for (; j + 4 <= n; j += 4) {
    const __m256i x = load(j);
    __m256i r = none;
    for (std::size_t e = 0; e < entries; ++e)
      r = _mm256_blendv_epi8(r, _mm256_set1_epi64x(values[e]), _mm256_cmpeq_epi64(x, _mm256_set1_epi64x(entry_keys[e])));
    store(j, r);
  }
  find_tiny_scalar(keys + j, n - j, entry_keys, values, entries, not_found, out + j);
}

}  // namespace bluewhale::prep_ops
