#include "agent/control/http.h"

#include <cctype>
#include <cstdlib>

#include "agent/base/hash.h"

namespace strata::control {

HttpParser::State HttpParser::Feed(std::string_view data) {
  if (state_ != State::kNeedMore) return state_;
  buf_.append(data);
  if (!head_done_) {
    size_t end = buf_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (buf_.size() > kMaxHead) return Fail("request head too large");
      return State::kNeedMore;
    }
    if (end > kMaxHead) return Fail("request head too large");
    if (ParseHead(std::string_view(buf_).substr(0, end)) == State::kError) return state_;
    buf_.erase(0, end + 4);
    head_done_ = true;
  }
  if (buf_.size() > body_len_) return Fail("more bytes than Content-Length");
  if (buf_.size() < body_len_) return State::kNeedMore;
  req_.body = std::move(buf_);
  state_ = State::kDone;
  return state_;
}

HttpParser::State HttpParser::ParseHead(std::string_view head) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return Fail("malformed request line");
  req_.method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return Fail("unsupported HTTP version");
  for (char c : req_.method)
    if (!std::isupper(static_cast<unsigned char>(c))) return Fail("malformed method");
  if (target.empty() || target[0] != '/') return Fail("malformed request target");
  size_t q = target.find('?');
  req_.path = UriDecode(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view qs = target.substr(q + 1);
    while (!qs.empty()) {
      size_t amp = qs.find('&');
      std::string_view kv = qs.substr(0, amp);
      size_t eq = kv.find('=');
      std::string k = UriDecode(kv.substr(0, eq), true);
      std::string v = eq == std::string_view::npos ? "" : UriDecode(kv.substr(eq + 1), true);
      if (!k.empty()) req_.query[k] = v;
      if (amp == std::string_view::npos) break;
      qs = qs.substr(amp + 1);
    }
  }
  while (eol != std::string_view::npos) {
    size_t start = eol + 2;
    eol = head.find("\r\n", start);
    std::string_view h = head.substr(start, eol == std::string_view::npos ? head.npos : eol - start);
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return Fail("malformed header line");
    std::string name(h.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view v = h.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    req_.headers[name] = std::string(v);
  }
  if (req_.headers.count("transfer-encoding")) return Fail("chunked bodies are not supported");
  auto cl = req_.headers.find("content-length");
  if (cl != req_.headers.end()) {
    char* end = nullptr;
    unsigned long long n = std::strtoull(cl->second.c_str(), &end, 10);
    if (cl->second.empty() || *end != '\0') return Fail("malformed Content-Length");
    if (n > kMaxBody) return Fail("body too large");
    body_len_ = static_cast<size_t>(n);
  }
  return State::kNeedMore;
}

std::string HttpResponse(int status, std::string_view content_type, std::string_view body) {
  const char* reason = "OK";
  switch (status) {
    case 200: reason = "OK"; break;
    case 202: reason = "Accepted"; break;
    case 400: reason = "Bad Request"; break;
    case 404: reason = "Not Found"; break;
    case 405: reason = "Method Not Allowed"; break;
    case 409: reason = "Conflict"; break;
    case 500: reason = "Internal Server Error"; break;
    case 503: reason = "Service Unavailable"; break;
    case 507: reason = "Insufficient Storage"; break;
    default: reason = "Error"; break;
  }
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  out += "Content-Type: " + std::string(content_type) + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  out.append(body);
  return out;
}

}  // namespace strata::control
