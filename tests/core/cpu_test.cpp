#include "bluewhale/core/cpu.h"

#include <gtest/gtest.h>

namespace bluewhale {
namespace {

TEST(SimdLevel, CanBeLoweredButNeverRaisedAboveTheCpu) {
  SimdLevel detected = detected_simd_level();
  EXPECT_LE(simd_level(), detected);
  EXPECT_EQ(set_simd_level(SimdLevel::kScalar), SimdLevel::kScalar);
  EXPECT_EQ(simd_level(), SimdLevel::kScalar);
  EXPECT_EQ(set_simd_level(SimdLevel::kAvx512), detected);
  EXPECT_EQ(simd_level(), detected);
  EXPECT_EQ(simd_level_name(SimdLevel::kAvx2), "avx2");
}

}  // namespace
}  // namespace bluewhale
