// AVX-512 distance kernels (compiled with -mavx512f/bw/dq/vl; called only when the CPU has them).
#include <immintrin.h>

// GCC 12's own AVX-512 headers start some intrinsics (reduce, extract, cvtepu8) from an undefined
// register, which -Wuninitialized flags inside the header; the values are fully overwritten.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "recall/distance_kernels.h"

namespace bluewhale::recall_detail {
namespace {

// Lanes [0, n) set, n <= 16: masked loads handle every tail without reading past the vector.
inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

float l2_sq_avx512(const float* a, const float* b, int64_t dim) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32));
    __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48));
    s0 = _mm512_fmadd_ps(d0, d0, s0);
    s1 = _mm512_fmadd_ps(d1, d1, s1);
    s2 = _mm512_fmadd_ps(d2, d2, s2);
    s3 = _mm512_fmadd_ps(d3, d3, s3);
  }
  for (; i + 16 <= dim; i += 16) {
    __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    s0 = _mm512_fmadd_ps(d, d, s0);
  }
  if (i < dim) {
    __mmask16 m = tail_mask(dim - i);
    __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s1 = _mm512_fmadd_ps(d, d, s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float dot_avx512(const float* a, const float* b, int64_t dim) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= dim; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= dim; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < dim) {
    __mmask16 m = tail_mask(dim - i);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float neg_dot_avx512(const float* a, const float* b, int64_t dim) { return -dot_avx512(a, b, dim); }

template <bool kL2>
float sq8_avx512(const float* q, const uint8_t* code, const float* lo, const float* step, int64_t dim) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t i = 0; i < dim; i += 16) {
    const __mmask16 m = dim - i >= 16 ? __mmask16(0xFFFF) : tail_mask(dim - i);
    __m512 c = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, code + i)));
    __m512 x = _mm512_fmadd_ps(c, _mm512_maskz_loadu_ps(m, step + i), _mm512_maskz_loadu_ps(m, lo + i));
    __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
    if constexpr (kL2) {
      __m512 d = _mm512_sub_ps(qv, x);
      s = _mm512_fmadd_ps(d, d, s);
    } else {
      s = _mm512_fmadd_ps(qv, x, s);
    }
  }
  float r = _mm512_reduce_add_ps(s);
  return kL2 ? r : -r;
}

int64_t below_avx512(const float* p, const float* norms, int64_t n, float thr, uint32_t* idx, float* dist) {
  const __m512 t = _mm512_set1_ps(thr), two = _mm512_set1_ps(2.0f), zero = _mm512_setzero_ps();
  int64_t c = 0;
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF) : tail_mask(n - j);
    const __m512 pv = _mm512_maskz_loadu_ps(m, p + j);
    const __m512 d = norms ? _mm512_fnmadd_ps(two, pv, _mm512_maskz_loadu_ps(m, norms + j)) : _mm512_sub_ps(zero, pv);
    unsigned mask = _mm512_mask_cmp_ps_mask(m, d, t, _CMP_LT_OQ);
    if (mask) {
      float buf[16];
      _mm512_storeu_ps(buf, d);
      while (mask) {
        const int b = __builtin_ctz(mask);
        idx[c] = uint32_t(j + b);
        dist[c++] = buf[b];
        mask &= mask - 1;
      }
    }
  }
  return c;
}

}  // namespace

const Kernels& avx512_kernels() {
  static const Kernels k{l2_sq_avx512, dot_avx512, neg_dot_avx512, sq8_avx512<true>, sq8_avx512<false>, below_avx512};
  return k;
}

}  // namespace bluewhale::recall_detail
