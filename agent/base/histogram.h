// A latency histogram with fixed bounds in seconds, written in Prometheus'
// text format (cumulative _bucket lines, _sum, _count).
//
// Thread safety: none; the owner guards it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>

namespace strata {

struct LatencyHistogram {
  static constexpr double kBoundsS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10,   30};
  uint64_t counts[std::size(kBoundsS) + 1] = {};  // the last: over every bound
  double sum_s = 0;

  void Observe(double seconds) {
    size_t i = 0;
    while (i < std::size(kBoundsS) && seconds > kBoundsS[i]) i++;
    counts[i]++;
    sum_s += seconds;
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t c : counts) n += c;
    return n;
  }
  // `labels`: "" or `op="GetObject"` (no braces).
  void AppendPrometheus(std::string* out, const std::string& name, const std::string& labels) const {
    std::string sep = labels.empty() ? "" : labels + ",";
    uint64_t cum = 0;
    char num[64];
    for (size_t i = 0; i < std::size(kBoundsS); i++) {
      cum += counts[i];
      std::snprintf(num, sizeof(num), "%g", kBoundsS[i]);
      *out += name + "_bucket{" + sep + "le=\"" + num + "\"} " + std::to_string(cum) + "\n";
    }
    cum += counts[std::size(kBoundsS)];
    *out += name + "_bucket{" + sep + "le=\"+Inf\"} " + std::to_string(cum) + "\n";
    std::snprintf(num, sizeof(num), "%.6f", sum_s);
    std::string braces = labels.empty() ? "" : "{" + labels + "}";
    *out += name + "_sum" + braces + " " + num + "\n";
    *out += name + "_count" + braces + " " + std::to_string(cum) + "\n";
  }
};

}  // namespace strata
