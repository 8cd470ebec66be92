// log1p_column for AVX-512: sixteen floats per step. Whole numbers below Log1pTable::kSize (most of a
// count feature's values) are gathered from the table; the others, when a step has any, go through the
// double-precision evaluation of log1p_nonneg eight lanes at a time, in its order of operations.
#include <immintrin.h>

// GCC 12's AVX-512 headers pass _mm512_undefined_*() as the merge source of masked builtins, which
// -Wmaybe-uninitialized (here also -Wuninitialized) reports at every inlined use (GCC bug 105593);
// nothing here is uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "prep/ops/fast_math.h"
#include "prep/ops/math_kernels.h"

namespace bluewhale::prep_ops {
namespace {

// log1p_nonneg (fast_math.h) of eight doubles that are >= 0.
__m512d log1p_pd(__m512d x) {
  const __m512d one = _mm512_set1_pd(1.0);
  const __m512d taylor = _mm512_mul_pd(
      x, _mm512_sub_pd(one, _mm512_mul_pd(x, _mm512_sub_pd(_mm512_set1_pd(0.5), _mm512_mul_pd(x, _mm512_set1_pd(1.0 / 3.0))))));
  const __m512i bits = _mm512_castpd_si512(_mm512_add_pd(one, x));
  __m512i e = _mm512_sub_epi64(_mm512_and_si512(_mm512_srli_epi64(bits, 52), _mm512_set1_epi64(0x7ff)),
                               _mm512_set1_epi64(1023));
  __m512d m = _mm512_castsi512_pd(_mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi64(0x000fffffffffffffLL)),
                                                  _mm512_set1_epi64(0x3ff0000000000000LL)));
  const __mmask8 big = _mm512_cmp_pd_mask(m, _mm512_set1_pd(1.4142135623730951), _CMP_GT_OQ);
  m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
  e = _mm512_mask_add_epi64(e, big, e, _mm512_set1_epi64(1));
  const __m512d s = _mm512_div_pd(_mm512_sub_pd(m, one), _mm512_add_pd(m, one));
  const __m512d s2 = _mm512_mul_pd(s, s);
  __m512d p = _mm512_set1_pd(1.0 / 13);
  for (const double c : {1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0})
    p = _mm512_add_pd(_mm512_set1_pd(c), _mm512_mul_pd(s2, p));
  __m512d r = _mm512_add_pd(_mm512_mul_pd(_mm512_cvtepi64_pd(e), _mm512_set1_pd(0.69314718055994530942)),
                            _mm512_mul_pd(_mm512_mul_pd(_mm512_set1_pd(2.0), s), p));
  r = _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, _mm512_set1_pd(1e-4), _CMP_LT_OQ), r, taylor);
  return _mm512_mask_blend_pd(_mm512_cmp_pd_mask(x, _mm512_set1_pd(1e300), _CMP_NLT_UQ), r, x);  // +inf stays
}

}  // namespace

bool log1p_column_avx512(float* x, std::size_t n) {
  const float* table = log1p_small_table();
  const Log1pTable& log1p = Log1pTable::instance();
  const __m512 zero = _mm512_setzero_ps(), size = _mm512_set1_ps(static_cast<float>(Log1pTable::kSize));
  __mmask16 negative = 0;
  std::size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 v = _mm512_loadu_ps(x + k);
    const __mmask16 ok = _mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ);  // NaN: false
    negative |= _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ);
    const __m512i i = _mm512_cvttps_epi32(v);
    const __mmask16 hit = ok & _mm512_cmp_ps_mask(v, size, _CMP_LT_OQ) &
                          _mm512_cmp_ps_mask(_mm512_cvtepi32_ps(i), v, _CMP_EQ_OQ);
    __m512 r = _mm512_mask_i32gather_ps(v, hit, i, table, 4);
    const __mmask16 rest = ok & static_cast<__mmask16>(~hit);
    if (rest) {
      const __m256 lo = _mm512_cvtpd_ps(log1p_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v))));
      const __m256 hi = _mm512_cvtpd_ps(log1p_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1))));
      r = _mm512_mask_blend_ps(rest, r, _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
    }
    _mm512_storeu_ps(x + k, r);
  }
  bool any = negative != 0;
  for (; k < n; ++k) {
    if (x[k] >= 0.0f) x[k] = log1p(x[k]);
    any = any || x[k] < 0.0f;
  }
  return any;
}

// max(lo, x) and min(hi, x) return their second operand when either is NaN, and x on a tie: the
// comparisons of clip_scalar, NaN passing through.
void clip_avx512(float* x, std::size_t n, float lo, float hi) {
  const __m512 l = _mm512_set1_ps(lo), h = _mm512_set1_ps(hi);
  std::size_t k = 0;
  for (; k + 16 <= n; k += 16) _mm512_storeu_ps(x + k, _mm512_min_ps(h, _mm512_max_ps(l, _mm512_loadu_ps(x + k))));
  clip_scalar(x + k, n - k, lo, hi);
}

void fill_nan_avx512(float* x, std::size_t n, float v) {
  const __m512 fill = _mm512_set1_ps(v);
  std::size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 a = _mm512_loadu_ps(x + k);
    _mm512_storeu_ps(x + k, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a, fill));
  }
  fill_nan_scalar(x + k, n - k, v);
}

int64_t count_nan_avx512(const float* x, std::size_t n) {
  int64_t c = 0;
  std::size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 a = _mm512_loadu_ps(x + k);
    c += __builtin_popcount(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q));
  }
  return c + count_nan_scalar(x + k, n - k);
}

}  // namespace bluewhale::prep_ops
