// The transport the object-store drivers share: one REST request over
// libcurl, with deadlines and retries. Each driver signs its own requests
// (S3's SigV4, Azure's Shared Key) through a Signer and parses its own
// answers; everything about the connection is here once.
//
// Each calling thread keeps its own CURL easy handle, so keep-alive
// connections are reused across requests of that thread. Every request has an
// overall deadline (Options::request_timeout_ms, retries included) and a
// connect timeout; 5xx, 429, SlowDown / ServerBusy, throttling and
// connection errors are retried with exponential backoff and full jitter.
//
// Thread safety: Execute may be called from any thread at once.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/base/status.h"
#include "ufs/ufs.h"

namespace strata::ufs::rest {

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Options {
  std::string endpoint;  // "http://127.0.0.1:10000"
  int connect_timeout_ms = 5000;
  int request_timeout_ms = 30000;  // whole operation, retries included
  int max_attempts = 5;
  std::string ca_bundle;
};

struct Response;

struct Request {
  std::string method = "GET";
  std::string host;     // host[:port]; empty: the endpoint's
  std::string path;     // raw, unencoded, from '/' ("/bucket/a b"); sent percent-encoded
  Pairs query;          // raw names and values; sent sorted and encoded
  Pairs headers;        // extra headers (Range, If-Match, metadata)
  char* sink = nullptr;  // 2xx GET bodies go here when set (at most sink_len bytes)
  size_t sink_len = 0;
  const char* body = nullptr;  // PUT / POST body
  size_t body_len = 0;
  int timeout_ms = 0;    // overrides Options::request_timeout_ms when > 0
  int max_attempts = 0;  // overrides Options::max_attempts when > 0
  // When set, a 2xx answer whose body it refuses (a listing cut short or
  // garbled on the way) is retried like a 503.
  std::function<bool(const Response&)> check_body;
};

struct Response {
  long http_status = 0;
  std::string body;  // when no sink was given (errors, listings)
  size_t sink_written = 0;
  Pairs headers;     // names lowercased, in order
  std::string etag;
  std::string last_modified;
  uint64_t content_length = 0;
  std::string content_type;
  // The store's error code: <Code> of an XML <Error> body (S3 and Azure;
  // S3 also sends one with a 200 for CompleteMultipartUpload and
  // CopyObject), else Azure's x-ms-error-code header.
  std::string error_code;
  std::string error_message;
  const std::string* Header(std::string_view lowercase_name) const;
};

// Adds what authorizes `req` (dates, signatures) to `headers`, the headers
// about to be sent; `host` is the Host header.
using Signer = std::function<void(const Request& req, const std::string& host, Pairs* headers)>;

class Client {
 public:
  // `name` prefixes messages ("s3", "azure").
  Client(Options opts, Counters* counters, Signer sign, std::string name);
  // Sends the request, retrying what is worth retrying. A non-OK Status means
  // no usable answer (network failure after all tries, deadline passed);
  // an HTTP error the store answered with comes back OK with http_status set.
  Status Execute(const Request& req, Response* resp);
  const Options& options() const { return opts_; }
  // "http://127.0.0.1:10000/account/container/blob?x=1" as sent.
  std::string Url(const Request& req) const;
  // A ranged GET of [off, off + len) into buf, pinned to `etag` (If-Match,
  // and the ETag the answer names, for stores that ignore If-Match): the
  // count read, short only at the end of the object and 0 at or past it;
  // Stale when the object is no longer that version. `range_header` names
  // the header ("Range"; Azure's "x-ms-range"). Other HTTP errors are what
  // `error` makes of them. Counts the GET, its bytes and errors.
  Result<size_t> ReadRange(Request req, const char* range_header, uint64_t off, size_t len, const std::string& etag,
                           char* buf, const std::function<Status(const Request&, const Response&)>& error);
  // host[:port] of the endpoint.
  const std::string& host() const { return host_; }

 private:
  Status Once(const Request& req, Response* resp, long timeout_ms);

  const Options opts_;
  Counters* const counters_;
  const Signer sign_;
  const std::string name_;
  std::string scheme_;
  std::string host_;
};

// Runs fn(i, scratch) for every i in [0, n) on up to `threads` threads (the
// caller's among them), each with its own scratch buffer. After the first
// failure no further part starts; that failure is returned.
Status RunParallel(uint64_t n, int threads, const std::function<Status(uint64_t i, std::vector<char>* scratch)>& fn);

// Runs `aside` on a long-lived pool thread (which keeps its keep-alive
// connections) while `here` runs on the caller's thread, and returns when
// both are done. When no pool thread has taken `aside` by the time `here`
// ends, the caller runs it itself: a busy pool costs latency, never a wait.
void RunBeside(const std::function<void()>& aside, const std::function<void()>& here);

// True for answers worth retrying: 500, 502, 503, 504, 429, SlowDown,
// ServerBusy, throttling, timeouts.
bool Retryable(const Response& r);

}  // namespace strata::ufs::rest
