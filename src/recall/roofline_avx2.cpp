// The AVX2 FMA throughput probe behind roofline.h (compiled with -mavx2 -mfma).
#include <immintrin.h>

#include <cstdint>

namespace bluewhale::recall_detail {

// Ten independent accumulators: two FMA ports x 4-5 cycles latency need at least 8-10 chains in flight.
float fma_loop_avx2(int64_t iters, float seed) {
  __m256 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(seed + float(i));
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 10; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  __m256 s = a[0];
  for (int i = 1; i < 10; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0];
}

}  // namespace bluewhale::recall_detail
