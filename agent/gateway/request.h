// One HTTP request's head as the gateway sees it, and its parser: the
// request line and headers (no body), with the path and query decoded.
// Kept apart from the server so the fuzzer can drive it alone.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata::gateway {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;
  std::string target;     // as sent: "/bucket/key?x=1"
  std::string raw_path;   // the target's path, still percent-encoded
  std::string raw_query;  // after '?', still encoded
  std::string path;       // decoded
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  Headers headers;        // names lowercased, in order
  std::string remote;     // the client's address

  // The first header of that (lowercase) name, or nullptr.
  const std::string* Header(std::string_view name) const;
  const std::string* Query(std::string_view name) const;
  bool HasQuery(std::string_view name) const { return Query(name) != nullptr; }
};

// Decodes %XX escapes (and '+' as a space when `plus`); false on a bad escape.
bool PercentDecode(std::string_view in, std::string* out, bool plus);

std::string LowerAscii(std::string s);
std::string TrimSpaces(std::string_view s);  // spaces and tabs at both ends

// Parses a request head (without the final CRLFCRLF) into *r: the request
// line, then "Name: value" lines (names lowercased). False with a reason
// for anything malformed, a bad escape, a NUL in the path, more than
// `max_headers` headers.
bool ParseRequestHead(std::string_view head, size_t max_headers, Request* r, std::string* why);

}  // namespace strata::gateway
