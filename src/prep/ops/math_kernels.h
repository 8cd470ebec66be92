// Elementwise math of the prep operators over a whole column, one version per ISA level
// (math_kernels.cpp: scalar, math_kernels_avx2.cpp, math_kernels_avx512.cpp), picked through simd_level()
// (core/cpu.h). Every level gives the scalar functions' results bit for bit (fast_math.h): the vector
// code does the same double-precision operations in the same order, and the build never contracts a
// multiply and an add into an FMA (ISO C++ mode: -ffp-contract=off).
#pragma once

#include <cstddef>
#include <cstdint>

#include "bluewhale/core/cpu.h"

namespace bluewhale::prep_ops {

// x[k] = Log1pTable's log1p (log1p_nonneg, but +0 for -0) for every x[k] >= 0; NaN and negative values
// are left as they are. Returns whether any value was negative.
using Log1pColumnFn = bool (*)(float* x, std::size_t n);

bool log1p_column_avx2(float* x, std::size_t n);
bool log1p_column_avx512(float* x, std::size_t n);

// x[k] = v where x[k] is NaN (fill_missing).
using FillNanFn = void (*)(float* x, std::size_t n, float v);
// x[k] = min(hi, max(lo, x[k])), NaN staying NaN (clip with bounds that are floats).
using ClipFn = void (*)(float* x, std::size_t n, float lo, float hi);
// The number of NaN values among x[0, n) (missing-value counts).
using CountNanFn = int64_t (*)(const float* x, std::size_t n);

bool log1p_column_scalar(float* x, std::size_t n);
void fill_nan_scalar(float* x, std::size_t n, float v);
void fill_nan_avx2(float* x, std::size_t n, float v);
void fill_nan_avx512(float* x, std::size_t n, float v);
void clip_scalar(float* x, std::size_t n, float lo, float hi);
void clip_avx2(float* x, std::size_t n, float lo, float hi);
void clip_avx512(float* x, std::size_t n, float lo, float hi);
int64_t count_nan_scalar(const float* x, std::size_t n);
int64_t count_nan_avx2(const float* x, std::size_t n);
int64_t count_nan_avx512(const float* x, std::size_t n);

// The kernels for a level (scalar for kScalar).
Log1pColumnFn log1p_column_for(SimdLevel level);
FillNanFn fill_nan_for(SimdLevel level);
ClipFn clip_for(SimdLevel level);
CountNanFn count_nan_for(SimdLevel level);

// The table of Log1pTable (log1p_nonneg of 0 .. Log1pTable::kSize - 1), for the vector kernels' gathers.
const float* log1p_small_table();

}  // namespace bluewhale::prep_ops
