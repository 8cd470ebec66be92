// Measured machine limits, so that benchmarks can say which bound a kernel runs against and how close.
#pragma once

namespace bluewhale {

// Single-precision FMA throughput (GFLOP/s, 2 flops per lane per FMA) of `threads` threads at the
// current simd_level(), from a ~0.1 s register-only loop with enough independent chains to fill the pipes.
double measure_fma_peak_gflops(int threads);
// Read bandwidth (GB/s) of `threads` threads streaming over a 256 MiB buffer.
double measure_read_bandwidth_gbs(int threads);

}  // namespace bluewhale
