// AVX2/FMA micro-kernel of the fused exact search (compiled with -mavx2 -mfma; called only when the CPU
// has them). See exact_search.h for the blocking around it.
#include <immintrin.h>

#include <cstdint>

#include "recall/exact_search.h"

namespace bluewhale::recall_detail {
namespace {

// A tile is 6 rows x 16 queries: 12 ymm accumulators, 2 for the query vectors and 1 for the broadcast
// row value, 15 of the 16 registers. Per dimension step 12 FMAs against 6 broadcasts and 2 loads; 12
// independent chains cover the FMA latency (4-5 cycles) on two pipes.
constexpr int kLanes = 16;
constexpr int kTileRows = 6;

inline void emit(const ExactBlockArgs& a, unsigned mask, __m256 d, int lane0, int64_t row) {
  alignas(32) float v[8];
  _mm256_store_ps(v, d);
  for (unsigned m = mask; m; m &= m - 1) {
    const int l = __builtin_ctz(m);
    const int lane = lane0 + l;
    const int64_t at = int64_t(lane) * a.n_rows + a.count[lane]++;
    a.cand_row[at] = uint32_t(row);
    a.cand_dist[at] = v[l];
  }
}

template <int R>
inline void tile(const ExactBlockArgs& a, int64_t row0) {
  __m256 acc0[R], acc1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  const float* x = a.rows + row0 * a.dim;
  const int64_t dim = a.dim;
  const float* p = a.panel;
  for (int64_t k = 0; k < dim; ++k, p += kLanes) {
    const __m256 q0 = _mm256_load_ps(p), q1 = _mm256_load_ps(p + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_broadcast_ss(x + r * dim + k);
      acc0[r] = _mm256_fmadd_ps(xv, q0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(xv, q1, acc1[r]);
    }
  }
  const __m256 scale = _mm256_set1_ps(a.scale);
  const __m256 thr0 = _mm256_loadu_ps(a.thr), thr1 = _mm256_loadu_ps(a.thr + 8);
  unsigned m0[R], m1[R];
  unsigned any = 0;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m256 b = _mm256_broadcast_ss(a.bias + row0 + r);
    acc0[r] = _mm256_fmadd_ps(acc0[r], scale, b);
    acc1[r] = _mm256_fmadd_ps(acc1[r], scale, b);
    m0[r] = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(acc0[r], thr0, _CMP_LT_OQ)));
    m1[r] = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(acc1[r], thr1, _CMP_LT_OQ)));
    any |= m0[r] | m1[r];
  }
  // Unrolled like the loops above: an indexed access here would make GCC keep the accumulator arrays in
  // memory and store them on every dimension step.
  if (__builtin_expect(any != 0, 0)) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      if (m0[r]) emit(a, m0[r], acc0[r], 0, row0 + r);
      if (m1[r]) emit(a, m1[r], acc1[r], 8, row0 + r);
    }
  }
}

void block_avx2(const ExactBlockArgs& a) {
  int64_t r = 0;
  for (; r + kTileRows <= a.n_rows; r += kTileRows) tile<kTileRows>(a, r);
  switch (a.n_rows - r) {
    case 5: tile<5>(a, r); break;
    case 4: tile<4>(a, r); break;
    case 3: tile<3>(a, r); break;
    case 2: tile<2>(a, r); break;
    case 1: tile<1>(a, r); break;
    default: break;
  }
}

}  // namespace

const ExactKernel& exact_kernel_avx2() {
  static const ExactKernel k{kLanes, kTileRows, block_avx2};
  return k;
}

}  // namespace bluewhale::recall_detail
