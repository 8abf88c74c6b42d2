// The small parts behind operations: the latency histogram's Prometheus
// text, the status page's history and path shortening, the credentials
// file, the systemd environment checks.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>

#include "agent/base/histogram.h"
#include "agent/base/systemd.h"
#include "agent/control/status_page.h"
#include "ufs/ufs.h"

using namespace strata;

TEST_CASE("a latency histogram is written cumulatively, with +Inf, _sum and _count", "[unit]") {
  LatencyHistogram h;
  h.Observe(0.0005);  // <= 1 ms
  h.Observe(0.003);   // <= 5 ms
  h.Observe(0.003);
  h.Observe(100);     // over every bound
  std::string out;
  h.AppendPrometheus(&out, "x_seconds", "source=\"store\"");
  CHECK(out.find("x_seconds_bucket{source=\"store\",le=\"0.001\"} 1\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{source=\"store\",le=\"0.0025\"} 1\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{source=\"store\",le=\"0.005\"} 3\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{source=\"store\",le=\"30\"} 3\n") != std::string::npos);
  CHECK(out.find("x_seconds_bucket{source=\"store\",le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(out.find("x_seconds_sum{source=\"store\"} 100.006500\n") != std::string::npos);
  CHECK(out.find("x_seconds_count{source=\"store\"} 4\n") != std::string::npos);
  CHECK(h.count() == 4);
  std::string bare;
  LatencyHistogram().AppendPrometheus(&bare, "y_seconds", "");
  CHECK(bare.find("y_seconds_bucket{le=\"+Inf\"} 0\n") != std::string::npos);
  CHECK(bare.find("y_seconds_count 0\n") != std::string::npos);
}

TEST_CASE("the status page keeps a sample every 10 s for an hour, and shortens paths in log lines", "[unit]") {
  control::StatusHistory h;
  for (int64_t t = 0; t <= 2 * 3600'000; t += 1000) h.Add({t, static_cast<uint64_t>(t), 0, 0, 0});
  std::vector<control::StatusHistory::Sample> s = h.Samples();
  REQUIRE(!s.empty());
  CHECK(s.back().unix_ms == 2 * 3600'000);
  CHECK(s.back().unix_ms - s.front().unix_ms <= control::StatusHistory::kKeepMs);
  CHECK(s.size() == 361);
  for (size_t i = 1; i < s.size(); i++) CHECK(s[i].unix_ms - s[i - 1].unix_ms == 10'000);

  CHECK(control::RedactPaths("cache: dropping block /var/cache/strata/blocks/ab/x.blk (copy 3): EIO") ==
        "cache: dropping block /\xE2\x80\xA6 (copy 3): EIO");
  CHECK(control::RedactPaths("reading 'data/train/a.bin' from s3://bucket/key failed") ==
        "reading 'data/\xE2\x80\xA6' from s3:/\xE2\x80\xA6 failed");
  CHECK(control::RedactPaths("no path here") == "no path here");
  CHECK(control::StatusPageHtml().find("status.json") != std::string::npos);
}

TEST_CASE("a credentials file in systemd's EnvironmentFile format", "[unit]") {
  char dir[] = "/tmp/strata-creds-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  std::string path = std::string(dir) + "/agent.env";
  std::ofstream(path) << "# keys of the store\n\nAWS_ACCESS_KEY_ID=AKIA1\nexport AWS_SECRET_ACCESS_KEY=\"s e c\"\n"
                      << "  AWS_SESSION_TOKEN='tok=en" << std::string(20000, 'x') << "'\n; another comment\r\n";
  Result<std::map<std::string, std::string>> v = ufs::ReadCredentialsFile(path);
  REQUIRE(v.ok());
  CHECK(v->size() == 3);
  CHECK(v->at("AWS_ACCESS_KEY_ID") == "AKIA1");
  CHECK(v->at("AWS_SECRET_ACCESS_KEY") == "s e c");
  CHECK(v->at("AWS_SESSION_TOKEN") == "tok=en" + std::string(20000, 'x'));  // a line longer than any buffer
  // Missing: no keys (the unit's file is optional); a broken line: an error naming it.
  Result<std::map<std::string, std::string>> none = ufs::ReadCredentialsFile(std::string(dir) + "/none.env");
  REQUIRE(none.ok());
  CHECK(none->empty());
  std::ofstream(path) << "AWS_ACCESS_KEY_ID=x\nnot a pair\n";
  Result<std::map<std::string, std::string>> bad = ufs::ReadCredentialsFile(path);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("agent.env:2: expected KEY=VALUE") != std::string::npos);
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST_CASE("the systemd environment: a watchdog for us or for another process, the journal stream", "[unit]") {
  ::unsetenv("NOTIFY_SOCKET");
  CHECK_FALSE(systemd::Notify("READY=1"));  // not under a service manager: a no-op
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  ::unsetenv("WATCHDOG_PID");
  CHECK(systemd::WatchdogIntervalMs() == 3000);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  CHECK(systemd::WatchdogIntervalMs() == 3000);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  CHECK(systemd::WatchdogIntervalMs() == 0);  // meant for another process
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  CHECK(systemd::WatchdogIntervalMs() == 0);
  ::setenv("JOURNAL_STREAM", "1:1", 1);
  CHECK_FALSE(systemd::StderrIsJournal());
  ::unsetenv("JOURNAL_STREAM");
  CHECK(systemd::MonotonicUsec().rfind("MONOTONIC_USEC=", 0) == 0);
}
