// Logging to stderr with a process-wide level. Thread-safe: one line is written with one call.
#pragma once

#include <string>

#include "bluewhale/core/error.h"

namespace bluewhale {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kQuiet = 4 };

// Default kInfo, or the value of BW_LOG (debug|info|warn|error|quiet) at first use.
LogLevel log_level();
void set_log_level(LogLevel level);
void log_line(LogLevel level, const std::string& msg);

template <class... A> void log_debug(A&&... a) { if (log_level() <= LogLevel::kDebug) log_line(LogLevel::kDebug, str_cat(std::forward<A>(a)...)); }
template <class... A> void log_info(A&&... a) { if (log_level() <= LogLevel::kInfo) log_line(LogLevel::kInfo, str_cat(std::forward<A>(a)...)); }
template <class... A> void log_warn(A&&... a) { if (log_level() <= LogLevel::kWarn) log_line(LogLevel::kWarn, str_cat(std::forward<A>(a)...)); }
template <class... A> void log_error(A&&... a) { if (log_level() <= LogLevel::kError) log_line(LogLevel::kError, str_cat(std::forward<A>(a)...)); }

}  // namespace bluewhale
