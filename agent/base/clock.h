// Time helpers. Wall time is for metadata TTLs and what users see; monotonic
// time for deadlines and rates.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

namespace strata {

inline int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
inline int64_t NowUnixNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
inline int64_t NowMonoMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A Unix time in seconds as UTC text, in a strftime(3) format
// ("%a, %d %b %Y %H:%M:%S GMT" for HTTP dates).
inline std::string FormatUtc(int64_t unix_seconds, const char* format) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), format, &tm);
  return std::string(buf, n);
}

// The wall clock as the cache's policies see it: block access times, idle
// ages, TTLs and schedules. The agent uses the system clock; tests (and
// `strata-agent --test-clock`) use a ManualClock they move by hand.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t NowMs() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override { return NowUnixMs(); }
  static const Clock* Get() {
    static const SystemClock clock;
    return &clock;
  }
};

// Thread safety: all methods may be called from any thread.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ms) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  void Advance(int64_t ms) { now_ms_ += ms; }
  void Set(int64_t ms) { now_ms_ = ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

}  // namespace strata
