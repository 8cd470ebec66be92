#include "data/id_kernels.h"

namespace bluewhale {

IdStretch store_ids_scalar(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst) {
  IdStretch acc;
  store_ids_tail(src, valid, 0, n, card, dst, acc);
  return acc;
}

StoreIdsFn store_ids_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512:
      return store_ids_avx512;
    case SimdLevel::kAvx2:
      return store_ids_avx2;
    case SimdLevel::kScalar:
      break;
  }
  return store_ids_scalar;
}

}  // namespace bluewhale
