// The key kernels for AVX-512: eight keys per step. mix64's two 64-bit multiplies are vpmullq (DQ); the
// hex test and packing work on the 64 key bytes at once (BW byte compares, then pairs of digits combined
// by multiply-adds).
#include <immintrin.h>

#include <cstring>

// GCC 12's AVX-512 headers pass _mm512_undefined_*() as the merge source of masked builtins, which
// -Wmaybe-uninitialized reports at every inlined use (GCC bug 105593); nothing here is uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "prep/ops/flat_map.h"
#include "prep/ops/key_kernels.h"

namespace bluewhale::prep_ops {
namespace {

__m512i mix64x8(__m512i x) {
  x = _mm512_add_epi64(x, _mm512_set1_epi64(static_cast<int64_t>(0x9E3779B97F4A7C15ull)));
  x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 30)),
                         _mm512_set1_epi64(static_cast<int64_t>(0xBF58476D1CE4E5B9ull)));
  x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 27)),
                         _mm512_set1_epi64(static_cast<int64_t>(0x94D049BB133111EBull)));
  return _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
}

}  // namespace

void hash_keys_avx512(const int64_t* keys, std::size_t n, uint64_t* h) {
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) _mm512_storeu_si512(h + j, mix64x8(_mm512_loadu_si512(keys + j)));
  hash_keys_scalar(keys + j, n - j, h + j);
}

bool hash_pack_keys_avx512(const int64_t* keys, std::size_t n, uint64_t* h, uint64_t* packed) {
  const __m512i low_nibble = _mm512_set1_epi8(0x0F);
  __mmask8 failed = 0;
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512i x = _mm512_loadu_si512(keys + j);
    _mm512_storeu_si512(h + j, mix64x8(x));
    // A byte is a digit when byte - '0' < 10 and a letter a-f when byte - 'a' < 6 (unsigned).
    const __mmask64 digit = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(x, _mm512_set1_epi8('0')), _mm512_set1_epi8(10));
    const __mmask64 alpha = _mm512_cmplt_epu8_mask(_mm512_sub_epi8(x, _mm512_set1_epi8('a')), _mm512_set1_epi8(6));
    // Lanes whose eight bytes are all hex digits.
    const __mmask8 hex = _mm512_cmpeq_epi64_mask(_mm512_movm_epi8(digit | alpha), _mm512_set1_epi64(-1));
    failed |= static_cast<__mmask8>(~(hex | _mm512_cmpeq_epi64_mask(x, _mm512_set1_epi64(kEmptyKey))));
    // Digit values (a letter's low nibble is 1-6: + 9), then 16 * high + low per byte pair, 256 * high + low
    // per pair of those; the key is big-endian, so the lower byte of each pair is the less significant digit.
    const __m512i nib = _mm512_and_si512(x, low_nibble);
    const __m512i v = _mm512_mask_add_epi8(nib, alpha, nib, _mm512_set1_epi8(9));
    const __m512i d16 = _mm512_maddubs_epi16(v, _mm512_set1_epi16(0x1001));
    const __m512i d32 = _mm512_madd_epi16(d16, _mm512_set1_epi32(0x01000001));
    const __m512i d64 = _mm512_or_si512(_mm512_and_si512(d32, _mm512_set1_epi64(0xFFFF)),
                                        _mm512_and_si512(_mm512_srli_epi64(d32, 16), _mm512_set1_epi64(0xFFFF0000)));
    _mm512_storeu_si512(packed + j, _mm512_mask_mov_epi64(_mm512_set1_epi64(static_cast<int64_t>(kUnpacked)), hex, d64));
  }
  return hash_pack_keys_scalar(keys + j, n - j, h + j, packed + j) && failed == 0;
}

// Eight rows per step: the kept lanes are compressed in a register and the whole vector is stored (a
// compressing store to memory is microcoded and far slower on AMD's AVX-512 cores), then the output
// advances by their number.
std::size_t compact_keys_avx512(const int64_t* keys, const uint8_t* valid, const uint8_t* split, std::size_t n,
                                int64_t* out) {
  std::size_t m = 0, r = 0;
  for (; r + 8 <= n; r += 8) {
    __mmask8 keep = 0xFF;
    if (valid) {
      uint64_t bytes;
      std::memcpy(&bytes, valid + r, 8);
      const __m128i b = _mm_cvtsi64_si128(static_cast<int64_t>(bytes));
      keep = static_cast<__mmask8>(keep & _mm_test_epi8_mask(b, b));
    }
    if (split) {
      uint64_t bytes;
      std::memcpy(&bytes, split + r, 8);
      const __m128i b = _mm_cvtsi64_si128(static_cast<int64_t>(bytes));
      keep = static_cast<__mmask8>(keep & _mm_testn_epi8_mask(b, b));  // split 0: training row
    }
    _mm512_storeu_si512(out + m, _mm512_maskz_compress_epi64(keep, _mm512_loadu_si512(keys + r)));
    m += static_cast<std::size_t>(__builtin_popcount(keep));
  }
  return compact_keys_tail(keys, valid, split, r, n, out, m);
}

