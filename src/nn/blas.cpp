#include "bluewhale/nn/blas.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/log.h"
#include "core/dynamic_library.h"

namespace bluewhale {
namespace {

// The CBLAS constants of the calls made here (from the CBLAS standard, as cblas.h defines them).
constexpr int kCblasRowMajor = 101, kCblasNoTrans = 111, kCblasTrans = 112;

// The OpenBLAS entry points used, resolved once from the library loaded on first use.
struct OpenBlas {
  void (*sgemm)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                const float* b, int ldb, float beta, float* c, int ldc) = nullptr;
  char* (*get_corename)() = nullptr;
  int (*get_num_threads)() = nullptr;
  void (*set_num_threads)(int) = nullptr;
  // Exported by OpenBLAS's threaded builds (they stop the pool with it before a fork); no header declares
  // it and a serial build may lack it: null then.
  int (*thread_shutdown)() = nullptr;
};

// Loads the first of `names` that dlopen finds and resolves the entry points; IoError otherwise.
OpenBlas load_openblas(const std::vector<std::string>& names) {
  std::string errors, loaded;
  void* lib = dlopen_first(names, RTLD_LOCAL, loaded, errors);
  BW_CHECK(lib, IoError, "cannot load OpenBLAS, which dense layers and exact search run on (", errors,
           "): install the libopenblas0 package (scripts/install-deps.sh does), or name the library in BW_OPENBLAS");
  OpenBlas a;
  auto need = [&](auto& fn, const char* symbol) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, symbol));
    if (!fn) dlclose(lib);
    BW_CHECK(fn, IoError, "'", loaded, "' has no '", symbol, "': an OpenBLAS build is needed, not another BLAS");
  };
  need(a.sgemm, "cblas_sgemm");
  need(a.get_corename, "openblas_get_corename");
  need(a.get_num_threads, "openblas_get_num_threads");
  need(a.set_num_threads, "openblas_set_num_threads");
  a.thread_shutdown = reinterpret_cast<int (*)()>(dlsym(lib, "blas_thread_shutdown_"));
  return a;  // the library stays loaded for the life of the process
}

const OpenBlas& openblas() {
  // $BW_OPENBLAS when set; else the runtime package's name (libopenblas0-*, through Debian's
  // alternatives), then the development link.
  static const OpenBlas api = [] {
    const char* chosen = std::getenv("BW_OPENBLAS");
    return load_openblas(chosen && *chosen ? std::vector<std::string>{chosen}
                                           : std::vector<std::string>{"libopenblas.so.0", "libopenblas.so"});
  }();
  return api;
}

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

void blas_check_library(const std::string& library) { load_openblas({library}); }

std::string_view blas_core() {
  const char* name = openblas().get_corename();
  return name ? std::string_view(name) : std::string_view();
}

int blas_threads() { return openblas().get_num_threads(); }

void sgemm_row_major(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                int ldb, float beta, float* c, int ldc) {
  openblas().sgemm(kCblasRowMajor, trans_a ? kCblasTrans : kCblasNoTrans, trans_b ? kCblasTrans : kCblasNoTrans, m, n,
                   k, alpha, a, lda, b, ldb, beta, c, ldc);
}

std::string blas_core_to_request(std::string_view loaded, SimdLevel level) {
  if (one_of(loaded, kAvx512Cores)) return "";
  if (level == SimdLevel::kAvx512) return "SkylakeX";
  if (level == SimdLevel::kAvx2 && !one_of(loaded, kAvx2Cores)) return "Haswell";
  return "";
}

void blas_single_thread() {
  static std::once_flag once;
  std::call_once(once, [] {
    const OpenBlas& api = openblas();
    // In this order: OpenBLAS's set_num_threads restarts a pool that was shut down.
    api.set_num_threads(1);
    if (api.thread_shutdown) api.thread_shutdown();
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
