#include "bluewhale/core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "bluewhale/core/log.h"

namespace bluewhale {

std::string format_count(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2f G", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2f M", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.1f k", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string format_bytes(double b) {
  char buf[32];
  if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  else if (b >= 1e3) std::snprintf(buf, sizeof buf, "%.1f kB", b / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  long long t = std::llround(s);
  if (s < 10) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (t < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  return buf;
}

ProgressReporter::ProgressReporter(std::string label, int64_t total_bytes, double plain_interval_s, bool enabled)
    : label_(std::move(label)),
      total_bytes_(total_bytes),
      plain_interval_s_(plain_interval_s),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {
  if (enabled && log_level() <= LogLevel::kInfo) printer_ = std::thread([this] { run(); });
}

ProgressReporter::~ProgressReporter() { finish(); }

double ProgressReporter::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string ProgressReporter::line() const {
  double s = std::max(seconds(), 1e-9);
  double rows = static_cast<double>(rows_.load()), bytes = static_cast<double>(bytes_.load());
  std::string out = label_ + ": " + format_count(rows) + " rows, " + format_count(rows / s) + " rows/s, " +
                    format_bytes(bytes / s) + "/s";
  if (total_bytes_ > 0) {
    double frac = std::min(1.0, bytes / static_cast<double>(total_bytes_));
    char pct[16];
    std::snprintf(pct, sizeof pct, "%5.1f%%", 100.0 * frac);
    out += std::string(", ") + pct;
    if (frac > 0 && frac < 1) out += ", ETA " + format_duration(s * (1 - frac) / frac);
  }
  out += ", " + format_duration(s);
  return out;
}

void ProgressReporter::run() {
  auto period = tty_ ? std::chrono::milliseconds(250)
                     : std::chrono::milliseconds(static_cast<int64_t>(plain_interval_s_ * 1000));
  std::unique_lock<std::mutex> lk(mu_);
  while (!cv_.wait_for(lk, period, [this] { return stop_; })) {
    std::string l = line();
    if (tty_) std::fprintf(stderr, "\r\033[K%s", l.c_str());
    else std::fprintf(stderr, "%s\n", l.c_str());
    std::fflush(stderr);
  }
}

void ProgressReporter::finish() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (finished_) return;
    finished_ = stop_ = true;
  }
  cv_.notify_all();
  if (printer_.joinable()) {
    printer_.join();
    std::string l = line();
    if (tty_) std::fprintf(stderr, "\r\033[K%s\n", l.c_str());
    else std::fprintf(stderr, "%s\n", l.c_str());
    std::fflush(stderr);
  }
}

}  // namespace bluewhale
