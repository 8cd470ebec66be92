// Private to the dataset writer: storing a stretch of categorical ids (int64 in a Chunk, int32 in a
// shard) with the statistics meta.json reports, one version per ISA level (id_kernels.cpp: scalar,
// id_kernels_avx2.cpp, id_kernels_avx512.cpp), picked through simd_level() (core/cpu.h).
//
// Why kernels: the writer appends every id of every row on its one thread, and with a branch-free scalar
// loop that was ~3 ns per id (13 instructions; no 64-bit min/max below AVX-512), a tenth of a Criteo
// prep run's CPU on a 2-core machine where that thread competes with the parsers.
#pragma once

#include <cstdint>

#include "bluewhale/core/cpu.h"

namespace bluewhale {

// What store_ids learns of a stretch: over its present values (valid[k] != 0, or all when valid is
// null) the sum (modulo 2^64: exact whenever no value is out of range), the count, the smallest and
// largest (INT64_MAX / INT64_MIN when none is present); whether any stored value (missing ones
// store 0) is >= card as an unsigned number; and which present values below 64 occur (bit v of
// low_marks for value v): the distinct ids of a column of at most 64 ids, for free in the vector loop
// (a byte map store per id cost ~2 cycles).
struct IdStretch {
  int64_t sum = 0, present = 0;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  uint64_t low_marks = 0;
  bool out_of_range = false;
};

// For k < n: dst[k] = (int32_t) (present ? src[k] : 0). valid may be null (all present).
using StoreIdsFn = IdStretch (*)(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst);

IdStretch store_ids_scalar(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst);
IdStretch store_ids_avx2(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst);
IdStretch store_ids_avx512(const int64_t* src, const uint8_t* valid, int64_t n, uint64_t card, int32_t* dst);

// The kernel for a level (scalar for kScalar).
StoreIdsFn store_ids_for(SimdLevel level);

// a + b modulo 2^64 (no signed overflow, whatever the values).
inline int64_t wrapping_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}

// The scalar loop over [begin, n), continuing `acc`: the vector kernels' tails.
inline void store_ids_tail(const int64_t* src, const uint8_t* valid, int64_t begin, int64_t n, uint64_t card,
                           int32_t* dst, IdStretch& acc) {
  for (int64_t k = begin; k < n; ++k) {
    const int64_t m = valid ? (valid[k] != 0) : 1;  // 1: present
    const int64_t v = src[k] & -m;
    acc.out_of_range |= static_cast<uint64_t>(v) >= card;
    dst[k] = static_cast<int32_t>(v);
    acc.sum = wrapping_add(acc.sum, v);
    acc.present += m;
    acc.lo = m && v < acc.lo ? v : acc.lo;
    acc.hi = m && v > acc.hi ? v : acc.hi;
    acc.low_marks |= static_cast<uint64_t>(m & (static_cast<uint64_t>(v) < 64)) << (v & 63);
  }
}

}  // namespace bluewhale
