// store_ids for AVX2: four ids per step. AVX2 has no 64-bit min/max or unsigned compare: they are
// signed compares (vpcmpgtq) with blends, the unsigned one on sign-flipped operands.
#include <immintrin.h>

#include <cstring>

#include "data/id_kernels.h"

namespace bluewhale {

IdStretch store_ids_avx2(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst) {
  const __m256i sign = _mm256_set1_epi64x(INT64_MIN);
  const __m256i card_flipped = _mm256_xor_si256(_mm256_set1_epi64x(static_cast<int64_t>(card)), sign);
  const __m256i all = _mm256_set1_epi64x(-1);
  const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  __m256i sum = _mm256_setzero_si256(), present = _mm256_setzero_si256(), bad = _mm256_setzero_si256();
  __m256i lo = _mm256_set1_epi64x(INT64_MAX), hi = _mm256_set1_epi64x(INT64_MIN);
  __m256i marks = _mm256_setzero_si256();
  const __m256i one = _mm256_set1_epi64x(1);
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    __m256i m = all;  // all ones: present
    if (valid) {
      int32_t bytes;
      std::memcpy(&bytes, valid + k, 4);
      const __m256i b = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(bytes));
      m = _mm256_xor_si256(_mm256_cmpeq_epi64(b, _mm256_setzero_si256()), all);
    }
    const __m256i v = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + k)), m);
    // v >= card unsigned  <=>  !(card > v) on sign-flipped values.
    bad = _mm256_or_si256(bad, _mm256_xor_si256(_mm256_cmpgt_epi64(card_flipped, _mm256_xor_si256(v, sign)), all));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + k),
                     _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, low_halves)));
    sum = _mm256_add_epi64(sum, v);
    present = _mm256_sub_epi64(present, m);  // m is -1 per present lane
    marks = _mm256_or_si256(marks, _mm256_and_si256(_mm256_sllv_epi64(one, v), m));  // shifts past 63 give 0
    // Missing lanes must not move lo/hi: they compare as INT64_MAX / INT64_MIN.
    const __m256i vlo = _mm256_blendv_epi8(_mm256_set1_epi64x(INT64_MAX), v, m);
    const __m256i vhi = _mm256_blendv_epi8(_mm256_set1_epi64x(INT64_MIN), v, m);
    lo = _mm256_blendv_epi8(lo, vlo, _mm256_cmpgt_epi64(lo, vlo));
    hi = _mm256_blendv_epi8(hi, vhi, _mm256_cmpgt_epi64(vhi, hi));
  }
  alignas(32) int64_t s[4], p[4], l[4], h[4], b[4], w[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(w), marks);
  _mm256_store_si256(reinterpret_cast<__m256i*>(s), sum);
  _mm256_store_si256(reinterpret_cast<__m256i*>(p), present);
  _mm256_store_si256(reinterpret_cast<__m256i*>(l), lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(h), hi);
  _mm256_store_si256(reinterpret_cast<__m256i*>(b), bad);
  IdStretch acc;
  for (int j = 0; j < 4; ++j) {
    acc.sum = wrapping_add(acc.sum, s[j]);
    acc.present += p[j];
    acc.lo = l[j] < acc.lo ? l[j] : acc.lo;
    acc.hi = h[j] > acc.hi ? h[j] : acc.hi;
    acc.out_of_range = acc.out_of_range || b[j] != 0;
    acc.low_marks |= static_cast<uint64_t>(w[j]);
  }
  store_ids_tail(src, valid, k, n, card, dst, acc);
  return acc;
}

}  // namespace bluewhale