// Eight rows per step: the lanes whose validity byte is 0 are zeroed by a masked move.
void zero_missing_avx512(int64_t* ids, const uint8_t* valid, std::size_t n) {
  std::size_t r = 0;
  for (; r + 8 <= n; r += 8) {
    uint64_t bytes;
    std::memcpy(&bytes, valid + r, 8);
    const __m128i b = _mm_cvtsi64_si128(static_cast<int64_t>(bytes));
    const __mmask8 present = _mm_test_epi8_mask(b, b);
    _mm512_storeu_si512(ids + r, _mm512_maskz_mov_epi64(present, _mm512_loadu_si512(ids + r)));
  }
  zero_missing_scalar(ids + r, valid + r, n - r);
}

// 32 keys per step, in four vectors that share each entry's broadcasts; a lane takes the entry's value
// where its key equals the entry's. The step's keys are all loaded before its results are stored (out
// may alias keys).
void find_tiny_avx512(const int64_t* keys, std::size_t n, const int64_t* entry_keys, const int64_t* values,
                      std::size_t entries, int64_t not_found, int64_t* out) {
  const __m512i none = _mm512_set1_epi64(not_found);
  std::size_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512i x0 = _mm512_loadu_si512(keys + j), x1 = _mm512_loadu_si512(keys + j + 8);
    const __m512i x2 = _mm512_loadu_si512(keys + j + 16), x3 = _mm512_loadu_si512(keys + j + 24);
    __m512i r0 = none, r1 = none, r2 = none, r3 = none;
    for (std::size_t e = 0; e < entries; ++e) {
      const __m512i k = _mm512_set1_epi64(entry_keys[e]);
      const __m512i v = _mm512_set1_epi64(values[e]);
      r0 = _mm512_mask_mov_epi64(r0, _mm512_cmpeq_epi64_mask(x0, k), v);
      r1 = _mm512_mask_mov_epi64(r1, _mm512_cmpeq_epi64_mask(x1, k), v);
      r2 = _mm512_mask_mov_epi64(r2, _mm512_cmpeq_epi64_mask(x2, k), v);
      r3 = _mm512_mask_mov_epi64(r3, _mm512_cmpeq_epi64_mask(x3, k), v);
    }
    _mm512_storeu_si512(out + j, r0);
    _mm512_storeu_si512(out + j + 8, r1);
    _mm512_storeu_si512(out + j + 16, r2);
    _mm512_storeu_si512(out + j + 24, r3);
  }
  for (; j + 8 <= n; j += 8) {
    const __m512i x = _mm512_loadu_si512(keys + j);
    __m512i r = none;
    for (std::size_t e = 0; e < entries; ++e)
      r = _mm512_mask_mov_epi64(r, _mm512_cmpeq_epi64_mask(x, _mm512_set1_epi64(entry_keys[e])),
                                _mm512_set1_epi64(values[e]));
    _mm512_storeu_si512(out + j, r);
  }
  find_tiny_scalar(keys + j, n - j, entry_keys, values, entries, not_found, out + j);
}

void find_compact_avx512(const uint64_t* words, uint64_t mask, const uint64_t* h, const uint64_t* q, std::size_t n,
                         int64_t not_found, int64_t* out) {
  const __m512i vmask = _mm512_set1_epi64(static_cast<long long>(mask)), low32 = _mm512_set1_epi64(0xFFFFFFFF);
  const __m512i unpacked = _mm512_set1_epi64(static_cast<long long>(kUnpacked)), none = _mm512_set1_epi64(not_found);
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi64(1);
  std::size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m512i qv = _mm512_loadu_si512(q + j);
    const __m512i idx = _mm512_and_si512(_mm512_loadu_si512(h + j), vmask);
    const __mmask8 packs = _mm512_cmpneq_epu64_mask(qv, unpacked);
    const __m512i w = _mm512_mask_i64gather_epi64(zero, packs, idx, words, 8);
    // A packed key may be 0 ("00000000"), so a hit needs a slot that is not empty.
    const __mmask8 full = _mm512_test_epi64_mask(w, w);
    const __mmask8 hit = _mm512_mask_cmpeq_epu64_mask(full, _mm512_and_si512(w, low32), qv);
    _mm512_storeu_si512(out + j, _mm512_mask_sub_epi64(none, hit, _mm512_srli_epi64(w, 32), one));
    for (unsigned rest = full & ~hit; rest != 0; rest &= rest - 1) {
      const unsigned l = static_cast<unsigned>(__builtin_ctz(rest));
      out[j + l] = find_compact_from(words, mask, q[j + l], h[j + l] + 1, not_found);
    }
  }
  find_compact_scalar(words, mask, h + j, q + j, n - j, not_found, out + j);
}

}  // namespace bluewhale::prep_ops
