// AVX2 + FMA distance kernels (compiled with -mavx2 -mfma; called only when the CPU has them).
#include <immintrin.h>

#include "recall/distance_kernels.h"

namespace bluewhale::recall_detail {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Lanes [0, n) set, n < 8: the masked load never reads past the end of a vector.
inline __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Four accumulators hide the 4-cycle FMA latency (two FMA ports x 4 cycles would want 8, but 128-dim
// vectors are only 16 loads, so the loop is load-bound long before that).
float l2_sq_avx2(const float* a, const float* b, int64_t dim) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
    __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
    s2 = _mm256_fmadd_ps(d2, d2, s2);
    s3 = _mm256_fmadd_ps(d3, d3, s3);
  }
  for (; i + 8 <= dim; i += 8) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    s0 = _mm256_fmadd_ps(d, d, s0);
  }
  if (i < dim) {
    __m256i m = tail_mask(dim - i);
    __m256 d = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
    s1 = _mm256_fmadd_ps(d, d, s1);
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

float dot_avx2(const float* a, const float* b, int64_t dim) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= dim; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  if (i < dim) {
    __m256i m = tail_mask(dim - i);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
  }
  return hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

float neg_dot_avx2(const float* a, const float* b, int64_t dim) { return -dot_avx2(a, b, dim); }

// Eight codes widen to eight floats per step; the tail goes through a zero-padded copy because there is
// no masked byte load in AVX2.
inline __m256 decode8(const uint8_t* code, const float* lo, const float* step, __m256i m) {
  __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(code))));
  return _mm256_fmadd_ps(c, _mm256_maskload_ps(step, m), _mm256_maskload_ps(lo, m));
}

template <bool kL2>
float sq8_avx2(const float* q, const uint8_t* code, const float* lo, const float* step, int64_t dim) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  const __m256i all = _mm256_set1_epi32(-1);
  int64_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    __m256 x = decode8(code + i, lo + i, step + i, all);
    __m256 qv = _mm256_loadu_ps(q + i);
    if constexpr (kL2) {
      __m256 d = _mm256_sub_ps(qv, x);
      s0 = _mm256_fmadd_ps(d, d, s0);
    } else {
      s0 = _mm256_fmadd_ps(qv, x, s0);
    }
  }
  if (i < dim) {
    uint8_t pad[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t j = i; j < dim; ++j) pad[j - i] = code[j];
    __m256i m = tail_mask(dim - i);
    __m256 x = decode8(pad, lo + i, step + i, m);
    __m256 qv = _mm256_maskload_ps(q + i, m);
    if constexpr (kL2) {
      __m256 d = _mm256_sub_ps(qv, x);
      s1 = _mm256_fmadd_ps(d, d, s1);
    } else {
      s1 = _mm256_fmadd_ps(qv, x, s1);
    }
  }
  float s = hsum(_mm256_add_ps(s0, s1));
  return kL2 ? s : -s;
}

// Eight distances per step and one movemask: in a scan almost every lane is above the threshold, so the
// branch is almost never taken and the loop runs at load throughput.
int64_t below_avx2(const float* p, const float* norms, int64_t n, float thr, uint32_t* idx, float* dist) {
  const __m256 t = _mm256_set1_ps(thr), two = _mm256_set1_ps(2.0f), zero = _mm256_setzero_ps();
  int64_t c = 0, j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 pv = _mm256_loadu_ps(p + j);
    const __m256 d = norms ? _mm256_fnmadd_ps(two, pv, _mm256_loadu_ps(norms + j)) : _mm256_sub_ps(zero, pv);
    int mask = _mm256_movemask_ps(_mm256_cmp_ps(d, t, _CMP_LT_OQ));
    if (mask) {
      float buf[8];
      _mm256_storeu_ps(buf, d);
      while (mask) {
        const int b = __builtin_ctz(unsigned(mask));
        idx[c] = uint32_t(j + b);
        dist[c++] = buf[b];
        mask &= mask - 1;
      }
    }
  }
  for (; j < n; ++j) {
    const float d = norms ? norms[j] - 2.0f * p[j] : -p[j];
    if (d < thr) {
      idx[c] = uint32_t(j);
      dist[c++] = d;
    }
  }
  return c;
}

}  // namespace

const Kernels& avx2_kernels() {
  static const Kernels k{l2_sq_avx2, dot_avx2, neg_dot_avx2, sq8_avx2<true>, sq8_avx2<false>, below_avx2};
  return k;
}

}  // namespace bluewhale::recall_detail
