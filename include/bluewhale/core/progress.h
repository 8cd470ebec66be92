// Progress of long work: a live line on a terminal, periodic plain lines otherwise.
//
//   ProgressReporter p("prep: fit", total_bytes);
//   ... p.add(rows, bytes);   // from any thread
//   p.finish();               // prints the final line
//
// The line shows rows, rows/s, MB/s and, when the total is known, percent and ETA. A background thread
// prints every 0.25 s on a terminal (rewriting the line) and every `plain_interval_s` seconds otherwise
// (logs and CI stay readable). Output goes to stderr and is suppressed when the log level is above info.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace bluewhale {

class ProgressReporter {
 public:
  // total_bytes <= 0: unknown total (no percent or ETA). enabled = false counts but never prints.
  explicit ProgressReporter(std::string label, int64_t total_bytes = 0, double plain_interval_s = 10.0,
                            bool enabled = true);
  ~ProgressReporter();
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // Thread-safe; cheap (two relaxed atomic adds).
  void add(int64_t rows, int64_t bytes) {
    rows_.fetch_add(rows, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  // Stops the printer and prints the final line once. Idempotent.
  void finish();

  int64_t rows() const { return rows_.load(); }
  int64_t bytes() const { return bytes_.load(); }
  double seconds() const;

  // The current status line (what would be printed), for tests.
  std::string line() const;

 private:
  void run();
  std::string label_;
  int64_t total_bytes_;
  double plain_interval_s_;
  bool tty_;
  std::atomic<int64_t> rows_{0}, bytes_{0};
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, finished_ = false;
  std::thread printer_;
};

// Human-readable helpers used by progress lines and summaries: "1.23 M", "412.0 MB", "1m05s".
std::string format_count(double v);
std::string format_bytes(double bytes);
std::string format_duration(double seconds);

}  // namespace bluewhale
