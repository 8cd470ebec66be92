#include "bluewhale/nn/blas.h"

#include "bluewhale/core/error.h"
#include "test_util.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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

bool openblas_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("libopenblas") != std::string::npos) return true;
  return false;
}

// Each test runs in a process of its own (ctest): this one starts with OpenBLAS not loaded, and the first
// BLAS call loads it.
TEST(Blas, LoadsOnFirstUse) {
  EXPECT_FALSE(openblas_mapped());
  EXPECT_FALSE(blas_core().empty());
  EXPECT_TRUE(openblas_mapped());
}

// The message of the IoError blas_check_library(library) throws, or "" when it throws none.
std::string check_error(const std::string& library) {
  return testing::error_of<IoError>([&] { blas_check_library(library); });
}

// A library that is not there, and one that is not OpenBLAS: errors that say which and what to do.
TEST(Blas, CheckLibraryNamesWhatIsMissing) {
  const std::string missing = check_error("/nonexistent/libopenblas.so.0");
  for (const char* part : {"cannot load OpenBLAS", "/nonexistent/libopenblas.so.0", "libopenblas0", "BW_OPENBLAS"})
    EXPECT_NE(missing.find(part), std::string::npos) << part << " not in: " << missing;
  const std::string other = check_error("libm.so.6");
  EXPECT_NE(other.find("'libm.so.6' has no 'cblas_sgemm'"), std::string::npos) << other;
  EXPECT_EQ(check_error("libopenblas.so.0"), "");
}

// Transposes as cblas_sgemm takes them, row-major, with row strides wider than the matrices and beta != 0.
TEST(Blas, SgemmRowMajorMatchesTheDefinition) {
  const int m = 5, n = 7, k = 3, lda = 9, ldb = 11, ldc = 8;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      std::vector<float> a(16 * lda), b(16 * ldb), c(m * ldc), want(m * ldc);
      for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 7) % 13) - 6.f;
      for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 5) % 11) - 5.f;
      for (std::size_t i = 0; i < c.size(); ++i) c[i] = want[i] = static_cast<float>(i % 4);
      auto at = [&](int i, int p) { return ta ? a[p * lda + i] : a[i * lda + p]; };  // op(A)[i][p]
      auto bt = [&](int p, int j) { return tb ? b[j * ldb + p] : b[p * ldb + j]; };  // op(B)[p][j]
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          float s = 0;
          for (int p = 0; p < k; ++p) s += at(i, p) * bt(p, j);
          want[i * ldc + j] = 2.f * s + 0.5f * want[i * ldc + j];
        }
      sgemm_row_major(ta, tb, m, n, k, 2.f, a.data(), lda, b.data(), ldb, 0.5f, c.data(), ldc);
      for (std::size_t i = 0; i < c.size(); ++i) EXPECT_FLOAT_EQ(c[i], want[i]) << ta << tb << " at " << i;
    }
}

TEST(Blas, ReportsTheLoadedKernels) {
  init_blas();
  EXPECT_FALSE(blas_core().empty());
}

int threads_in_this_process() {
  int n = 0;
  for ([[maybe_unused]] auto const& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

TEST(Blas, SingleThreadStopsTheIdlePoolAndStillComputes) {
  // ctest runs each test in a fresh process, where OpenBLAS has started pool - 1 threads while loading (none
  // when an earlier test in the same process already stopped them: pool is then 1).
  const int pool = blas_threads();
  const int before = threads_in_this_process();
  blas_single_thread();
  EXPECT_EQ(blas_threads(), 1);
  const int after = threads_in_this_process();
  EXPECT_EQ(after, before - (pool - 1)) << "OpenBLAS pool of " << pool;
  // A GEMM large enough for OpenBLAS to split it, had it threads: right result, and no pool comes back.
  const int n = 256;
  std::vector<float> a(n * n), b(n * n), c(n * n, 0.f);
  for (int i = 0; i < n * n; ++i) {
    a[i] = static_cast<float>((i * 7) % 13) - 6.f;
    b[i] = static_cast<float>((i * 5) % 11) - 5.f;
  }
  sgemm_row_major(false, false, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
  for (int i : {0, 1, n - 1}) {
    for (int j : {0, 17, n - 1}) {
      double ref = 0;
      for (int k = 0; k < n; ++k) ref += double(a[i * n + k]) * b[k * n + j];
      EXPECT_FLOAT_EQ(c[i * n + j], static_cast<float>(ref)) << i << "," << j;
    }
  }
  init_blas();  // the same once-only setting: no pool restarted
  EXPECT_EQ(threads_in_this_process(), after);
  EXPECT_EQ(blas_threads(), 1);
}

}  // namespace
}  // namespace bluewhale
