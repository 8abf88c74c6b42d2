// ListObjectsV2 responses and S3 time formats.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/status.h"

namespace strata::ufs::s3 {

struct ListedObject {
  std::string key;
  uint64_t size = 0;
  int64_t mtime_ms = 0;
  std::string etag;  // as the store sent it, quotes included
};

struct ListPage {
  std::vector<ListedObject> objects;
  std::vector<std::string> common_prefixes;  // full prefixes, trailing delimiter included
  bool truncated = false;
  std::string next_token;
};

// Parses one ListObjectsV2 page. Keys and prefixes are URL-decoded only when
// the response says <EncodingType>url</EncodingType> (s3rver ignores the
// request parameter and sends raw keys).
Result<ListPage> ParseListPage(std::string_view xml);
// "2009-10-12T17:50:30.000Z" -> ms since the epoch; -1 when unparsable.
int64_t ParseIso8601Ms(const std::string& s);
// "Wed, 12 Oct 2009 17:50:00 GMT" -> ms since the epoch; -1 when unparsable.
int64_t ParseHttpDateMs(const std::string& s);

}  // namespace strata::ufs::s3
