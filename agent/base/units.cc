#include "agent/base/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace strata {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Splits "1.5GiB" into 1.5 and "gib". False when there is no leading number.
bool SplitNumber(const std::string& text, double* number, std::string* unit) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) i++;
  size_t start = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    i++;
  if (i == start) return false;
  char* end = nullptr;
  std::string num = text.substr(start, i - start);
  *number = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size()) return false;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) i++;
  size_t j = text.size();
  while (j > i && std::isspace(static_cast<unsigned char>(text[j - 1]))) j--;
  *unit = Lower(text.substr(i, j - i));
  return true;
}

}  // namespace

Result<uint64_t> ParseSize(const std::string& text) {
  double number;
  std::string unit;
  if (!SplitNumber(text, &number, &unit))
    return Status::InvalidArgument("bad size '" + text + "' (use e.g. 512MiB, 10GiB)");
  double mult;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kib") mult = 1024.0;
  else if (unit == "m" || unit == "mib") mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gib") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tib") mult = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb") mult = 1e3;
  else if (unit == "mb") mult = 1e6;
  else if (unit == "gb") mult = 1e9;
  else if (unit == "tb") mult = 1e12;
  else
    return Status::InvalidArgument("bad size unit in '" + text +
                                   "' (use B, KiB, MiB, GiB, TiB or KB, MB, GB, TB)");
  double bytes = number * mult;
  if (!std::isfinite(bytes) || bytes >= 1.8e19)
    return Status::InvalidArgument("size '" + text + "' is too large");
  return static_cast<uint64_t>(std::llround(bytes));
}

std::string FormatSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[u]);
  return buf;
}

Result<uint64_t> ParseDurationMs(const std::string& text) {
  double number;
  std::string unit;
  if (!SplitNumber(text, &number, &unit))
    return Status::InvalidArgument("bad duration '" + text + "' (use e.g. 30s, 15m, 2h)");
  double mult;
  if (unit == "ms") mult = 1;
  else if (unit.empty() || unit == "s") mult = 1000;
  else if (unit == "m" || unit == "min") mult = 60e3;
  else if (unit == "h") mult = 3600e3;
  else if (unit == "d") mult = 86400e3;
  else return Status::InvalidArgument("bad duration unit in '" + text + "' (use ms, s, m, h, d)");
  return static_cast<uint64_t>(std::llround(number * mult));
}

}  // namespace strata
