// Who may do what through the gateway: the credentials file, SigV4
// verification of S3 requests (the Authorization header and presigned
// URLs), and bearer tokens for the REST API.
//
// The file is JSON:
//   {"keys":   [{"access_key": "...", "secret_key": "...", "read": ["/"], "write": ["/data"]}],
//    "tokens": [{"token": "...", "read": [...], "write": [...]}]}
// `read` and `write` list namespace paths (a path grants itself and what is
// below it); left out, they grant everything; an empty list grants nothing. Reload() re-reads it (SIGHUP);
// a file that does not parse leaves the credentials in force.
//
// Signatures are checked with the project's signer (ufs/s3/sigv4.h) and
// compared in constant time; a request more than 15 minutes from this
// host's clock, or a presigned URL past its expiry, is refused.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/base/status.h"
#include "agent/gateway/http.h"

namespace strata::gateway {

struct Grant {
  std::string name;  // the access key, or "token:" and the token's first characters
  std::vector<std::string> read, write;
  bool read_all = true, write_all = true;  // the list was left out: everything
  bool Allows(const std::string& path, bool write) const;  // path: "bucket/key", no leading '/'
};

// An S3 error: the HTTP status, the S3 code and a message for the client.
struct S3Error {
  int status = 0;
  std::string code;
  std::string message;
  bool ok() const { return status == 0; }
};

// What a verified request may still need for its body: the declared payload
// hash, and for aws-chunked bodies the key and scope that sign each chunk.
struct Verified {
  const Grant* grant = nullptr;
  std::string payload_hash;  // x-amz-content-sha256: hex, UNSIGNED-PAYLOAD, STREAMING-...
  std::string signing_key;   // raw, for chunk signatures
  std::string scope;         // "20130524/us-east-1/s3/aws4_request"
  std::string amz_date;
  std::string seed_signature;
};

class Auth {
 public:
  static constexpr int64_t kSkewSeconds = 15 * 60;

  // Loads `file`; an empty path allows no one (every request is refused).
  static Result<std::unique_ptr<Auth>> Load(const std::string& file, std::string region);
  Status Reload();

  // Verifies an S3 request; on success *out names the grant (valid while
  // this Auth lives: grants are kept across reloads until the process ends).
  S3Error VerifyS3(const Request& req, int64_t now_s, Verified* out);
  // "Authorization: Bearer TOKEN"; nullptr when missing or unknown.
  const Grant* VerifyToken(const Request& req);
  const std::string& region() const { return region_; }

 private:
  struct Key {
    std::string access_key, secret_key;
    const Grant* grant;
  };
  struct Token {
    std::string token;
    const Grant* grant;
  };
  Auth(std::string file, std::string region) : file_(std::move(file)), region_(std::move(region)) {}
  Status Parse(const std::string& text);

  const std::string file_;
  const std::string region_;
  std::mutex mu_;
  std::vector<Key> keys_;      // guarded by mu_
  std::vector<Token> tokens_;  // guarded by mu_
  std::vector<std::unique_ptr<Grant>> grants_;  // guarded by mu_; only grows
};

}  // namespace strata::gateway
