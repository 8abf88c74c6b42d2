// libFuzzer target for the agent's other parsers of outside text: the S3 XML
// reader and ListObjectsV2 pages (what a store, or anything posing as one,
// answers), the control API's HTTP parser (any local client), the policy
// schedules (cron expressions, intervals, time zones), sizes and durations
// (flags, config, policies), and Azure connection strings (environment).
// The first byte picks the parser; the rest is its input. Nothing may
// crash, hang or read out of bounds; a Next() never goes backwards.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/base/units.h"
#include "agent/control/http.h"
#include "agent/policy/cron.h"
#include "ufs/azure/shared_key.h"
#include "ufs/s3/list.h"
#include "ufs/s3/xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t which = data[0];
  std::string in(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which % 6) {
    case 0: {
      auto doc = strata::ufs::s3::ParseXml(in);
      if (doc.ok()) (void)doc->ChildText("Key");
      break;
    }
    case 1: {
      auto page = strata::ufs::s3::ParseListPage(in);
      if (page.ok() && page->truncated && page->next_token.empty() && page->objects.size() > (size_t{1} << 30))
        std::abort();
      (void)strata::ufs::s3::ParseHttpDateMs(in);
      (void)strata::ufs::s3::ParseIso8601Ms(in);
      break;
    }
    case 2: {
      // Fed in two pieces, as a socket delivers them.
      strata::control::HttpParser p;
      size_t cut = in.empty() ? 0 : static_cast<uint8_t>(in[0]) % in.size();
      auto st = p.Feed(std::string_view(in).substr(0, cut));
      if (st == strata::control::HttpParser::State::kNeedMore) st = p.Feed(std::string_view(in).substr(cut));
      if (st == strata::control::HttpParser::State::kDone && p.request().body.size() > strata::control::HttpParser::kMaxBody)
        std::abort();
      break;
    }
    case 3: {
      size_t bar = in.find('|');
      auto s = strata::policy::Schedule::Parse(in.substr(0, bar), bar == std::string::npos ? "UTC" : in.substr(bar + 1));
      if (s.ok()) {
        const int64_t after = 1700000000;
        int64_t next = s->Next(after);
        if (next != -1 && next <= after) std::abort();
      }
      break;
    }
    case 4:
      (void)strata::ParseSize(in);
      (void)strata::ParseDurationMs(in);
      break;
    case 5:
      (void)strata::ufs::azure::ParseConnectionString(in);
      break;
  }
  return 0;
}
