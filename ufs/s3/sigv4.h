// AWS Signature Version 4 for S3 requests, computed with OpenSSL.
//
// libcurl's built-in CURLOPT_AWS_SIGV4 in Debian 12 (7.88) leaves out
// x-amz-content-sha256 and mis-sorts some query strings, so Strata signs
// requests itself and uses curl only as the transport. Proven against AWS's
// published vectors and against the AWS SDK's signer (tests/unit/sigv4_test.cc).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace strata::ufs::s3 {

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty unless temporary credentials
};

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct SignInput {
  std::string method;        // "GET"
  std::string path;          // raw, unencoded ("/bucket/a b.txt"); encoded once here
  Pairs query;               // raw, unencoded names and values
  Pairs headers;             // every header to sign, including host and x-amz-date
  std::string payload_hash;  // hex sha256 of the body, or "UNSIGNED-PAYLOAD"
  std::string region;
  std::string service = "s3";
  std::string amz_date;      // "20150830T123600Z"
};

struct Signature {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // hex
  std::string authorization;   // the Authorization header value
};

Signature SignV4(const SignInput& in, const Credentials& creds);
// The derived key that signs requests of one day, region and service (raw
// bytes): what SignV4 uses, and what checks aws-chunked chunk signatures.
std::string SigningKey(const std::string& secret_key, const std::string& date, const std::string& region,
                       const std::string& service);
// "20150830T123600Z" for a Unix time in seconds.
std::string AmzDate(long unix_seconds);

}  // namespace strata::ufs::s3
