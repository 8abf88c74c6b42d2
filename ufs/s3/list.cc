#include "ufs/s3/list.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "agent/base/hash.h"
#include "ufs/s3/xml.h"

namespace strata::ufs::s3 {

Result<ListPage> ParseListPage(std::string_view xml) {
  Result<XmlNode> doc = ParseXml(xml);
  if (!doc.ok()) return doc.status();
  if (doc->name != "ListBucketResult")
    return Status::Corrupt("s3: expected ListBucketResult, got <" + doc->name + ">");
  bool url = doc->ChildText("EncodingType") == "url";
  auto decode = [url](const std::string& s) { return url ? UriDecode(s, true) : s; };
  ListPage page;
  page.truncated = doc->ChildText("IsTruncated") == "true";
  page.next_token = doc->ChildText("NextContinuationToken");
  for (const XmlNode& c : doc->children) {
    if (c.name == "Contents") {
      ListedObject o;
      o.key = decode(c.ChildText("Key"));
      o.size = std::strtoull(c.ChildText("Size").c_str(), nullptr, 10);
      o.mtime_ms = ParseIso8601Ms(c.ChildText("LastModified"));
      o.etag = c.ChildText("ETag");
      page.objects.push_back(std::move(o));
    } else if (c.name == "CommonPrefixes") {
      page.common_prefixes.push_back(decode(c.ChildText("Prefix")));
    }
  }
  if (page.truncated && page.next_token.empty())
    return Status::Corrupt("s3: truncated listing without NextContinuationToken");
  return page;
}

int64_t ParseIso8601Ms(const std::string& s) {
  struct tm tm = {};
  int ms = 0;
  int n = std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon,
                      &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms);
  if (n < 6) return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + (n == 7 ? ms : 0);
}

int64_t ParseHttpDateMs(const std::string& s) {
  struct tm tm = {};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr) return -1;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

}  // namespace strata::ufs::s3
