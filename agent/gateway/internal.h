// Shared by gateway.cc and s3_api.cc: one request being served, the request
// body as an object's bytes (checksums, aws-chunked), and small formatters.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "agent/gateway/auth.h"
#include "agent/gateway/gateway.h"
#include "agent/gateway/http.h"

namespace strata::gateway {

struct Gateway::Call {
  Request& req;
  Body& body;
  Response& resp;
  std::string op;          // for the metrics: GetObject, PutObject ...
  std::string error;       // the S3 error code sent, "" when none
  std::string request_id;
  bool rest = false;       // JSON errors instead of S3 XML
  Verified verified;       // S3: who signed, and how the body is signed
  int64_t start_ms = 0;
  uint64_t bytes_in = 0;
  // Sends `e` as the API's error (or closes the connection mid-body).
  void Fail(const S3Error& e);
};

S3Error ErrorOf(const Status& s, const std::string& what);
// S3's limit on one PUT and on one part: 5 GiB.
constexpr uint64_t kMaxPutBytes = 5ull << 30;
// The body size the client declares (x-amz-decoded-content-length of an
// aws-chunked body, else Content-Length); 0 when it declares none.
uint64_t DeclaredLength(Gateway::Call& c);
// EntityTooLarge when the declared body is over kMaxPutBytes (checked before
// the body is read, so it is never sent), else OK.
S3Error SizeLimit(Gateway::Call& c);
// The whole (small) request body of an XML call, at most `limit` bytes;
// false with the S3 error sent when it does not come.
bool ReadSmallBody(Gateway::Call& c, size_t limit, std::string* body);
std::string XmlEscape(std::string_view s);
std::string HttpDate(int64_t ns);  // "Wed, 12 Oct 2009 17:50:00 GMT"
std::string IsoDate(int64_t ns);   // "2009-10-12T17:50:30.000Z"
int64_t ParseHttpDateS(const std::string& s);  // -1 when it is not one
std::string QuotedEtag(const std::string& etag);
std::string Md5Raw(std::string_view data);  // 16 bytes
// Content-Type and x-amz-meta-* of a request that writes an object (PUT,
// CopyObject with REPLACE, CreateMultipartUpload) as stored user metadata;
// S3's 2 KiB limit on the x-amz-meta-* headers. The keys s3fs-fuse gives
// POSIX meanings (mode, uid, gid, mtime, ...) are not taken from clients.
S3Error UserMetaOf(const Request& req, ufs::UserMeta* out);
// The headers a HEAD / GET answers with for that metadata.
void AddUserMetaHeaders(const ufs::UserMeta& m, bool rest, Headers* h);
// One line of text and back (a multipart upload keeps it until completion).
std::string EncodeUserMeta(const ufs::UserMeta& m);
ufs::UserMeta DecodeUserMeta(const std::string& line);
// A namespace path a client may name: no empty, "." or ".." segments, no
// NUL, no segment over 255 bytes. A trailing '/' is allowed (a directory).
bool SafeObjectPath(const std::string& path);

// The request body as the object's bytes: aws-chunked framing removed (and
// each chunk's signature checked), and the declared checksums verified at
// the end: x-amz-content-sha256, Content-MD5, an aws-chunked trailer's
// x-amz-checksum-*. Errors are InvalidArgument with the S3 code in the
// message's first word (BadDigest, XAmzContentSHA256Mismatch,
// SignatureDoesNotMatch, IncompleteBody ...).
class BodyDecoder {
 public:
  explicit BodyDecoder(Gateway::Call& c) : c_(c) {}
  ~BodyDecoder();
  Status Init();
  Result<size_t> Read(char* buf, size_t n);  // 0 at the end
  Status Finish();                           // after Read returned 0
  std::string md5_hex() const { return md5_hex_; }
  // The S3 error for a Status this decoder returned.
  static S3Error ErrorFor(const Status& s);

 private:
  Result<size_t> RawRead(char* buf, size_t n);
  Status ReadLine(std::string* line);
  Status StartChunk();

  Gateway::Call& c_;
  EVP_MD_CTX* md5_ = nullptr;
  EVP_MD_CTX* sha_ = nullptr;   // the whole payload (x-amz-content-sha256)
  EVP_MD_CTX* chunk_ = nullptr; // the current aws-chunked chunk
  std::string md5_hex_;
  bool chunked_ = false;        // aws-chunked framing
  bool signed_chunks_ = false;
  bool trailer_ = false;
  bool ended_ = false;
  uint64_t chunk_left_ = 0;
  std::string chunk_sig_;       // the current chunk's declared signature
  std::string prev_sig_;
  std::string pending_;         // raw bytes read ahead of the framing
  uint64_t decoded_ = 0;
  int64_t decoded_length_ = -1; // x-amz-decoded-content-length
  std::string trailer_algo_, trailer_value_;
  uint32_t crc_ = 0;
  bool crc32c_ = false;
};

}  // namespace strata::gateway
