// Leveled logging to stderr. The threshold comes from configuration (log_level) or the
// ICAM_LOG_LEVEL environment variable; messages below it cost one atomic load.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace icam::log {

enum class Level { trace = 0, debug = 1, info = 2, warn = 3, error = 4, off = 5 };

std::optional<Level> parse_level(std::string_view name);
std::string_view level_name(Level level);

void set_level(Level level);
Level level();
inline bool enabled(Level at) {
  return at >= level();
}

// Writes one line: "2026-11-22T10:00:00.123Z warn  [component] message". Thread-safe.
void write(Level at, std::string_view component, std::string_view message);

template <typename... Args>
void trace(std::string_view component, const Args&... args) {
  if (enabled(Level::trace)) write(Level::trace, component, str_cat(args...));
}
template <typename... Args>
void debug(std::string_view component, const Args&... args) {
  if (enabled(Level::debug)) write(Level::debug, component, str_cat(args...));
}
template <typename... Args>
void info(std::string_view component, const Args&... args) {
  if (enabled(Level::info)) write(Level::info, component, str_cat(args...));
}
template <typename... Args>
void warn(std::string_view component, const Args&... args) {
  if (enabled(Level::warn)) write(Level::warn, component, str_cat(args...));
}
template <typename... Args>
void error(std::string_view component, const Args&... args) {
  if (enabled(Level::error)) write(Level::error, component, str_cat(args...));
}

}  // namespace icam::log
