// Schedules for policies: cron expressions and fixed intervals.
//
// Cron: five fields "minute hour day-of-month month day-of-week" with `*`,
// numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b,c`, month and
// weekday names (jan..dec, sun..sat; 7 is Sunday too), and the shorthands
// @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually). As
// in Vixie cron, when both day fields are restricted a day matches either.
// Times are wall-clock times in the schedule's time zone ("UTC", "local" or
// an IANA name such as "Europe/Berlin"): a time skipped by a DST change does
// not fire that day; a time repeated by one fires once.
//
// Interval: "15m", "30s", "2h", "1d" (see ParseDurationMs): every so long,
// counted from the previous fire.
//
// Thread safety: a Schedule is immutable; Next() may be called from any
// thread (time-zone conversions are serialised inside).
#pragma once

#include <bitset>
#include <cstdint>
#include <string>

#include "agent/base/status.h"

namespace strata::policy {

class Schedule {
 public:
  // `spec` is a cron expression, an @shorthand or an interval; `tz` applies
  // to cron expressions.
  static Result<Schedule> Parse(const std::string& spec, const std::string& tz = "UTC");

  // The first fire time strictly after `after_s` (Unix seconds); -1 when
  // none within five years (e.g. "0 0 30 2 *").
  int64_t Next(int64_t after_s) const;

  const std::string& spec() const { return spec_; }
  const std::string& tz() const { return tz_; }
  bool is_interval() const { return interval_s_ > 0; }

 private:
  std::string spec_, tz_;
  int64_t interval_s_ = 0;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> mdays_;  // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> wdays_;   // 0 = Sunday
  bool mday_any_ = true, wday_any_ = true;
};

}  // namespace strata::policy
