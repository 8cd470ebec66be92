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

const float* log1p_small_table() { return Log1pTable::instance().data(); }

Log1pColumnFn log1p_column_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return log1p_column_avx512;
    case SimdLevel::kAvx2:
      return log1p_column_avx2;
    case SimdLevel::kScalar:
      break;
  }
  return log1p_column_scalar;
}

FillNanFn fill_nan_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return fill_nan_avx512;
    case SimdLevel::kAvx2:
      return fill_nan_avx2;
    case SimdLevel::kScalar:
      break;
  }
  return fill_nan_scalar;
}

ClipFn clip_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return clip_avx512;
    case SimdLevel::kAvx2:
      return clip_avx2;
    case SimdLevel::kScalar:
      break;
  }
  return clip_scalar;
}

CountNanFn count_nan_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return count_nan_avx512;
    case SimdLevel::kAvx2:
      return count_nan_avx2;
    case SimdLevel::kScalar:
      break;
  }
  return count_nan_scalar;
}

}  // namespace bluewhale::prep_ops
