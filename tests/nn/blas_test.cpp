#include "bluewhale/nn/blas.h"

#include <gtest/gtest.h>

namespace bluewhale {
namespace {

TEST(Blas, CoreToRequestAsksForTheWidestKernelsTheCpuRuns) {
  // The SSE3 fallback OpenBLAS takes on a CPU model it does not know.
  EXPECT_EQ(blas_core_to_request("Prescott", SimdLevel::kAvx512), "SkylakeX");
  EXPECT_EQ(blas_core_to_request("Prescott", SimdLevel::kAvx2), "Haswell");
  EXPECT_EQ(blas_core_to_request("Nehalem", SimdLevel::kAvx2), "Haswell");
  EXPECT_EQ(blas_core_to_request("Sandybridge", SimdLevel::kAvx2), "Haswell");
  // AVX2 kernels on an AVX-512 CPU (Zen 4 with OpenBLAS 0.3.21): the 512-bit ones are faster.
  EXPECT_EQ(blas_core_to_request("Haswell", SimdLevel::kAvx512), "SkylakeX");
  EXPECT_EQ(blas_core_to_request("Zen", SimdLevel::kAvx512), "SkylakeX");
  // Already matching, in any letter case.
  EXPECT_EQ(blas_core_to_request("SkylakeX", SimdLevel::kAvx512), "");
  EXPECT_EQ(blas_core_to_request("COOPERLAKE", SimdLevel::kAvx512), "");
  EXPECT_EQ(blas_core_to_request("SapphireRapids", SimdLevel::kAvx512), "");
  EXPECT_EQ(blas_core_to_request("haswell", SimdLevel::kAvx2), "");
  EXPECT_EQ(blas_core_to_request("Zen", SimdLevel::kAvx2), "");
  // Never ask for more than the CPU has.
  EXPECT_EQ(blas_core_to_request("Prescott", SimdLevel::kScalar), "");
  EXPECT_EQ(blas_core_to_request("", SimdLevel::kScalar), "");
  EXPECT_EQ(blas_core_to_request("SkylakeX", SimdLevel::kAvx2), "");
}

TEST(Blas, ReportsTheLoadedKernels) {
  init_blas();
  EXPECT_FALSE(blas_core().empty());
}

}  // namespace
}  // namespace bluewhale
