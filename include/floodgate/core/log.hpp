// floodgate/core/log.hpp: one replaceable sink for the library's log lines.
//
// floodgate logs rarely (warnings about corrupt files, reconnects, disabled
// credentials) and never logs a secret: messages are formatted from `Secret`
// values, which redact themselves. By default lines go to stderr; an
// application routes them into its own logger, and tests capture them to
// prove that no token leaks:
//
//   floodgate::set_log_sink([](floodgate::LogLevel lvl, std::string_view msg) {
//     spdlog::log(to_spdlog(lvl), "{}", msg);
//   });
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <functional>
#include <mutex>
#include <string_view>
#include <utility>

namespace floodgate {

enum class LogLevel { debug, info, warning, error };

using LogSink = std::function<void(LogLevel, std::string_view)>;

namespace detail {
struct LogState {
  std::mutex mutex;
  LogSink sink;
  LogLevel min_level = LogLevel::info;
};
inline LogState& log_state() {
  static LogState state;
  return state;
}
inline const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
  }
  return "?";
}
}  // namespace detail

/// Replaces the sink (an empty function restores stderr). Returns the old one.
inline LogSink set_log_sink(LogSink sink) {
  auto& s = detail::log_state();
  std::lock_guard lock(s.mutex);
  return std::exchange(s.sink, std::move(sink));
}

/// Lines below `level` are dropped before they are formatted.
inline void set_log_level(LogLevel level) {
  auto& s = detail::log_state();
  std::lock_guard lock(s.mutex);
  s.min_level = level;
}

/// Formats and emits one line: `floodgate::log(LogLevel::warning, "{} cooled for {}s", id, n)`.
template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  auto& s = detail::log_state();
  std::lock_guard lock(s.mutex);
  if (level < s.min_level) return;
  const auto line = fmt::format(format, std::forward<Args>(args)...);
  if (s.sink) {
    s.sink(level, line);
  } else {
    std::fprintf(stderr, "floodgate %s: %s\n", detail::level_name(level), line.c_str());
  }
}

}  // namespace floodgate
