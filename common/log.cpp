#include "common/log.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace icam::log {
namespace {

Level initial_level() {
  if (const char* env = std::getenv("ICAM_LOG_LEVEL")) {
    if (auto parsed = parse_level(env)) return *parsed;
  }
  return Level::warn;
}

std::atomic<Level>& threshold() {
  static std::atomic<Level> value{initial_level()};
  return value;
}

}  // namespace

std::optional<Level> parse_level(std::string_view name) {
  if (name == "trace") return Level::trace;
  if (name == "debug") return Level::debug;
  if (name == "info") return Level::info;
  if (name == "warn" || name == "warning") return Level::warn;
  if (name == "error") return Level::error;
  if (name == "off") return Level::off;
  return std::nullopt;
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::trace:
      return "trace";
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warn";
    case Level::error:
      return "error";
    case Level::off:
      return "off";
  }
  return "?";
}

void set_level(Level level) {
  threshold().store(level, std::memory_order_relaxed);
}
Level level() {
  return threshold().load(std::memory_order_relaxed);
}

void write(Level at, std::string_view component, std::string_view message) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t seconds = system_clock::to_time_t(now);
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);

  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "%s.%03dZ %-5.*s [%.*s] %.*s\n", stamp, static_cast<int>(millis),
               static_cast<int>(level_name(at).size()), level_name(at).data(),
               static_cast<int>(component.size()), component.data(),
               static_cast<int>(message.size()), message.data());
}

}  // namespace icam::log
