// A signed S3 request over libcurl, with deadlines and retries.
//
// Each calling thread keeps its own CURL easy handle, so keep-alive
// connections are reused across requests of that thread. Every request has an
// overall deadline (S3Options::request_timeout_ms, retries included) and a
// connect timeout; 5xx, SlowDown, throttling and connection errors are retried
// with exponential backoff and full jitter.
//
// Thread safety: Execute may be called from any thread at once.
#pragma once

#include <string>

#include "agent/base/status.h"
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
};

struct Response {
  long http_status = 0;
  std::string body;        // when no sink was given (errors, listings)
  size_t sink_written = 0;
  std::string etag;
  std::string last_modified;
  uint64_t content_length = 0;
  std::string content_type;
  Pairs meta;              // x-amz-meta-* headers, names lowercased without the prefix
  std::string error_code;  // S3 <Code> from an error body ("NoSuchBucket"), also from a 200
                           // answer that carries an <Error> (CompleteMultipartUpload, CopyObject)
  std::string error_message;
};

class Client {
 public:
  Client(S3Options opts, Counters* counters);
  // Sends the request, retrying what is worth retrying. A non-OK Status means
  // no usable answer (network failure after all tries, deadline passed);
  // an HTTP error the store answered with comes back OK with http_status set.
  Status Execute(const Request& req, Response* resp);
  const S3Options& options() const { return opts_; }
  // "http://127.0.0.1:4568/bucket/key" as sent, for error messages.
  std::string Url(const Request& req) const;

 private:
  Status Once(const Request& req, Response* resp, long timeout_ms);

  const S3Options opts_;
  Counters* const counters_;
  std::string scheme_;
  std::string host_;  // host[:port] of the endpoint
};

// True for answers worth retrying: 500, 502, 503, 504, SlowDown, throttling.
bool Retryable(const Response& r);

}  // namespace strata::ufs::s3
