// Helpers shared by the tests: temporary directories, the shared real-data folder, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "bluewhale/core/cpu.h"
#include "bluewhale/core/error.h"

namespace bluewhale::testing {

// Fixture of kernel tests that run at every SIMD level: levels the CPU lacks are skipped, not silently
// downgraded, and the detected level is restored afterwards. Instantiate with
//   INSTANTIATE_TEST_SUITE_P(AllSimdLevels, Suite, testing::kAllSimdLevels, testing::SimdLevelName());
class SimdLevelTest : public ::testing::TestWithParam<SimdLevel> {
 protected:
  void SetUp() override {
    if (GetParam() > detected_simd_level())
      GTEST_SKIP() << simd_level_name(GetParam()) << " not supported by this CPU";
    ASSERT_EQ(set_simd_level(GetParam()), GetParam());
  }
  void TearDown() override { set_simd_level(detected_simd_level()); }
};
inline const auto kAllSimdLevels = ::testing::Values(SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512);
struct SimdLevelName {
  std::string operator()(const ::testing::TestParamInfo<SimdLevel>& info) const {
    return std::string(simd_level_name(info.param));
  }
};

// The levels this CPU runs, scalar first, for kernel tests that compare every level's function pointer
// (kernel_for(level)) in one test instead of switching the process-wide level.
inline std::vector<SimdLevel> supported_simd_levels() {
  std::vector<SimdLevel> v = {SimdLevel::kScalar};
  if (detected_simd_level() >= SimdLevel::kAvx2) v.push_back(SimdLevel::kAvx2);
  if (detected_simd_level() >= SimdLevel::kAvx512) v.push_back(SimdLevel::kAvx512);
  return v;
}

// A fresh empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// ../shared/data relative to the source tree (or $BW_SHARED_DATA); empty path when absent.
std::filesystem::path shared_data_dir();

// Writes text to a file (creating parents).
void write_text(const std::filesystem::path& path, const std::string& text);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
// Runs the built `bluewhale` binary with the given argument string through /bin/sh; env_prefix goes before
// the binary on the command line ("env -u VAR", "VAR=value").
CommandResult run_cli(const std::string& args, const std::string& env_prefix = "");

// The message of the E that f() throws, or "" when it throws none (other exceptions pass through).
template <class E = Error, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

}  // namespace bluewhale::testing
