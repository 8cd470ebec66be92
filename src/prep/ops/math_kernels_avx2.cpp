// log1p_column for AVX2: eight floats per step, as the AVX-512 version (table gathers for whole numbers,
// the double evaluation four lanes at a time for the rest). AVX2 has no int64 -> double conversion: the
// exponent becomes a double through the 2^52 bias (exact for small integers), then loses its 1023 bias.
#include <immintrin.h>

#include "prep/ops/fast_math.h"
#include "prep/ops/math_kernels.h"

namespace bluewhale::prep_ops {
namespace {

// log1p_nonneg (fast_math.h) of four doubles that are >= 0.
__m256d log1p_pd(__m256d x) {
  const __m256d one = _mm256_set1_pd(1.0);
  const __m256d taylor = _mm256_mul_pd(
      x, _mm256_sub_pd(one, _mm256_mul_pd(x, _mm256_sub_pd(_mm256_set1_pd(0.5), _mm256_mul_pd(x, _mm256_set1_pd(1.0 / 3.0))))));
  const __m256i bits = _mm256_castpd_si256(_mm256_add_pd(one, x));
  __m256i biased = _mm256_and_si256(_mm256_srli_epi64(bits, 52), _mm256_set1_epi64x(0x7ff));
  __m256d m = _mm256_castsi256_pd(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi64x(0x000fffffffffffffLL)),
                                                  _mm256_set1_epi64x(0x3ff0000000000000LL)));
  const __m256d big = _mm256_cmp_pd(m, _mm256_set1_pd(1.4142135623730951), _CMP_GT_OQ);
  m = _mm256_blendv_pd(m, _mm256_mul_pd(m, _mm256_set1_pd(0.5)), big);
  biased = _mm256_sub_epi64(biased, _mm256_castpd_si256(big));  // big lanes are all ones: + 1
  const __m256d two52 = _mm256_set1_pd(4503599627370496.0);
  const __m256d e = _mm256_sub_pd(
      _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(biased, _mm256_castpd_si256(two52))), two52),
      _mm256_set1_pd(1023.0));
  const __m256d s = _mm256_div_pd(_mm256_sub_pd(m, one), _mm256_add_pd(m, one));
  const __m256d s2 = _mm256_mul_pd(s, s);
  __m256d p = _mm256_set1_pd(1.0 / 13);
  for (const double c : {1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0})
    p = _mm256_add_pd(_mm256_set1_pd(c), _mm256_mul_pd(s2, p));
  __m256d r = _mm256_add_pd(_mm256_mul_pd(e, _mm256_set1_pd(0.69314718055994530942)),
                            _mm256_mul_pd(_mm256_mul_pd(_mm256_set1_pd(2.0), s), p));
  r = _mm256_blendv_pd(r, taylor, _mm256_cmp_pd(x, _mm256_set1_pd(1e-4), _CMP_LT_OQ));
  return _mm256_blendv_pd(r, x, _mm256_cmp_pd(x, _mm256_set1_pd(1e300), _CMP_NLT_UQ));  // +inf stays
}

}  // namespace

bool log1p_column_avx2(float* x, std::size_t n) {
  const float* table = log1p_small_table();
  const Log1pTable& log1p = Log1pTable::instance();
  const __m256 zero = _mm256_setzero_ps(), size = _mm256_set1_ps(static_cast<float>(Log1pTable::kSize));
  int negative = 0;
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 v = _mm256_loadu_ps(x + k);
    const __m256 ok = _mm256_cmp_ps(v, zero, _CMP_GE_OQ);  // NaN: false
    negative |= _mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ));
    const __m256i i = _mm256_cvttps_epi32(v);
    const __m256 hit = _mm256_and_ps(_mm256_and_ps(ok, _mm256_cmp_ps(v, size, _CMP_LT_OQ)),
                                     _mm256_cmp_ps(_mm256_cvtepi32_ps(i), v, _CMP_EQ_OQ));
    __m256 r = _mm256_mask_i32gather_ps(v, table, i, hit, 4);
    const __m256 rest = _mm256_andnot_ps(hit, ok);
    if (_mm256_movemask_ps(rest)) {
      const __m128 lo = _mm256_cvtpd_ps(log1p_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v))));
      const __m128 hi = _mm256_cvtpd_ps(log1p_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
      r = _mm256_blendv_ps(r, _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1), rest);
    }
    _mm256_storeu_ps(x + k, r);
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
void clip_avx2(float* x, std::size_t n, float lo, float hi) {
  const __m256 l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) _mm256_storeu_ps(x + k, _mm256_min_ps(h, _mm256_max_ps(l, _mm256_loadu_ps(x + k))));
  clip_scalar(x + k, n - k, lo, hi);
}

void fill_nan_avx2(float* x, std::size_t n, float v) {
  const __m256 fill = _mm256_set1_ps(v);
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 a = _mm256_loadu_ps(x + k);
    _mm256_storeu_ps(x + k, _mm256_blendv_ps(a, fill, _mm256_cmp_ps(a, a, _CMP_UNORD_Q)));
  }
  fill_nan_scalar(x + k, n - k, v);
}

int64_t count_nan_avx2(const float* x, std::size_t n) {
  int64_t c = 0;
  std::size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 a = _mm256_loadu_ps(x + k);
    c += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q))));
  }
  return c + count_nan_scalar(x + k, n - k);
}

}  // namespace bluewhale::prep_ops
