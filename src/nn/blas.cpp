#include "bluewhale/nn/blas.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "bluewhale/core/log.h"

// Exported by OpenBLAS's threaded builds (they stop the pool with it before a fork); no header declares it.
// Weak: a serial OpenBLAS has no pool and may lack it.
extern "C" int blas_thread_shutdown_(void) __attribute__((weak));

namespace bluewhale {
namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// OpenBLAS x86-64 kernel sets by the widest vectors their SGEMM uses. Everything else it can pick (Prescott,
// Core2, Nehalem, Sandybridge, Barcelona, Bulldozer, Atom, ...) is slower on a CPU that has AVX2.
constexpr std::array<std::string_view, 3> kAvx512Cores = {"SkylakeX", "Cooperlake", "SapphireRapids"};
constexpr std::array<std::string_view, 4> kAvx2Cores = {"Haswell", "Zen", "Excavator", "Steamroller"};

bool one_of(std::string_view name, auto const& set) {
  return std::any_of(set.begin(), set.end(), [&](std::string_view c) { return iequal(name, c); });
}

}  // namespace

std::string_view blas_core() {
  const char* name = openblas_get_corename();
  return name ? std::string_view(name) : std::string_view();
}

int blas_threads() { return openblas_get_num_threads(); }

std::string blas_core_to_request(std::string_view loaded, SimdLevel level) {
  if (one_of(loaded, kAvx512Cores)) return "";
  if (level == SimdLevel::kAvx512) return "SkylakeX";
  if (level == SimdLevel::kAvx2 && !one_of(loaded, kAvx2Cores)) return "Haswell";
  return "";
}

void blas_single_thread() {
  static std::once_flag once;
  std::call_once(once, [] {
    // In this order: OpenBLAS's set_num_threads restarts a pool that was shut down.
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
  });
}

void init_blas() {
  static std::once_flag once;
  std::call_once(once, [] {
    blas_single_thread();
    const std::string want = blas_core_to_request(blas_core(), detected_simd_level());
    if (!want.empty())
      log_warn("OpenBLAS runs its '", blas_core(), "' kernels on a CPU with ", simd_level_name(detected_simd_level()),
               ": dense layers and exact search run slower than they could (1.4x to 3.5x measured); set OPENBLAS_CORETYPE=",
               want, " before the process starts");
  });
}

void blas_restart_with_better_kernels(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // the user's choice, or our own restart
  const std::string want = blas_core_to_request(blas_core(), detected_simd_level());
  if (want.empty()) return;
  log_debug("OpenBLAS loaded its '", blas_core(), "' kernels; restarting with OPENBLAS_CORETYPE=", want);
  if (setenv("OPENBLAS_CORETYPE", want.c_str(), 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: the restart failed. Carry on; init_blas() warns.
  unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace bluewhale
