#include "agent/base/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <mutex>

namespace strata::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_journal{false};
std::mutex g_recent_mu;
std::deque<Entry> g_recent;  // guarded by g_recent_mu
constexpr size_t kRecent = 32;
const char* Name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "?";
}
// syslog(3) priorities: debug 7, info 6, warning 4, err 3.
const char* Priority(Level l) {
  switch (l) {
    case Level::kDebug: return "<7>";
    case Level::kInfo: return "<6>";
    case Level::kWarn: return "<4>";
    case Level::kError: return "<3>";
  }
  return "<6>";
}
}  // namespace

void SetLevel(Level level) { g_level = static_cast<int>(level); }
void SetJournal(bool on) { g_journal = on; }
bool Enabled(Level level) { return static_cast<int>(level) >= g_level.load(); }

void Write(Level level, const char* fmt, ...) {
  if (!Enabled(level)) return;
  char buf[4096];
  int n = std::snprintf(buf, sizeof(buf), "%sstrata: %s: ", g_journal ? Priority(level) : "", Name(level));
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
  va_end(ap);
  size_t len = n + (m < 0 ? 0 : std::min<size_t>(m, sizeof(buf) - n - 2));
  if (level >= Level::kWarn) {
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
    std::lock_guard<std::mutex> l(g_recent_mu);
    g_recent.push_back({now, level, std::string(buf + n, len - n)});
    if (g_recent.size() > kRecent) g_recent.pop_front();
  }
  buf[len++] = '\n';
  ssize_t ignored = ::write(STDERR_FILENO, buf, len);
  (void)ignored;
}

std::vector<Entry> RecentProblems() {
  std::lock_guard<std::mutex> l(g_recent_mu);
  return std::vector<Entry>(g_recent.begin(), g_recent.end());
}

}  // namespace strata::log
