// Cron parsing and next-fire times against a table of known answers: month
// ends, leap days, steps, lists, names, the day-of-month/day-of-week OR rule,
// and the two DST changes of America/New_York in 2026.
#include <cstdlib>
#include <ctime>

#include <catch2/catch.hpp>

#include "agent/policy/cron.h"

using strata::policy::Schedule;

namespace {

// Test-side conversions through the C library (not the module's code path).
int64_t At(const std::string& wall, const std::string& tz) {
  struct tm t = {};
  REQUIRE(strptime(wall.c_str(), "%Y-%m-%d %H:%M", &t) != nullptr);
  t.tm_isdst = -1;
  setenv("TZ", tz.c_str(), 1);
  tzset();
  int64_t s = mktime(&t);
  unsetenv("TZ");
  tzset();
  return s;
}

std::string Wall(int64_t s, const std::string& tz) {
  if (s < 0) return "never";
  time_t tt = static_cast<time_t>(s);
  struct tm t = {};
  setenv("TZ", tz.c_str(), 1);
  tzset();
  localtime_r(&tt, &t);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M %Z", &t);
  unsetenv("TZ");
  tzset();
  return buf;
}

std::string Next(const std::string& spec, const std::string& after, const std::string& tz = "UTC") {
  auto s = Schedule::Parse(spec, tz);
  INFO(spec << ": " << s.status().message());
  REQUIRE(s.ok());
  return Wall(s->Next(At(after, tz)), tz);
}

}  // namespace

TEST_CASE("cron next-fire times match a table of known answers", "[unit][cron]") {
  struct Case {
    const char* spec;
    const char* after;
    const char* want;
  };
  const Case cases[] = {
      {"*/15 * * * *", "2026-01-01 00:07", "2026-01-01 00:15 UTC"},
      {"*/15 * * * *", "2026-01-01 00:45", "2026-01-01 01:00 UTC"},
      {"5/20 * * * *", "2026-01-01 10:26", "2026-01-01 10:45 UTC"},
      {"0 0 31 * *", "2026-04-15 00:00", "2026-05-31 00:00 UTC"},           // April has 30 days
      {"59 23 31 12 *", "2026-12-31 23:59", "2027-12-31 23:59 UTC"},        // year end
      {"0 12 29 2 *", "2026-03-01 00:00", "2028-02-29 12:00 UTC"},          // next leap day
      {"0 0 30 2 *", "2026-01-01 00:00", "never"},                          // no 30 February
      {"30 9 * * mon-fri", "2026-11-20 10:00", "2026-11-23 09:30 UTC"},     // Friday after 9:30 -> Monday
      {"0 0 1,15 * 5", "2026-11-02 00:00", "2026-11-06 00:00 UTC"},         // both day fields: either
      {"0 22 * * 1-5/2", "2026-11-24 00:00", "2026-11-25 22:00 UTC"},       // Mon, Wed, Fri
      {"0 0 * jan,jul sun", "2026-06-30 00:00", "2026-07-05 00:00 UTC"},    // names
      {"0 0 * * 7", "2026-11-22 00:00", "2026-11-29 00:00 UTC"},            // 7 is Sunday
      {"@hourly", "2026-01-01 00:00", "2026-01-01 01:00 UTC"},
      {"@daily", "2026-02-28 12:00", "2026-03-01 00:00 UTC"},
      {"@weekly", "2026-11-22 00:00", "2026-11-29 00:00 UTC"},
      {"@monthly", "2026-12-15 08:00", "2027-01-01 00:00 UTC"},
      {"@yearly", "2026-06-01 00:00", "2027-01-01 00:00 UTC"},
      {"0 2 * * *", "2026-03-07 12:00", "2026-03-08 02:00 UTC"},
  };
  for (const Case& c : cases) {
    INFO(c.spec << " after " << c.after);
    CHECK(Next(c.spec, c.after) == c.want);
  }
}

TEST_CASE("cron in a time zone across DST changes", "[unit][cron]") {
  const std::string ny = "America/New_York";
  // 8 March 2026: 02:00 jumps to 03:00, so 02:30 does not exist that day.
  CHECK(Next("30 2 * * *", "2026-03-07 03:00", ny) == "2026-03-09 02:30 EDT");
  CHECK(Next("0 9 * * *", "2026-03-07 10:00", ny) == "2026-03-08 09:00 EDT");
  // 1 November 2026: 02:00 falls back to 01:00; 01:30 happens twice, fires once.
  auto daily = Schedule::Parse("30 1 * * *", ny);
  REQUIRE(daily.ok());
  int64_t first = daily->Next(At("2026-11-01 00:00", ny));
  CHECK(Wall(first, ny) == "2026-11-01 01:30 EDT");
  int64_t second = daily->Next(first);
  CHECK(Wall(second, ny) == "2026-11-02 01:30 EST");
  CHECK(second - first == 25 * 3600);
  // Every 30 minutes: the repeated hour is not run twice.
  auto half = Schedule::Parse("*/30 * * * *", ny);
  REQUIRE(half.ok());
  int64_t t = half->Next(first);
  CHECK(Wall(t, ny) == "2026-11-01 02:00 EST");
}

TEST_CASE("intervals count from the previous fire", "[unit][cron]") {
  auto s = Schedule::Parse("15m");
  REQUIRE(s.ok());
  CHECK(s->is_interval());
  CHECK(s->Next(1000) == 1000 + 900);
  CHECK(Schedule::Parse("2h")->Next(0) == 7200);
}

TEST_CASE("bad schedules are refused with a reason", "[unit][cron]") {
  const char* bad[][2] = {{"61 * * * *", "out of range"},  {"* * * *", "4 fields"},
                          {"*/0 * * * *", "bad step"},      {"5-1 * * * *", "backwards"},
                          {"@sometimes", "unknown shorthand"}, {"0 0 * * foo", "not a number"},
                          {"0 0 32 * *", "out of range"},    {"0 0 * 13 *", "out of range"},
                          {"1,,2 * * * *", "not a number"},  {"0s", "at least 1s"}};
  for (auto& b : bad) {
    auto s = Schedule::Parse(b[0]);
    INFO(b[0] << " -> " << s.status().message());
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().message().find(b[1]) != std::string::npos);
  }
  auto tz = Schedule::Parse("@daily", "Mars/Olympus_Mons");
  REQUIRE_FALSE(tz.ok());
  CHECK(tz.status().message().find("unknown time zone") != std::string::npos);
}
