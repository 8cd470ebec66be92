#include "bluewhale/core/parallel.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <stdexcept>
#include <thread>
#include <vector>

namespace bluewhale {

TEST(ParallelFor, CoversEveryIndexOnceWithStableSlices) {
  for (int threads : {1, 2, 3, 8}) {
    for (int64_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      std::vector<int> owner(n, -1);
      parallel_for(n, threads, [&](int64_t b, int64_t e, int t) {
        ASSERT_LT(t, threads);
        for (int64_t i = b; i < e; ++i) {
          hits[i]++;
          owner[i] = t;
        }
      });
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(hits[i].load(), 1);
        int expected = 0;
        while (!(n * expected / threads <= i && i < n * (expected + 1) / threads)) ++expected;
        EXPECT_EQ(owner[i], expected) << "slice of index " << i;
      }
    }
  }
}

TEST(ParallelFor, ExceptionIsRethrownOnCallerAfterJoin) {
  std::atomic<int> done{0};
  EXPECT_THROW(parallel_for(64, 4,
                            [&](int64_t b, int64_t, int) {
                              if (b == 0) throw std::runtime_error("boom");
                              done++;
                            }),
               std::runtime_error);
  // The pool is usable afterwards.
  std::atomic<int64_t> sum{0};
  parallel_for(100, 4, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 4950);
}

TEST(ParallelForDynamic, VisitsAllAndStopsAfterError) {
  std::vector<std::atomic<int>> hits(500);
  parallel_for_dynamic(500, 3, [&](int64_t i, int t) {
    ASSERT_LT(t, 3);
    hits[i]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);

  // Items take a little time, so that the other thread cannot run through all of them in the moment
  // between the throw and the stop (as it could when the thrower was descheduled on a busy machine).
  std::atomic<int64_t> visited{0};
  EXPECT_THROW(parallel_for_dynamic(100000, 2,
                                    [&](int64_t i, int) {
                                      visited++;
                                      if (i == 10) throw std::logic_error("stop");
                                      std::this_thread::sleep_for(std::chrono::microseconds(20));
                                    }),
               std::logic_error);
  EXPECT_LT(visited.load(), 100000);
}

TEST(ParallelFor, NestedRegionRunsSerially) {
  std::atomic<int> total{0};
  parallel_for(4, 2, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i)
      parallel_for(10, 2, [&](int64_t b2, int64_t e2, int) { total += static_cast<int>(e2 - b2); });
  });
  EXPECT_EQ(total.load(), 40);
}

// The process clock counts the CPU of every thread, not wall time: a thread busy for ~60 ms of its own
// CPU time adds at least that much, and a sleeping thread adds next to nothing.
TEST(ProcessCpuSeconds, CountsBusyThreadsNotSleep) {
  const double before = process_cpu_seconds();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const double slept = process_cpu_seconds() - before;
  EXPECT_LT(slept, 0.05);
  std::thread busy([] {
    timespec a{}, b{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    volatile uint64_t x = 0;
    do {
      for (int i = 0; i < 100000; ++i) x = x + static_cast<uint64_t>(i);
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    } while ((b.tv_sec - a.tv_sec) + 1e-9 * double(b.tv_nsec - a.tv_nsec) < 0.06);
  });
  busy.join();
  EXPECT_GE(process_cpu_seconds() - before - slept, 0.06);
}

TEST(PinCurrentThread, RunsTheThreadOnTheCpuItWasPinnedTo) {
  const std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  EXPECT_LE(available_threads(), static_cast<int>(cpus.size()));
  EXPECT_TRUE(std::is_sorted(cpus.begin(), cpus.end()));
  EXPECT_FALSE(pin_current_thread({})) << "nothing to pin to";
  // A thread of its own, so the test runner's main thread keeps its mask.
  for (int cpu : {cpus.front(), cpus.back()}) {
    int ran_on = -1;
    bool pinned = false;
    std::thread t([&] {
      pinned = pin_current_thread({cpu});
      for (int k = 0; k < 1000 && (ran_on = sched_getcpu()) != cpu; ++k) std::this_thread::yield();
    });
    t.join();
    EXPECT_TRUE(pinned) << cpu;
    EXPECT_EQ(ran_on, cpu);
  }
}

// The round trip between two CPUs is a positive time well under a millisecond (~50-400 ns on the
// development VMs), whatever the caller's mask; a CPU outside the mask gives NaN instead of a hang.
TEST(CpuRoundTrip, MeasuresTwoCpusAndRefusesOnesOutsideTheMask) {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "one usable CPU";
  const double ns = cpu_round_trip_ns(cpus[0], cpus[1], 2000, 3);
  EXPECT_GT(ns, 1.0);
  EXPECT_LT(ns, 1e5);
  EXPECT_EQ(allowed_cpus(), cpus) << "the caller's mask is left as it was";
  int outside = 0;
  while (std::find(cpus.begin(), cpus.end(), outside) != cpus.end()) ++outside;
  if (outside < CPU_SETSIZE) {
    EXPECT_TRUE(std::isnan(cpu_round_trip_ns(cpus[0], outside, 100, 1)));
  }
}

TEST(AvailableThreads, AtLeastOne) {
  EXPECT_GE(available_threads(), 1);
  EXPECT_EQ(resolve_threads(3), 3);
  EXPECT_EQ(resolve_threads(0), available_threads());
}

}  // namespace bluewhale
