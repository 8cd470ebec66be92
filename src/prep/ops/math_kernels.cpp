#include "prep/ops/math_kernels.h"

#include <cmath>

#include "prep/ops/fast_math.h"

namespace bluewhale::prep_ops {

bool log1p_column_scalar(float* x, std::size_t n) {
  const Log1pTable& log1p = Log1pTable::instance();
  bool negative = false;
  for (std::size_t k = 0; k < n; ++k) {
    if (x[k] >= 0.0f) x[k] = log1p(x[k]);
    negative = negative || x[k] < 0.0f;
  }
  return negative;
}

void fill_nan_scalar(float* x, std::size_t n, float v) {
  for (std::size_t k = 0; k < n; ++k) x[k] = std::isnan(x[k]) ? v : x[k];
}

void clip_scalar(float* x, std::size_t n, float lo, float hi) {
  for (std::size_t k = 0; k < n; ++k) {
    const float y = x[k] < lo ? lo : x[k];  // false for NaN: stays
    x[k] = y > hi ? hi : y;
  }
}

int64_t count_nan_scalar(const float* x, std::size_t n) {
  int64_t c = 0;
  for (std::size_t k = 0; k < n; ++k) c += std::isnan(x[k]) ? 1 : 0;
  return c;
}

const float* log1p_small_table() {
  return Log1pTable::instance().data();
}

Log1pColumnFn log1p_column_for(SimdLevel level) {
  return simd_pick(level, log1p_column_scalar, log1p_column_avx2, log1p_column_avx512);
}

FillNanFn fill_nan_for(SimdLevel level) {
  return simd_pick(level, fill_nan_scalar, fill_nan_avx2, fill_nan_avx512);
}

ClipFn clip_for(SimdLevel level) {
  return simd_pick(level, clip_scalar, clip_avx2, clip_avx512);
}

CountNanFn count_nan_for(SimdLevel level) {
  return simd_pick(level, count_nan_scalar, count_nan_avx2, count_nan_avx512);
}

}  // namespace bluewhale::prep_ops
