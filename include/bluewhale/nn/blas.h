// The BLAS library under the dense layers and exact search (OpenBLAS), and the kernel set it runs with.
//
// OpenBLAS (built with DYNAMIC_ARCH, as Debian ships it) picks its kernels once, when it is loaded, from the
// CPU's family and model numbers. On a CPU newer than the library, or in a sandbox that hides the model
// (gVisor reports "Intel(R) Xeon(R) Processor"), it falls back to its SSE3 "Prescott" kernels: measured on
// such a Xeon with AVX-512, DLRM training ran 3.5x slower than with the "SkylakeX" kernels. Kernels narrower
// than the CPU cost too: on the development VM (AMD EPYC with AVX-512) "Haswell" kernels ran DLRM 1.3-1.4x
// slower than "SkylakeX" (bench/dlrm/README.md). The choice can only be changed before the library loads,
// through the environment variable OPENBLAS_CORETYPE, so the `bluewhale` command restarts itself once with it
// (blas_restart_with_better_kernels) and library callers get a warning that says what to set.
//
// The library is loaded (dlopen of libopenblas.so.0) on first use, not with the process: loading it mapped
// OpenBLAS, libgfortran and libquadmath and ran OpenBLAS's start-up (CPU detection, buffers, its thread
// pool), ~1.8 ms of every `bluewhale` command on the 2-core VM, of which `prep`, `gen` and `inspect` use
// nothing. Every function here loads it (the library named by the environment variable BW_OPENBLAS when
// set); a missing library is an IoError naming the package to install.
#pragma once

#include <string>
#include <string_view>

#include "bluewhale/core/cpu.h"

namespace bluewhale {

// Loads `library` (a name or path as dlopen takes it) and checks that it has the OpenBLAS entry points used
// here: IoError naming the library, the package to install and BW_OPENBLAS when not. The library stays
// loaded; the functions below use their own (this does not change which). For tests and diagnostics.
void blas_check_library(const std::string& library);

// OpenBLAS's name for the kernel set in use ("Haswell", "SkylakeX", "Prescott", ...).
std::string_view blas_core();

// C = alpha * op(A) * op(B) + beta * C, row-major (cblas_sgemm with CblasRowMajor): op(A) is m x k, op(B)
// k x n, C m x n; lda, ldb, ldc are the row strides in floats of A, B, C as stored. Runs on the calling
// thread after blas_single_thread(). Sizes must fit in int (the BLAS interface).
void sgemm_row_major(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                int ldb, float beta, float* c, int ldc);

// OpenBLAS's thread count for one call: from OPENBLAS_NUM_THREADS or the CPUs at load, 1 after
// blas_single_thread().
int blas_threads();

// Once per process: every BLAS call runs on its caller's thread (callers parallelise around BLAS), and the pool
// of threads OpenBLAS started when it loaded is stopped: idle, each of them spins (sched_yield) for ~0.1 s
// after start, measured as ~4% of the CPU of a 1M-row `bluewhale prep` on 2 cores. `bluewhale` calls it first.
void blas_single_thread();

// The OPENBLAS_CORETYPE to ask for when `loaded` uses narrower vectors than a CPU with SIMD level `level`
// runs ("SkylakeX" for AVX-512, "Haswell" for AVX2+FMA), or "" when the loaded kernels already match (or the
// CPU has neither). Pure: tests call it with any pair.
std::string blas_core_to_request(std::string_view loaded, SimdLevel level);

// Once per process: blas_single_thread() and a warning when blas_core_to_request() asks for better kernels.
void init_blas();

// For main(): when OPENBLAS_CORETYPE is unset and the loaded kernels are weaker than the CPU allows, sets it
// and replaces the process with a fresh run of the same binary and arguments (execv of /proc/self/exe).
// Returns normally when nothing needs doing or the restart fails (the run goes on with the loaded kernels).
// Call before any thread starts.
void blas_restart_with_better_kernels(char** argv);

}  // namespace bluewhale
