// Measured machine limits, so that benchmarks can say which bound a kernel runs against and how close.
#pragma once

#include "bluewhale/core/cpu.h"
#include "bluewhale/core/parallel.h"  // process_cpu_seconds, used with these limits

namespace bluewhale {

// Single-precision FMA throughput (GFLOP/s, 2 flops per lane per FMA) of `threads` threads with vectors
// of `level` (capped at simd_level()): 512-bit FMAs on AVX-512, 256-bit on AVX2, scalar multiply-adds
// otherwise; the best of three ~0.04 s register-only loops with enough independent chains to fill the pipes. Compare
// a kernel against the peak of the level it runs at (the exact search uses AVX-512 where present, so its
// roofline is the 512-bit peak). A busy machine lowers the result, so benchmarks take the best of a few
// calls.
double measure_fma_peak_gflops(int threads, SimdLevel level);
// At the current simd_level().
double measure_fma_peak_gflops(int threads);

// Contention-independent view, for machines shared with other work: the FMA throughput of one thread
// per second of CPU time it actually received (CLOCK_THREAD_CPUTIME_ID), best of three runs. Compare
// with flops / process_cpu_seconds() of a kernel to see how close it runs to the core's peak while it is
// scheduled, whatever else the machine is doing.
double measure_core_fma_peak_gflops(SimdLevel level);
// Read bandwidth (GB/s) of `threads` threads streaming over a 256 MiB buffer.
double measure_read_bandwidth_gbs(int threads);

}  // namespace bluewhale
