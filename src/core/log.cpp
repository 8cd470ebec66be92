#include "bluewhale/core/log.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace bluewhale {
namespace {

LogLevel level_from_env() {
  const char* v = std::getenv("BW_LOG");
  if (!v) return LogLevel::kInfo;
  if (!std::strcmp(v, "debug")) return LogLevel::kDebug;
  if (!std::strcmp(v, "warn")) return LogLevel::kWarn;
  if (!std::strcmp(v, "error")) return LogLevel::kError;
  if (!std::strcmp(v, "quiet")) return LogLevel::kQuiet;
  return LogLevel::kInfo;
}

std::atomic<int>& level_ref() {
  static std::atomic<int> level{static_cast<int>(level_from_env())};
  return level;
}

std::mutex& out_mu() {
  static std::mutex mu;
  return mu;
}

}  // namespace

LogLevel log_level() { return static_cast<LogLevel>(level_ref().load(std::memory_order_relaxed)); }
void set_log_level(LogLevel level) { level_ref().store(static_cast<int>(level)); }

void log_line(LogLevel level, const std::string& msg) {
  static const char* const kTag[] = {"debug: ", "", "warning: ", "error: ", ""};
  std::lock_guard<std::mutex> lk(out_mu());
  std::fprintf(stderr, "%s%s\n", kTag[static_cast<int>(level)], msg.c_str());
  std::fflush(stderr);
}

}  // namespace bluewhale
