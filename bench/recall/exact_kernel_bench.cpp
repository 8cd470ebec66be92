// The fused exact search micro-kernel alone (one query panel over one L2 row block, no candidates) and
// the whole exact_search() on random data, at the AVX-512 and AVX2 levels the CPU has, against the FMA
// peak of that level. Best of --rounds; prints GFLOP/s and the fraction of peak, by wall clock and per busy CPU-second
// (process CPU time, against the one-thread peak measured the same way: steadier on a shared machine).
//
//   recall_exact_bench [rounds]        (cmake --build build --target recall_exact_bench)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "bluewhale/core/buffer.h"
#include "bluewhale/core/cpu.h"
#include "bluewhale/recall/roofline.h"
#include "recall/exact_search.h"

namespace bluewhale {
namespace {

using recall_detail::ExactBlockArgs;

// One-thread FMA peak of a level: wall clock and per busy CPU-second, best of the rounds.
struct Peak {
  double wall = 0;
  double cpu = 0;
};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::vector<float> random_floats(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

void kernel_only(SimdLevel level, int64_t dim, int rounds, const Peak& peak) {
  const auto& kern = recall_detail::exact_kernel_for(level);
  const auto plan = recall_detail::exact_search_plan(1024, 100000, dim, 1, level);
  const int64_t nr = plan.row_block, lanes = kern.lanes;
  const auto rows = random_floats(nr * dim, 1);
  AlignedBuffer<float> panel_buf(std::size_t(lanes * dim));
  float* panel = panel_buf.data();
  const auto pv = random_floats(lanes * dim, 2);
  std::copy(pv.begin(), pv.end(), panel);
  std::vector<float> bias(std::size_t(nr), 0.0f), thr(std::size_t(lanes), -std::numeric_limits<float>::infinity());
  std::vector<int32_t> count(static_cast<std::size_t>(lanes));
  std::vector<uint32_t> cr(std::size_t(lanes * nr));
  std::vector<float> cd(std::size_t(lanes * nr));
  ExactBlockArgs a;
  a.panel = panel;
  a.rows = rows.data();
  a.bias = bias.data();
  a.n_rows = nr;
  a.dim = dim;
  a.thr = thr.data();
  a.count = count.data();
  a.cand_row = cr.data();
  a.cand_dist = cd.data();
  const int64_t reps = std::max<int64_t>(1, int64_t(2e9 / double(2 * lanes * nr * dim)));
  double best = 0, best_cpu = 0;
  const double flops = double(reps) * 2.0 * double(lanes * nr * dim);
  for (int r = 0; r < rounds; ++r) {
    const double t0 = now_s(), c0 = process_cpu_seconds();
    for (int64_t i = 0; i < reps; ++i) kern.block(a);
    best = std::max(best, flops / (now_s() - t0) / 1e9);
    best_cpu = std::max(best_cpu, flops / (process_cpu_seconds() - c0) / 1e9);
  }
  std::printf("%-7s kernel   dim %4lld  rows %5lld x %2lld queries: %6.1f GFLOP/s = %3.0f%% of peak; per busy "
              "CPU-second %6.1f = %3.0f%%\n",
              std::string(simd_level_name(level)).c_str(), (long long)dim, (long long)nr, (long long)lanes, best,
              100 * best / peak.wall, best_cpu, 100 * best_cpu / peak.cpu);
}

void full_search(SimdLevel level, int64_t n, int64_t dim, int64_t nq, int threads, int rounds, const Peak& peak) {
  const auto rows = random_floats(n * dim, 3), q = random_floats(nq * dim, 4);
  std::vector<float> norms(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t j = 0; j < dim; ++j) s += double(rows[std::size_t(i * dim + j)]) * rows[std::size_t(i * dim + j)];
    norms[std::size_t(i)] = float(s);
  }
  const int64_t k = 10;
  std::vector<float> dist(std::size_t(nq * k));
  std::vector<int64_t> labels(std::size_t(nq * k));
  double best = 0, best_cpu = 0;
  const double flops = 2.0 * double(nq) * double(n) * double(dim);
  for (int r = 0; r < rounds; ++r) {
    const double t0 = now_s(), c0 = process_cpu_seconds();
    recall_detail::exact_search(q.data(), nq, rows.data(), norms.data(), n, dim, Metric::kL2, k, nullptr, threads,
                                dist.data(), labels.data());
    best = std::max(best, flops / (now_s() - t0) / 1e9);
    best_cpu = std::max(best_cpu, flops / (process_cpu_seconds() - c0) / 1e9);
  }
  std::printf("%-7s search   dim %4lld  %lld x %lld queries, %d thr: %6.1f GFLOP/s = %3.0f%% of peak; per busy "
              "CPU-second %6.1f = %3.0f%%\n",
              std::string(simd_level_name(level)).c_str(), (long long)dim, (long long)n, (long long)nq, threads, best,
              100 * best / peak.wall, best_cpu, 100 * best_cpu / peak.cpu);
}

}  // namespace
}  // namespace bluewhale

int main(int argc, char** argv) {
  using namespace bluewhale;
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  const SimdLevel detected = detected_simd_level();
  // Not the scalar level: the compiler vectorises its C++ kernel with SSE, so the scalar FMA probe is no
  // bound for it.
  for (SimdLevel level : {SimdLevel::kAvx512, SimdLevel::kAvx2}) {
    if (level > detected) continue;
    set_simd_level(level);
    Peak peak;
    for (int r = 0; r < rounds; ++r) {
      peak.wall = std::max(peak.wall, measure_fma_peak_gflops(1, level));
      peak.cpu = std::max(peak.cpu, measure_core_fma_peak_gflops(level));
    }
    std::printf("%-7s FMA peak per core %.1f GFLOP/s; per busy CPU-second %.1f\n",
                std::string(simd_level_name(level)).c_str(), peak.wall, peak.cpu);
    for (int64_t dim : {64, 128, 256}) kernel_only(level, dim, rounds, peak);
    for (int64_t dim : {64, 128}) full_search(level, 100000, dim, 1000, 1, rounds, peak);
  }
  return 0;
}
