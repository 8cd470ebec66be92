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
// prep itself measures the same (cpu_round_trip_ns, shorter) to choose how its two threads share a fit.
//
//   prep_core_probe [round_trips]   prints e.g. "57.3", or "-" when fewer than two CPUs are usable
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bluewhale/core/parallel.h"

int main(int argc, char** argv) {
  const long trips = argc > 1 ? std::atol(argv[1]) : 100000;
  if (trips < 1) {
    std::fprintf(stderr, "prep_core_probe: round_trips must be a positive integer, got '%s'\n", argv[1]);
    return 2;
  }
  const std::vector<int> cpus = bluewhale::allowed_cpus();
  // Two threads spinning on one CPU would measure the scheduler, not the caches.
  const double ns = cpus.size() < 2 ? std::nan("") : bluewhale::cpu_round_trip_ns(cpus[0], cpus[1], trips, 5);
  if (std::isnan(ns)) std::puts("-");
  else std::printf("%.1f\n", ns);
  return 0;
}
