#include "data/id_kernels.h"

namespace bluewhale {

IdStretch store_ids_scalar(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst) {
  IdStretch acc;
  store_ids_tail(src, valid, 0, n, card, dst, acc);
  return acc;
}

StoreIdsFn store_ids_for(SimdLevel level) {
  return simd_pick(level, store_ids_scalar, store_ids_avx2, store_ids_avx512);
}

}  // namespace bluewhale
