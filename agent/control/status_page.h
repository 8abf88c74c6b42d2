// The status page: one self-contained HTML document (no external assets;
// it works on an air-gapped host) whose script reads /status.json and
// draws the figures and a chart of the last hour's hit ratio; and the
// history that chart is drawn from.
//
// Thread safety: StatusHistory is internally synchronized.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace strata::control {

const std::string& StatusPageHtml();

// Cumulative byte counters, sampled at most every 10 s for an hour.
class StatusHistory {
 public:
  struct Sample {
    int64_t unix_ms = 0;
    uint64_t bytes_read = 0, bytes_from_cache = 0, bytes_from_store = 0, bytes_from_peers = 0;
  };
  static constexpr int64_t kEveryMs = 10'000;
  static constexpr int64_t kKeepMs = 3600'000;

  // Adds `s` unless the last sample is younger than kEveryMs.
  void Add(const Sample& s);
  std::vector<Sample> Samples();

 private:
  std::mutex mu_;
  std::deque<Sample> samples_;  // guarded by mu_
};

// Path-like words of a log line ("/data/x.bin", "s3://b/k") shortened to
// "/…", for pages shown to people who may not see file names.
std::string RedactPaths(const std::string& text);

}  // namespace strata::control
