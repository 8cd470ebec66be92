// How far apart the machine's two first usable CPUs are right now: the round trip of one cache line
// between two threads pinned to them, in nanoseconds (median of 5 batches). bench/prep/run.sh prints it
// next to every timed run.
//
// Why: on the shared virtual machines the benchmarks run on, the hypervisor moves the vCPUs between
// core complexes. The round trip then jumps between ~55 ns (one L3) and ~350 ns (two), and a
// two-threaded prep run takes ~25-35 % more CPU in the far state (data moving between its threads'
// cores costs more; 2026-12-05). A tool that ran its repetitions in a far spell is then slower for
// reasons of placement, and the probe makes that visible in the report.
//
//   prep_core_probe [round_trips]   prints e.g. "57.3", or "-" when fewer than two CPUs are usable
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "bluewhale/core/parallel.h"

namespace {

// The line passed back and forth (odd values are the ping, even the pong), alone in its cache line: a
// neighbour written by either thread would add transfers of its own.
struct alignas(64) Line {
  std::atomic<uint64_t> value{0};
  char pad[64 - sizeof(std::atomic<uint64_t>)];
};
Line g_line;

}  // namespace

int main(int argc, char** argv) {
  const long trips = argc > 1 ? std::atol(argv[1]) : 100000;
  if (trips < 1) {
    std::fprintf(stderr, "prep_core_probe: round_trips must be a positive integer, got '%s'\n", argv[1]);
    return 2;
  }
  const std::vector<int> cpus = bluewhale::allowed_cpus();
  // Two threads spinning on one CPU would measure the scheduler, not the caches.
  if (cpus.size() < 2) {
    std::puts("-");
    return 0;
  }

  constexpr int kBatches = 5;
  std::atomic<uint64_t>& line = g_line.value;
  std::atomic<bool> pinned_ok{true};
  const uint64_t total = static_cast<uint64_t>(trips) * kBatches;
  std::thread other([&line, &pinned_ok, total, cpu = cpus[1]] {
    if (!bluewhale::pin_current_thread({cpu})) pinned_ok = false;
    for (uint64_t i = 0; i < total; ++i) {
      while (line.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      line.store(2 * i + 2, std::memory_order_release);
    }
  });
  if (!bluewhale::pin_current_thread({cpus[0]})) pinned_ok = false;
  std::vector<double> ns;
  uint64_t i = 0;
  for (int b = 0; b < kBatches; ++b) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long k = 0; k < trips; ++k, ++i) {
      line.store(2 * i + 1, std::memory_order_release);
      while (line.load(std::memory_order_acquire) != 2 * i + 2) {
      }
    }
    const std::chrono::duration<double, std::nano> d = std::chrono::steady_clock::now() - t0;
    ns.push_back(d.count() / static_cast<double>(trips));
  }
  other.join();
  if (!pinned_ok) {
    std::puts("-");
    return 0;
  }
  std::sort(ns.begin(), ns.end());
  std::printf("%.1f\n", ns[kBatches / 2]);
  return 0;
}
