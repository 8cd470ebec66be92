#include "bluewhale/recall/roofline.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <vector>

#include "bluewhale/core/cpu.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale {
namespace recall_detail {
float fma_loop_avx2(int64_t iters, float seed);
float fma_loop_avx512(int64_t iters, float seed);
}

namespace {

// Results land here so that the probe loops are not optimised away.
std::atomic<float> g_sink{0};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

float fma_loop_scalar(int64_t iters, float seed) {
  float a[4] = {seed, seed + 1, seed + 2, seed + 3};
  for (int64_t it = 0; it < iters; ++it)
    for (float& x : a) x = x * 0.999999f + 1e-7f;
  return a[0] + a[1] + a[2] + a[3];
}

}  // namespace

double measure_fma_peak_gflops(int threads, SimdLevel level) {
  level = std::min(level, simd_level());
  // Every lane of every FMA counts 2 flops; the loops keep 10 (AVX2) or 12 (AVX-512) chains in flight.
  const int64_t iters = level == SimdLevel::kAvx512 ? 4'000'000 : 8'000'000;
  const double flops_per_iter = level == SimdLevel::kAvx512 ? 12 * 16 * 2 : level == SimdLevel::kAvx2 ? 10 * 8 * 2 : 4 * 2;
  const int64_t run_iters = level == SimdLevel::kScalar ? iters / 4 : iters;
  // Best of three ~0.04 s runs: a peak is a maximum, and one short run on a busy core underestimates it.
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    parallel_for(threads, threads, [&](int64_t, int64_t, int t) {
      const float seed = float(t);
      g_sink.store(level == SimdLevel::kAvx512 ? recall_detail::fma_loop_avx512(run_iters, seed)
                   : level == SimdLevel::kAvx2 ? recall_detail::fma_loop_avx2(run_iters, seed)
                                               : fma_loop_scalar(run_iters, seed),
                   std::memory_order_relaxed);
    });
    best = std::max(best, double(threads) * double(run_iters) * flops_per_iter / seconds_since(t0) / 1e9);
  }
  return best;
}

double measure_fma_peak_gflops(int threads) { return measure_fma_peak_gflops(threads, simd_level()); }

double measure_core_fma_peak_gflops(SimdLevel level) {
  level = std::min(level, simd_level());
  const int64_t iters = level == SimdLevel::kAvx512 ? 4'000'000 : level == SimdLevel::kAvx2 ? 8'000'000 : 2'000'000;
  const double flops_per_iter = level == SimdLevel::kAvx512 ? 12 * 16 * 2 : level == SimdLevel::kAvx2 ? 10 * 8 * 2 : 4 * 2;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    timespec a{}, b{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    g_sink.store(level == SimdLevel::kAvx512 ? recall_detail::fma_loop_avx512(iters, float(rep))
                 : level == SimdLevel::kAvx2 ? recall_detail::fma_loop_avx2(iters, float(rep))
                                             : fma_loop_scalar(iters, float(rep)),
                 std::memory_order_relaxed);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    const double s = double(b.tv_sec - a.tv_sec) + 1e-9 * double(b.tv_nsec - a.tv_nsec);
    if (s > 0) best = std::max(best, double(iters) * flops_per_iter / s / 1e9);
  }
  return best;
}

double measure_read_bandwidth_gbs(int threads) {
  const std::size_t n = (std::size_t{256} << 20) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n, 1);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    parallel_for(int64_t(n), threads, [&](int64_t b, int64_t e, int) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t i = b;
      for (; i + 4 <= e; i += 4) {
        s0 += buf[std::size_t(i)];
        s1 += buf[std::size_t(i + 1)];
        s2 += buf[std::size_t(i + 2)];
        s3 += buf[std::size_t(i + 3)];
      }
      for (; i < e; ++i) s0 += buf[std::size_t(i)];
      g_sink.store(float(s0 + s1 + s2 + s3), std::memory_order_relaxed);
    });
    const double s = seconds_since(t0);
    best = std::max(best, double(n * sizeof(uint64_t)) / s / 1e9);
  }
  return best;
}

}  // namespace bluewhale
