#include "agent/policy/cron.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <mutex>
#include <sstream>
#include <vector>

#include "agent/base/units.h"

namespace strata::policy {
namespace {

struct Field {
  const char* name;
  int lo, hi;
  const char* const* names;  // lowercase three-letter names from `lo`, or null
};
const char* const kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
const char* const kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
const Field kFields[] = {{"minute", 0, 59, nullptr},     {"hour", 0, 23, nullptr}, {"day of month", 1, 31, nullptr},
                         {"month", 1, 12, kMonths}, {"day of week", 0, 7, kDays}};

Result<int> Value(const std::string& s, const Field& f) {
  if (f.names != nullptr && s.size() == 3 && std::isalpha(static_cast<unsigned char>(s[0]))) {
    std::string lower;
    for (char c : s) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    int count = f.hi - f.lo + (f.names == kDays ? 0 : 1);
    for (int i = 0; i < count; i++)
      if (lower == f.names[i]) return f.lo + i;
  }
  char* end = nullptr;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0')
    return Status::InvalidArgument(std::string("cron ") + f.name + ": '" + s + "' is not a number" +
                                   (f.names ? " or a name" : ""));
  if (v < f.lo || v > f.hi)
    return Status::InvalidArgument(std::string("cron ") + f.name + ": " + s + " is out of range " +
                                   std::to_string(f.lo) + "-" + std::to_string(f.hi));
  return static_cast<int>(v);
}

// Sets the bits of one field ("*/15", "1-5", "mon,wed,fri", "0-23/2").
Status ParseField(const std::string& text, const Field& f, std::vector<bool>* bits) {
  bits->assign(f.hi + 1, false);
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    int step = 1;
    size_t slash = item.find('/');
    if (slash != std::string::npos) {
      char* end = nullptr;
      long st = std::strtol(item.c_str() + slash + 1, &end, 10);
      if (slash + 1 == item.size() || *end != '\0' || st < 1 || st > f.hi + 1)
        return Status::InvalidArgument(std::string("cron ") + f.name + ": bad step in '" + item + "'");
      step = static_cast<int>(st);
      item.resize(slash);
    }
    int a = f.lo, b = f.hi;
    if (item != "*") {
      size_t dash = item.find('-', 1);
      Result<int> lo = Value(item.substr(0, dash), f);
      if (!lo.ok()) return lo.status();
      a = b = *lo;
      if (dash != std::string::npos) {
        Result<int> hi = Value(item.substr(dash + 1), f);
        if (!hi.ok()) return hi.status();
        b = *hi;
        if (b < a) return Status::InvalidArgument(std::string("cron ") + f.name + ": range '" + item + "' runs backwards");
      } else if (slash != std::string::npos) {
        b = f.hi;  // "5/15": from 5 to the end, every 15
      }
    }
    for (int v = a; v <= b; v += step) (*bits)[v] = true;
  }
  if (text.empty() || text.back() == ',') return Status::InvalidArgument(std::string("cron ") + f.name + ": empty item");
  return Status::OK();
}

// Wall-clock time in a zone. glibc converts through the TZ environment
// variable, which is process-wide: conversions take turns.
std::mutex tz_mu;

void WithTz(const std::string& tz, const std::function<void()>& fn) {
  if (tz == "UTC" || tz == "local") return fn();
  std::lock_guard<std::mutex> lock(tz_mu);
  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  ::setenv("TZ", tz.c_str(), 1);
  ::tzset();
  fn();
  if (old) ::setenv("TZ", saved.c_str(), 1);
  else ::unsetenv("TZ");
  ::tzset();
}

struct tm ToWall(int64_t t, const std::string& tz) {
  struct tm out = {};
  time_t tt = static_cast<time_t>(t);
  if (tz == "UTC") ::gmtime_r(&tt, &out);
  else WithTz(tz, [&] { ::localtime_r(&tt, &out); });
  return out;
}

int64_t FromWall(struct tm wall, const std::string& tz) {
  if (tz == "UTC") return ::timegm(&wall);
  int64_t t = 0;
  wall.tm_isdst = -1;
  WithTz(tz, [&] { t = ::mktime(&wall); });
  return t;
}

// Calendar arithmetic on a wall time (no zone, no DST): 31 Jan + 1 day = 1 Feb.
void Normalize(struct tm* wall) {
  time_t t = ::timegm(wall);
  ::gmtime_r(&t, wall);
}

}  // namespace

