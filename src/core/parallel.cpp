#include "bluewhale/core/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bluewhale/core/error.h"

namespace bluewhale {
namespace {

int cgroup_quota_threads() {
  // cgroup v2: "max 100000" or "200000 100000".
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string quota, period;
  if (v2 >> quota >> period && quota != "max") {
    double q = std::stod(quota), p = std::stod(period);
    if (q > 0 && p > 0) return std::max(1, static_cast<int>(std::ceil(q / p)));
  }
  std::ifstream q1("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), p1("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  long long q = -1, p = -1;
  if (q1 >> q && p1 >> p && q > 0 && p > 0) return std::max(1, static_cast<int>((q + p - 1) / p));
  return 1 << 20;
}

thread_local bool t_in_parallel = false;

// A pool of sleeping workers. One parallel region runs at a time; a second concurrent caller (for
// example the loader's prefetch thread while the trainer runs a loop) gets private threads instead of
// waiting, so regions never deadlock on each other.
class Pool {
 public:
  static Pool& instance() {
    static Pool pool;
    return pool;
  }

  // Runs job(tid) for tid in [0, threads); the caller runs tid 0.
  void run(int threads, const std::function<void(int)>& job) {
    std::unique_lock<std::mutex> region(region_mu_, std::try_to_lock);
    if (!region.owns_lock()) {
      run_private(threads, job);
      return;
    }
    grow(threads - 1);
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &job;
      wanted_ = threads - 1;
      pending_ = threads - 1;
      next_tid_ = 1;
      ++generation_;
    }
    cv_.notify_all();
    job(0);
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  static void run_private(int threads, const std::function<void(int)>& job) {
    std::vector<std::thread> ts;
    ts.reserve(threads - 1);
    for (int t = 1; t < threads; ++t) ts.emplace_back([&job, t] {
      t_in_parallel = true;
      job(t);
    });
    job(0);
    for (auto& t : ts) t.join();
  }

  void grow(int n) {
    while (static_cast<int>(workers_.size()) < n) workers_.emplace_back([this] { loop(); });
  }

  void loop() {
    t_in_parallel = true;
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      int tid;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || (generation_ != seen && wanted_ > 0); });
        if (stop_) return;
        seen = generation_;
        --wanted_;
        tid = next_tid_++;
        job = job_;
      }
      (*job)(tid);
      std::lock_guard<std::mutex> lk(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::mutex region_mu_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int wanted_ = 0, pending_ = 0, next_tid_ = 0;
  bool stop_ = false;
};

// Captures the first exception of a region; the others are dropped after it.
struct ErrorSlot {
  std::mutex mu;
  std::exception_ptr first;
  std::atomic<bool> failed{false};
  void capture() {
    std::lock_guard<std::mutex> lk(mu);
    if (!first) first = std::current_exception();
    failed.store(true, std::memory_order_relaxed);
  }
  void rethrow() {
    if (first) std::rethrow_exception(first);
  }
};

void run_region(int threads, const std::function<void(int)>& job) {
  bool was = t_in_parallel;
  t_in_parallel = true;
  try {
    Pool::instance().run(threads, job);
  } catch (...) {
    t_in_parallel = was;
    throw;
  }
  t_in_parallel = was;
}

}  // namespace

int available_threads() {
  const std::vector<int> cpus = allowed_cpus();
  const int affinity = cpus.empty() ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))
                                    : static_cast<int>(cpus.size());
  return std::max(1, std::min(affinity, cgroup_quota_threads()));
}

int resolve_threads(int requested) { return requested > 0 ? requested : available_threads(); }

void parallel_for(int64_t n, int threads, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  threads = std::max(1, threads);
  if (threads == 1 || t_in_parallel || n == 1) {
    // Serial fallback still reports the slices a multi-thread run would, so thread_id semantics hold.
    for (int t = 0; t < threads; ++t) {
      int64_t b = n * t / threads, e = n * (t + 1) / threads;
      if (b < e) fn(b, e, t);
    }
    return;
  }
  ErrorSlot err;
  run_region(threads, [&](int t) {
    int64_t b = n * t / threads, e = n * (t + 1) / threads;
    if (b >= e || err.failed.load(std::memory_order_relaxed)) return;
    try {
      fn(b, e, t);
    } catch (...) {
      err.capture();
    }
  });
  err.rethrow();
}

void parallel_for_dynamic(int64_t n, int threads, const std::function<void(int64_t, int)>& fn) {
  if (n <= 0) return;
  threads = std::max(1, std::min<int64_t>(threads, n) > 0 ? static_cast<int>(std::min<int64_t>(threads, n)) : 1);
  if (threads == 1 || t_in_parallel) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  ErrorSlot err;
  std::atomic<int64_t> next{0};
  run_region(threads, [&](int t) {
    for (;;) {
      if (err.failed.load(std::memory_order_relaxed)) return;
      int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        fn(i, t);
      } catch (...) {
        err.capture();
        return;
      }
    }
  });
  err.rethrow();
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

bool pin_current_thread(const std::vector<int>& cpus) {
  if (cpus.empty()) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

namespace {

// The line cpu_round_trip_ns passes back and forth (odd values the ping, even the pong), alone in its
// cache line. Static: on the development VM the same loop over a line on the heap or a stack measured
// 70-100 ns in the near state where this one measures ~50 ns (as the older bench probe, whose line was
// static too); the cause was not found. One probe at a time uses it.
struct alignas(64) ProbeLine {
  std::atomic<uint64_t> value{0};
  char pad[64 - sizeof(std::atomic<uint64_t>)];
};
ProbeLine g_probe_line;
std::mutex g_probe_mu;

}  // namespace

double cpu_round_trip_ns(int a, int b, long trips, int batches) {
  BW_ASSERT(trips >= 1 && batches >= 1);
  std::lock_guard<std::mutex> probe_lock(g_probe_mu);
  ProbeLine& line = g_probe_line;
  line.value.store(0);
  std::atomic<bool> pinned{true};
  const uint64_t total = static_cast<uint64_t>(trips) * static_cast<uint64_t>(batches);
  std::thread pong([&] {
    if (!pin_current_thread({b})) pinned = false;
    for (uint64_t i = 0; i < total; ++i) {
      while (line.value.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      line.value.store(2 * i + 2, std::memory_order_release);
    }
  });
  std::vector<double> ns;
  std::thread ping([&] {
    if (!pin_current_thread({a})) pinned = false;
    uint64_t i = 0;
    for (int k = 0; k < batches; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      for (long j = 0; j < trips; ++j, ++i) {
        line.value.store(2 * i + 1, std::memory_order_release);
        while (line.value.load(std::memory_order_acquire) != 2 * i + 2) {
        }
      }
      const std::chrono::duration<double, std::nano> d = std::chrono::steady_clock::now() - t0;
      ns.push_back(d.count() / static_cast<double>(trips));
    }
  });
  ping.join();
  pong.join();
  if (!pinned) return std::nan("");
  std::sort(ns.begin(), ns.end());
  return ns[ns.size() / 2];
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace bluewhale
