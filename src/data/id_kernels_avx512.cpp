// store_ids for AVX-512: eight ids per step; the valid bytes become a lane mask (BW+VL byte test), the
// 64-bit min/max/compare are native (vpminsq, vpmaxsq, vpcmpuq), the narrowing store is vpmovqd.
#include <immintrin.h>

// GCC 12's AVX-512 headers pass _mm512_undefined_*() as the merge source of masked builtins, which
// -Wmaybe-uninitialized reports at every inlined use (GCC bug 105593); nothing here is uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cstring>

#include "data/id_kernels.h"

namespace bluewhale {

IdStretch store_ids_avx512(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst) {
  const __m512i vcard = _mm512_set1_epi64(static_cast<int64_t>(card));
  __m512i sum = _mm512_setzero_si512();
  __m512i lo = _mm512_set1_epi64(INT64_MAX), hi = _mm512_set1_epi64(INT64_MIN);
  __m512i marks = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi64(1);
  __mmask8 bad = 0;
  int64_t present = 0;
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __mmask8 m = 0xFF;
    if (valid) {
      uint64_t bytes;
      std::memcpy(&bytes, valid + k, 8);
      const __m128i b = _mm_cvtsi64_si128(static_cast<int64_t>(bytes));
      m = static_cast<__mmask8>(_mm_test_epi8_mask(b, b));  // one bit per nonzero byte, in order
    }
    const __m512i v = _mm512_maskz_loadu_epi64(m, src + k);  // missing lanes: 0
    bad |= _mm512_cmpge_epu64_mask(v, vcard);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k), _mm512_cvtepi64_epi32(v));
    sum = _mm512_add_epi64(sum, v);
    lo = _mm512_mask_min_epi64(lo, m, lo, v);
    hi = _mm512_mask_max_epi64(hi, m, hi, v);
    marks = _mm512_or_si512(marks, _mm512_maskz_sllv_epi64(m, one, v));  // shifts past 63 give 0
    present += __builtin_popcount(m);
  }
  // Reduced through memory: GCC 12's _mm512_reduce_* trip -Wuninitialized the same way.
  alignas(64) int64_t s[8], l[8], h[8];
  alignas(64) uint64_t b[8];
  _mm512_store_si512(s, sum);
  _mm512_store_si512(l, lo);
  _mm512_store_si512(h, hi);
  _mm512_store_si512(b, marks);
  IdStretch acc;
  for (int j = 0; j < 8; ++j) {
    acc.sum = wrapping_add(acc.sum, s[j]);
    acc.lo = l[j] < acc.lo ? l[j] : acc.lo;
    acc.hi = h[j] > acc.hi ? h[j] : acc.hi;
    acc.low_marks |= b[j];
  }
  acc.present = present;
  acc.out_of_range = bad != 0;
  store_ids_tail(src, valid, k, n, card, dst, acc);
  return acc;
}

}  // namespace bluewhale
