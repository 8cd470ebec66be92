// Per-ISA distance kernels behind recall/distance.h and the indexes. One set per translation unit, each
// compiled for its ISA; kernels_for() is the single dispatch point.
#pragma once

#include <cstdint>

#include "bluewhale/core/cpu.h"

namespace bluewhale::recall_detail {

// a, b: (dim). Returns the distance as defined in distance.h (neg_dot = -<a, b>).
using PairFn = float (*)(const float* a, const float* b, int64_t dim);
// Scalar-quantised distance: x_j = lo[j] + code[j] * step[j]; returns |q - x|^2 (l2) or -<q, x> (ip).
using Sq8Fn = float (*)(const float* q, const uint8_t* code, const float* lo, const float* step, int64_t dim);

// Exact search selection over one row of GEMM products p (n): d_j = norms[j] - 2 p_j (norms != nullptr,
// squared L2 without |q|^2) or -p_j. Writes the j with d_j < thr and their d_j to idx/dist (n slots each)
// and returns how many; the caller pushes them into its top-k (which re-checks the moving threshold).
using BelowFn = int64_t (*)(const float* p, const float* norms, int64_t n, float thr, uint32_t* idx, float* dist);

struct Kernels {
  PairFn l2_sq;
  PairFn dot;
  PairFn neg_dot;
  Sq8Fn sq8_l2_sq;
  Sq8Fn sq8_neg_dot;
  BelowFn below;
};

const Kernels& scalar_kernels();
const Kernels& avx2_kernels();    // only when detected_simd_level() >= kAvx2
const Kernels& avx512_kernels();  // only when detected_simd_level() >= kAvx512
const Kernels& kernels_for(SimdLevel level);

}  // namespace bluewhale::recall_detail
