// A signed S3 request: the shared REST transport (ufs/rest.h: libcurl,
// deadlines, retries) with SigV4 and S3's addressing (path or host style).
//
// Thread safety: Execute may be called from any thread at once.
#pragma once

#include <mutex>
#include <string>

#include "agent/base/status.h"
#include "ufs/rest.h"
#include "ufs/s3/sigv4.h"
#include "ufs/ufs.h"

namespace strata::ufs::s3 {

struct Request {
  std::string method = "GET";
  std::string bucket;
  std::string key;  // raw object key, may be empty (bucket-level requests)
  Pairs query;
  Pairs headers;            // extra headers (Range, If-Match)
  char* sink = nullptr;     // GET bodies go here when set (at most sink_len bytes)
  size_t sink_len = 0;
  // Request body (PUT, POST); its SHA-256 is signed, so a body damaged on
  // the way is refused by the store.
  const char* body = nullptr;
  size_t body_len = 0;
  int timeout_ms = 0;       // overrides S3Options::request_timeout_ms when > 0
  int max_attempts = 0;     // overrides S3Options::max_attempts when > 0
  std::function<bool(const rest::Response&)> check_body;  // see rest::Request
};

// The transport's answer, with S3's user metadata picked out.
struct Response : rest::Response {
  Pairs meta;  // x-amz-meta-* headers, names lowercased without the prefix
};

class Client {
 public:
  Client(S3Options opts, Counters* counters);
  // Sends the request, retrying what is worth retrying. A non-OK Status means
  // no usable answer (network failure after all tries, deadline passed);
  // an HTTP error the store answered with comes back OK with http_status set.
  Status Execute(const Request& req, Response* resp);
  const S3Options& options() const { return opts_; }
  // New keys for the requests signed from now on (a reload after a
  // rotation); the options keep the keys the client started with.
  void SetKeys(Credentials keys);
  // "http://127.0.0.1:4568/bucket/key" as sent, for error messages.
  std::string Url(const Request& req) const;
  // rest::Client::ReadRange with S3's Range header.
  Result<size_t> ReadRange(const Request& req, uint64_t off, size_t len, const std::string& etag, char* buf,
                           const std::function<Status(const rest::Response&)>& error);

 private:
  rest::Request ToRest(const Request& req) const;

  const S3Options opts_;
  std::mutex keys_mu_;
  Credentials keys_;  // guarded by keys_mu_
  rest::Client http_;
};

using rest::Retryable;

}  // namespace strata::ufs::s3
