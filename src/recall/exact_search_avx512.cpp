// AVX-512 micro-kernel of the fused exact search (compiled with -mavx512f/bw/dq/vl; called only when the
// CPU has them). See exact_search.h for the blocking around it.
#include <immintrin.h>

#include <cstdint>

#include "recall/exact_search.h"

namespace bluewhale::recall_detail {
namespace {

// A tile is 12 rows x 32 queries: 24 zmm accumulators, 2 for the query vectors of the current dimension
// and 1 for the broadcast row value, 27 of the 32 registers. Per dimension step: 24 FMAs against 12
// broadcasts and 2 loads, so the two FMA pipes, not the load ports, set the pace; with 24 independent
// chains the 4-cycle FMA latency is covered several times over.
constexpr int kLanes = 32;
constexpr int kTileRows = 12;

// Every lane of lanes (mask) of row `row` beats its threshold: append it to the lane's candidates.
inline void emit(const ExactBlockArgs& a, __mmask16 mask, __m512 d, int lane0, int64_t row) {
  alignas(64) float v[16];
  _mm512_store_ps(v, d);
  for (unsigned m = mask; m; m &= m - 1) {
    const int l = __builtin_ctz(m);
    const int lane = lane0 + l;
    const int64_t at = int64_t(lane) * a.n_rows + a.count[lane]++;
    a.cand_row[at] = uint32_t(row);
    a.cand_dist[at] = v[l];
  }
}

template <int R>
inline void tile(const ExactBlockArgs& a, int64_t row0, __m512 thr0, __m512 thr1) {
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  const float* x = a.rows + row0 * a.dim;
  const int64_t dim = a.dim;
  const float* p = a.panel;
  for (int64_t k = 0; k < dim; ++k, p += kLanes) {
    // Once per cache line of each row, fetch the line three ahead: the 12 row streams are more than the
    // hardware prefetchers follow reliably, and the first query panel reads them from memory.
    if ((k & 15) == 0) {
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) _mm_prefetch(reinterpret_cast<const char*>(x + r * dim + k + 48), _MM_HINT_T0);
    }
    const __m512 q0 = _mm512_load_ps(p), q1 = _mm512_load_ps(p + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r * dim + k]);
      acc0[r] = _mm512_fmadd_ps(xv, q0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(xv, q1, acc1[r]);
    }
  }
  // Distances and the threshold test stay in registers; only rows that beat a threshold are written.
  const __m512 scale = _mm512_set1_ps(a.scale);
  __mmask16 m0[R], m1[R];
  __mmask16 any = 0;
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 b = _mm512_set1_ps(a.bias[row0 + r]);
    acc0[r] = _mm512_fmadd_ps(acc0[r], scale, b);
    acc1[r] = _mm512_fmadd_ps(acc1[r], scale, b);
    m0[r] = _mm512_cmp_ps_mask(acc0[r], thr0, _CMP_LT_OQ);
    m1[r] = _mm512_cmp_ps_mask(acc1[r], thr1, _CMP_LT_OQ);
    any = __mmask16(any | m0[r] | m1[r]);
  }
  // Unrolled like the loops above: an indexed access here would make GCC keep the accumulator arrays in
  // memory and store them on every dimension step.
  if (__builtin_expect(any != 0, 0)) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      if (m0[r]) emit(a, m0[r], acc0[r], 0, row0 + r);
      if (m1[r]) emit(a, m1[r], acc1[r], 16, row0 + r);
    }
  }
}

void block_avx512(const ExactBlockArgs& a) {
  const __m512 thr0 = _mm512_loadu_ps(a.thr), thr1 = _mm512_loadu_ps(a.thr + 16);
  int64_t r = 0;
  for (; r + kTileRows <= a.n_rows; r += kTileRows) tile<kTileRows>(a, r, thr0, thr1);
  switch (a.n_rows - r) {
    case 11: tile<11>(a, r, thr0, thr1); break;
    case 10: tile<10>(a, r, thr0, thr1); break;
    case 9: tile<9>(a, r, thr0, thr1); break;
    case 8: tile<8>(a, r, thr0, thr1); break;
    case 7: tile<7>(a, r, thr0, thr1); break;
    case 6: tile<6>(a, r, thr0, thr1); break;
    case 5: tile<5>(a, r, thr0, thr1); break;
    case 4: tile<4>(a, r, thr0, thr1); break;
    case 3: tile<3>(a, r, thr0, thr1); break;
    case 2: tile<2>(a, r, thr0, thr1); break;
    case 1: tile<1>(a, r, thr0, thr1); break;
    default: break;
  }
}

}  // namespace

const ExactKernel& exact_kernel_avx512() {
  static const ExactKernel k{kLanes, kTileRows, block_avx512};
  return k;
}

}  // namespace bluewhale::recall_detail
