#include "prep/ops/math_kernels.h"

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

}  // namespace bluewhale::prep_ops