Result<Schedule> Schedule::Parse(const std::string& spec_in, const std::string& tz) {
  Schedule s;
  s.spec_ = spec_in;
  s.tz_ = tz.empty() ? "UTC" : tz;
  std::string spec = spec_in;
  while (!spec.empty() && std::isspace(static_cast<unsigned char>(spec.back()))) spec.pop_back();
  while (!spec.empty() && std::isspace(static_cast<unsigned char>(spec.front()))) spec.erase(0, 1);
  if (s.tz_ != "UTC" && s.tz_ != "local") {
    struct stat st;
    if (s.tz_.find("..") != std::string::npos || ::stat(("/usr/share/zoneinfo/" + s.tz_).c_str(), &st) != 0 ||
        !S_ISREG(st.st_mode))
      return Status::InvalidArgument("unknown time zone '" + s.tz_ + "' (use UTC, local or an IANA name like Europe/Berlin)");
  }
  if (spec.empty()) return Status::InvalidArgument("empty schedule");
  if (std::isdigit(static_cast<unsigned char>(spec[0])) && spec.find(' ') == std::string::npos &&
      spec.find_first_of("*,-/") == std::string::npos) {
    Result<uint64_t> ms = ParseDurationMs(spec);
    if (!ms.ok() || *ms < 1000)
      return Status::InvalidArgument("bad interval '" + spec + "': use e.g. 30s, 15m, 2h, 1d (at least 1s)");
    s.interval_s_ = static_cast<int64_t>(*ms / 1000);
    return s;
  }
  static const std::pair<const char*, const char*> kShort[] = {
      {"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
      {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
      {"@annually", "0 0 1 1 *"}};
  if (spec[0] == '@') {
    bool found = false;
    for (const auto& [name, expansion] : kShort)
      if (spec == name) {
        spec = expansion;
        found = true;
      }
    if (!found) return Status::InvalidArgument("unknown shorthand '" + spec + "' (@hourly, @daily, @weekly, @monthly, @yearly)");
  }
  std::stringstream in(spec);
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  if (fields.size() != 5)
    return Status::InvalidArgument("cron '" + spec_in + "' has " + std::to_string(fields.size()) +
                                   " fields; want 5: minute hour day-of-month month day-of-week");
  std::vector<bool> bits[5];
  for (int i = 0; i < 5; i++) STRATA_RETURN_IF_ERROR(ParseField(fields[i], kFields[i], &bits[i]));
  for (int v = 0; v < 60; v++) s.minutes_[v] = bits[0][v];
  for (int v = 0; v < 24; v++) s.hours_[v] = bits[1][v];
  for (int v = 1; v <= 31; v++) s.mdays_[v] = bits[2][v];
  for (int v = 1; v <= 12; v++) s.months_[v] = bits[3][v];
  for (int v = 0; v <= 7; v++)
    if (bits[4][v]) s.wdays_[v % 7] = true;
  s.mday_any_ = fields[2][0] == '*';
  s.wday_any_ = fields[4][0] == '*';
  return s;
}

int64_t Schedule::Next(int64_t after_s) const {
  if (interval_s_ > 0) return after_s + interval_s_;
  struct tm w = ToWall((after_s / 60 + 1) * 60, tz_);
  w.tm_sec = 0;
  const int last_year = w.tm_year + 5;
  while (w.tm_year <= last_year) {
    if (!months_[w.tm_mon + 1]) {
      w.tm_mon++, w.tm_mday = 1, w.tm_hour = 0, w.tm_min = 0;
      Normalize(&w);
      continue;
    }
    bool mday = mdays_[w.tm_mday], wday = wdays_[w.tm_wday];
    bool day = mday_any_ && wday_any_ ? true : mday_any_ ? wday : wday_any_ ? mday : (mday || wday);
    if (!day) {
      w.tm_mday++, w.tm_hour = 0, w.tm_min = 0;
      Normalize(&w);
      continue;
    }
    if (!hours_[w.tm_hour]) {
      w.tm_hour++, w.tm_min = 0;
      Normalize(&w);
      continue;
    }
    if (!minutes_[w.tm_min]) {
      w.tm_min++;
      Normalize(&w);
      continue;
    }
    int64_t t = FromWall(w, tz_);
    struct tm back = ToWall(t, tz_);
    // A wall time skipped by DST reads back as another; a repeated one may
    // resolve before `after_s`. Either way: the next minute.
    if (t > after_s && back.tm_hour == w.tm_hour && back.tm_min == w.tm_min && back.tm_mday == w.tm_mday) return t;
    w.tm_min++;
    Normalize(&w);
  }
  return -1;
}

}  // namespace strata::policy
