// Run-time SIMD dispatch. Shipped binaries target baseline x86-64; kernels that gain from wider vectors
// have one translation unit per ISA level (files named *_avx2.cpp / *_avx512.cpp are compiled with the
// matching -m flags by CMake) plus a scalar version, and pick one at run time through simd_level().
#pragma once

#include <string_view>

namespace bluewhale {

enum class SimdLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The best level this CPU and OS support (AVX2 needs FMA too; AVX-512 needs F, BW, DQ, VL and OS support
// for the ZMM state).
SimdLevel detected_simd_level();

// The level kernels should use: the detected one, lowered by the environment variable BW_SIMD
// (scalar | avx2 | avx512; a level above the detected one is ignored) or by set_simd_level().
SimdLevel simd_level();

// Caps the level for the rest of the process (tests run every kernel at every level this way). Returns
// the level now in force (never above detected_simd_level()).
SimdLevel set_simd_level(SimdLevel level);

std::string_view simd_level_name(SimdLevel level);

// The version of a kernel for a level, from its scalar, AVX2 and AVX-512 versions: the one dispatch
// switch of the `X_for(SimdLevel)` functions.
template <class Fn>
Fn simd_pick(SimdLevel level, Fn scalar, Fn avx2, Fn avx512) {
  switch (level) {
    case SimdLevel::kAvx512:
      return avx512;
    case SimdLevel::kAvx2:
      return avx2;
    case SimdLevel::kScalar:
      break;
  }
  return scalar;
}

}  // namespace bluewhale
