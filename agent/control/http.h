// Just enough HTTP/1.1 for the control socket: one request per connection,
// Content-Length bodies, hard limits on every part. Anything else is a 400.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace strata::control {

struct HttpRequest {
  std::string method;
  std::string path;                          // decoded, without the query
  std::map<std::string, std::string> query;  // decoded
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

class HttpParser {
 public:
  static constexpr size_t kMaxHead = 16 * 1024;
  static constexpr size_t kMaxBody = 1024 * 1024;
  enum class State { kNeedMore, kDone, kError };

  // Feeds bytes; once kDone, request() is complete; once kError, error() says why.
  State Feed(std::string_view data);
  const HttpRequest& request() const { return req_; }
  const std::string& error() const { return error_; }

 private:
  State Fail(std::string why) {
    error_ = std::move(why);
    state_ = State::kError;
    return state_;
  }
  State ParseHead(std::string_view head);

  std::string buf_;
  HttpRequest req_;
  size_t body_len_ = 0;
  bool head_done_ = false;
  State state_ = State::kNeedMore;
  std::string error_;
};

// A full response with Content-Length and Connection: close.
std::string HttpResponse(int status, std::string_view content_type, std::string_view body);

}  // namespace strata::control
