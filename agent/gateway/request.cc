#include "agent/gateway/request.h"

#include <cctype>

#include "agent/base/hash.h"

namespace strata::gateway {

std::string LowerAscii(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string TrimSpaces(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t')) a++;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) b--;
  return std::string(s.substr(a, b - a));
}

bool PercentDecode(std::string_view in, std::string* out, bool plus) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); i++) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int h = HexValue(in[i + 1]), l = HexValue(in[i + 2]);
      if (h < 0 || l < 0) return false;
      out->push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (c == '+' && plus) {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
  return true;
}

const std::string* Request::Header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

const std::string* Request::Query(std::string_view name) const {
  for (const auto& [k, v] : query)
    if (k == name) return &v;
  return nullptr;
}

bool ParseRequestHead(std::string_view head, size_t max_headers, Request* r, std::string* why) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t s1 = line.find(' '), s2 = line.rfind(' ');
  if (s1 == std::string_view::npos || s2 == s1) return (*why = "bad request line", false);
  r->method = std::string(line.substr(0, s1));
  r->target = std::string(line.substr(s1 + 1, s2 - s1 - 1));
  std::string_view version = line.substr(s2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return (*why = "unsupported HTTP version", false);
  if (r->target.empty() || r->target[0] != '/') return (*why = "bad request target", false);
  size_t q = r->target.find('?');
  r->raw_path = r->target.substr(0, q);
  r->raw_query = q == std::string::npos ? "" : r->target.substr(q + 1);
  if (!PercentDecode(r->raw_path, &r->path, false)) return (*why = "bad percent-encoding in the path", false);
  if (r->path.find('\0') != std::string::npos) return (*why = "NUL in the path", false);
  size_t at = 0;
  while (at < r->raw_query.size()) {
    size_t amp = r->raw_query.find('&', at);
    std::string_view part = std::string_view(r->raw_query).substr(at, amp == std::string::npos ? std::string::npos : amp - at);
    at = amp == std::string::npos ? r->raw_query.size() : amp + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string k, v;
    if (!PercentDecode(part.substr(0, eq), &k, true) ||
        !PercentDecode(eq == std::string_view::npos ? "" : part.substr(eq + 1), &v, true))
      return (*why = "bad percent-encoding in the query", false);
    r->query.emplace_back(std::move(k), std::move(v));
  }
  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    std::string_view h = head.substr(pos, e == std::string_view::npos ? std::string_view::npos : e - pos);
    pos = e == std::string_view::npos ? head.size() : e + 2;
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return (*why = "bad header line", false);
    if (r->headers.size() >= max_headers) return (*why = "too many headers", false);
    r->headers.emplace_back(LowerAscii(std::string(h.substr(0, colon))), TrimSpaces(h.substr(colon + 1)));
  }
  return true;
}

}  // namespace strata::gateway
