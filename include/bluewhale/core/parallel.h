// The one way to run work on several threads.
//
// Every parallel loop in BlueWhale goes through parallel_for / parallel_for_dynamic with an explicit
// thread count, normally Context::threads. Worker threads come from a process-wide pool that grows on
// demand, so a loop costs a wake-up, not a thread creation. Exceptions thrown by `fn` on any thread are
// captured; the remaining work is skipped and the first exception is rethrown on the calling thread after
// every worker has stopped, so no exception ever escapes a worker.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace bluewhale {

// Threads this process may really use: the smaller of the CPU affinity mask and the cgroup CPU quota
// (rounded up), at least 1.
int available_threads();

// Resolves a user-facing thread count: values <= 0 mean available_threads().
int resolve_threads(int requested);

// The CPUs in this process's affinity mask, in order.
std::vector<int> allowed_cpus();
// Pins the calling thread to `cpus` (pthread_setaffinity_np); false when cpus is empty or the OS refuses.
bool pin_current_thread(const std::vector<int>& cpus);

// How far apart CPUs a and b are: the round trip of one cache line between two threads pinned to them,
// in nanoseconds, the median of `batches` batches of `trips` round trips each (two threads of its own;
// the caller's affinity is left alone). a and b must differ (on one CPU the threads would take turns by
// time slices). NaN when either thread cannot be pinned. On shared virtual
// machines two vCPUs on one core complex measure ~55 ns, on two ~350 ns, and the hypervisor moves
// them between the two for minutes at a time.
double cpu_round_trip_ns(int a, int b, long trips, int batches);

// CPU time consumed by every thread of this process so far (user + system), in seconds. Its growth over
// a stretch of wall time says how many cores the process kept busy there.
double process_cpu_seconds();

// Calls fn(begin, end, thread_id) on `threads` contiguous, near-equal slices of [0, n). Slice t goes to
// thread_id t, which is stable for a given (n, threads), so per-thread scratch indexed by thread_id is
// deterministic. With threads == 1, n small, or when called from inside another parallel region, runs
// serially on the caller. thread_id < threads always.
void parallel_for(int64_t n, int threads, const std::function<void(int64_t begin, int64_t end, int thread_id)>& fn);

// Calls fn(i, thread_id) for every i in [0, n), handing out indices one at a time in increasing order to
// whichever thread is free (for uneven work items such as file chunks). After an exception no new index
// is handed out.
void parallel_for_dynamic(int64_t n, int threads, const std::function<void(int64_t i, int thread_id)>& fn);

}  // namespace bluewhale
