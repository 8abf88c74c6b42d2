// Logging: one line per event to stderr (journald adds the timestamp when run
// under systemd). Thread-safe; a line is written with one write(2).
// Under journald (SetJournal(true)) every line starts with its sd-daemon(3)
// priority ("<4>strata: warn: ..."), so `journalctl -p warning` filters it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::log {

enum class Level { kDebug = 0, kInfo, kWarn, kError };

void SetLevel(Level level);
void SetJournal(bool on);
// The last warnings and errors (at most 32, oldest first), for the status
// page.
struct Entry {
  int64_t unix_ms = 0;
  Level level = Level::kWarn;
  std::string text;  // without the "strata: warn: " prefix
};
std::vector<Entry> RecentProblems();
bool Enabled(Level level);
// printf-style; the line is prefixed with the level ("strata: warn: ...").
void Write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace strata::log

#define LOG_DEBUG(...)                                                      \
  do {                                                                      \
    if (::strata::log::Enabled(::strata::log::Level::kDebug))               \
      ::strata::log::Write(::strata::log::Level::kDebug, __VA_ARGS__);      \
  } while (0)
#define LOG_INFO(...) ::strata::log::Write(::strata::log::Level::kInfo, __VA_ARGS__)
#define LOG_WARN(...) ::strata::log::Write(::strata::log::Level::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) ::strata::log::Write(::strata::log::Level::kError, __VA_ARGS__)
