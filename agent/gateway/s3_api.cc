// The S3 operations of the gateway, over the namespace: buckets are the
// top-level directories, keys the paths below them.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <future>

#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "agent/cache/reader.h"
#include "agent/gateway/gateway.h"
#include "agent/gateway/internal.h"
#include "ufs/s3/xml.h"

namespace strata::gateway {

namespace {

const char kXmlHead[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
const char kNs[] = "http://s3.amazonaws.com/doc/2006-03-01/";
const std::string kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr size_t kMaxXmlBody = 2 << 20;

std::string DigestHex(EVP_MD_CTX* ctx) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  return Hex(std::string_view(reinterpret_cast<char*>(md), n));
}

EVP_MD_CTX* NewDigest(const EVP_MD* md) {
  EVP_MD_CTX* c = EVP_MD_CTX_new();
  EVP_DigestInit_ex(c, md, nullptr);
  return c;
}

// CRC-32C (Castagnoli), reflected, for aws-chunked trailers.
uint32_t Crc32c(uint32_t crc, const unsigned char* p, size_t n) {
  static uint32_t table[256];
  static bool ready = [] {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)ready;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

Status Bad(const std::string& code, const std::string& message) { return Status::InvalidArgument(code + " " + message); }

}  // namespace

// --- the body ---

BodyDecoder::~BodyDecoder() {
  for (EVP_MD_CTX* c : {md5_, sha_, chunk_})
    if (c != nullptr) EVP_MD_CTX_free(c);
}

S3Error BodyDecoder::ErrorFor(const Status& s) {
  if (s.code() != Status::Code::kInvalidArgument) return ErrorOf(s, "");
  const std::string& m = s.message();
  size_t sp = m.find(' ');
  std::string code = m.substr(0, sp), msg = sp == std::string::npos ? m : m.substr(sp + 1);
  int status = code == "SignatureDoesNotMatch" ? 403 : 400;
  return {status, code, msg};
}

Status BodyDecoder::Init() {
  md5_ = NewDigest(EVP_md5());
  const std::string& ph = c_.verified.payload_hash;
  if (ph.rfind("STREAMING-", 0) == 0) {
    chunked_ = true;
    signed_chunks_ = ph.rfind("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", 0) == 0;
    trailer_ = ph.size() > 8 && ph.compare(ph.size() - 8, 8, "-TRAILER") == 0;
    if (!signed_chunks_ && ph != "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
      return Bad("InvalidArgument", "unsupported x-amz-content-sha256 " + ph);
    prev_sig_ = c_.verified.seed_signature;
    if (const std::string* d = c_.req.Header("x-amz-decoded-content-length"); d != nullptr) {
      char* e = nullptr;
      decoded_length_ = static_cast<int64_t>(std::strtoull(d->c_str(), &e, 10));
      if (d->empty() || *e != '\0') return Bad("InvalidArgument", "bad x-amz-decoded-content-length");
    }
    if (trailer_) {
      const std::string* t = c_.req.Header("x-amz-trailer");
      if (t != nullptr) trailer_algo_ = *t;
    }
  } else if (ph.size() == 64 && ph != "UNSIGNED-PAYLOAD") {
    sha_ = NewDigest(EVP_sha256());
  }
  return Status::OK();
}

Result<size_t> BodyDecoder::RawRead(char* buf, size_t n) {
  if (!pending_.empty()) {
    size_t take = std::min(n, pending_.size());
    std::memcpy(buf, pending_.data(), take);
    pending_.erase(0, take);
    return take;
  }
  return c_.body.Read(buf, n);
}

Status BodyDecoder::ReadLine(std::string* line) {
  line->clear();
  char ch;
  while (line->size() < 4096) {
    Result<size_t> n = RawRead(&ch, 1);
    if (!n.ok()) return n.status();
    if (*n == 0) return Bad("IncompleteBody", "the aws-chunked body ended early");
    if (ch == '\n') {
      if (!line->empty() && line->back() == '\r') line->pop_back();
      return Status::OK();
    }
    line->push_back(ch);
  }
  return Bad("InvalidArgument", "an aws-chunked line is too long");
}

Status BodyDecoder::StartChunk() {
  // Verifies the chunk just read (its signature covers its bytes), then reads the next header.
  if (chunk_ != nullptr) {
    std::string data_hash = DigestHex(chunk_);
    EVP_MD_CTX_free(chunk_);
    chunk_ = nullptr;
    std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n" + c_.verified.amz_date + "\n" + c_.verified.scope + "\n" + prev_sig_ +
                      "\n" + kEmptySha + "\n" + data_hash;
    std::string want = Hex(HmacSha256(c_.verified.signing_key, sts));
    if (want != chunk_sig_) return Bad("SignatureDoesNotMatch", "a chunk signature does not match");
    prev_sig_ = chunk_sig_;
  }
  std::string line;
  STRATA_RETURN_IF_ERROR(ReadLine(&line));
  size_t semi = line.find(';');
  std::string size_hex = line.substr(0, semi);
  if (size_hex.empty() || size_hex.size() > 16) return Bad("InvalidArgument", "bad aws-chunked chunk size");
  uint64_t size = 0;
  for (char ch : size_hex) {
    int v = HexValue(ch);
    if (v < 0) return Bad("InvalidArgument", "bad aws-chunked chunk size");
    size = size * 16 + static_cast<uint64_t>(v);
  }
  if (signed_chunks_) {
    const std::string key = "chunk-signature=";
    size_t at = line.find(key);
    if (at == std::string::npos) return Bad("SignatureDoesNotMatch", "a chunk has no signature");
    chunk_sig_ = line.substr(at + key.size());
    chunk_ = NewDigest(EVP_sha256());
  }
  chunk_left_ = size;
  if (size == 0) {
    if (signed_chunks_) STRATA_RETURN_IF_ERROR(StartChunk());  // the final, empty chunk is signed too
    // Trailers ("name:value" lines) until an empty line.
    for (;;) {
      STRATA_RETURN_IF_ERROR(ReadLine(&line));
      if (line.empty()) break;
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon), value = line.substr(colon + 1);
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (name.rfind("x-amz-checksum-", 0) == 0) {
        trailer_algo_ = name;
        trailer_value_ = value;
      }
    }
    ended_ = true;
  }
  return Status::OK();
}

Result<size_t> BodyDecoder::Read(char* buf, size_t n) {
  size_t got = 0;
  if (!chunked_) {
    Result<size_t> r = c_.body.Read(buf, n);
    if (!r.ok()) return r.status();
    got = *r;
  } else {
    while (!ended_ && chunk_left_ == 0) {
      if (decoded_ > 0 || chunk_ != nullptr || !chunk_sig_.empty()) {
        // The CRLF after a chunk's data.
        std::string line;
        STRATA_RETURN_IF_ERROR(ReadLine(&line));
        if (!line.empty()) return Bad("InvalidArgument", "an aws-chunked chunk is not followed by CRLF");
      }
      STRATA_RETURN_IF_ERROR(StartChunk());
    }
    if (ended_) return size_t{0};
    Result<size_t> r = RawRead(buf, std::min<uint64_t>(n, chunk_left_));
    if (!r.ok()) return r.status();
    if (*r == 0) return Bad("IncompleteBody", "the aws-chunked body ended inside a chunk");
    got = *r;
    chunk_left_ -= got;
    if (chunk_ != nullptr) EVP_DigestUpdate(chunk_, buf, got);
  }
  EVP_DigestUpdate(md5_, buf, got);
  if (sha_ != nullptr) EVP_DigestUpdate(sha_, buf, got);
  if (!trailer_algo_.empty() || trailer_) {
    crc_ = trailer_algo_ == "x-amz-checksum-crc32c" ? Crc32c(crc_, reinterpret_cast<unsigned char*>(buf), got)
                                                    : static_cast<uint32_t>(crc32(crc_, reinterpret_cast<Bytef*>(buf), static_cast<uInt>(got)));
  }
  decoded_ += got;
  return got;
}

Status BodyDecoder::Finish() {
  std::string md5_raw;
  {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(md5_, md, &n);
    md5_raw.assign(reinterpret_cast<char*>(md), n);
    md5_hex_ = Hex(md5_raw);
  }
  if (const std::string* cm = c_.req.Header("content-md5"); cm != nullptr) {
    std::string want;
    if (!Unbase64(*cm, &want) || want.size() != 16) return Bad("InvalidDigest", "The Content-MD5 you specified is not valid");
    if (want != md5_raw) return Bad("BadDigest", "The Content-MD5 you specified did not match what we received");
  }
  if (sha_ != nullptr && DigestHex(sha_) != c_.verified.payload_hash)
    return Bad("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed");
  if (chunked_ && decoded_length_ >= 0 && static_cast<uint64_t>(decoded_length_) != decoded_)
    return Bad("IncompleteBody", "The body is not x-amz-decoded-content-length bytes long");
  if (!trailer_value_.empty()) {
    std::string raw;
    if (trailer_algo_ == "x-amz-checksum-crc32" || trailer_algo_ == "x-amz-checksum-crc32c") {
      unsigned char be[4] = {static_cast<unsigned char>(crc_ >> 24), static_cast<unsigned char>(crc_ >> 16),
                             static_cast<unsigned char>(crc_ >> 8), static_cast<unsigned char>(crc_)};
      if (Base64(std::string_view(reinterpret_cast<char*>(be), 4)) != trailer_value_)
        return Bad("BadDigest", "The " + trailer_algo_ + " you specified did not match the calculated checksum");
    } else {
      LOG_DEBUG("gateway: trailer %s not verified (not a CRC32 / CRC32C)", trailer_algo_.c_str());
    }
  }
  return Status::OK();
}

// --- dispatch ---

void Gateway::ServeS3(Call& c) {
  Request& req = c.req;
  // Virtual-hosted style: BUCKET.domain names the bucket.
  std::string path = req.path;
  if (!opts_.domain.empty()) {
    if (const std::string* host = req.Header("host"); host != nullptr) {
      std::string h = host->substr(0, host->rfind(':') == std::string::npos || host->back() == ']' ? std::string::npos : host->rfind(':'));
      const std::string suffix = "." + opts_.domain;
      if (h.size() > suffix.size() && h.compare(h.size() - suffix.size(), suffix.size(), suffix) == 0)
        path = "/" + h.substr(0, h.size() - suffix.size()) + (path == "/" ? "" : path);
    }
  }
  S3Error auth = auth_->VerifyS3(req, static_cast<int64_t>(std::time(nullptr)), &c.verified);
  std::string bucket, key;
  {
    std::string p = path.substr(1);
    size_t slash = p.find('/');
    bucket = p.substr(0, slash);
    key = slash == std::string::npos ? "" : p.substr(slash + 1);
  }
  // The operation's name first, so errors are counted under it.
  const std::string& m = req.method;
  static const char* const kUnsupported[] = {"tagging", "lifecycle", "policy", "cors", "encryption", "logging",
                                             "notification", "replication", "website", "object-lock", "retention",
                                             "legal-hold", "ownershipControls", "publicAccessBlock", "accelerate",
                                             "requestPayment", "analytics", "inventory", "metrics",
                                             "intelligent-tiering", "versions", "torrent", "restore", "select"};
  for (const char* sub : kUnsupported)
    if (req.HasQuery(sub)) {
      c.op = "Unsupported";
      S3Error a = auth_->VerifyS3(req, static_cast<int64_t>(std::time(nullptr)), &c.verified);
      return c.Fail(a.ok() ? S3Error{501, "NotImplemented", std::string("?") + sub + " is not implemented by this gateway"} : a);
    }
  if (bucket.empty()) c.op = "ListBuckets";
  else if ((m == "GET" || m == "PUT") && (req.HasQuery("versioning") || req.HasQuery("acl"))) {
    c.op = req.HasQuery("acl") ? "Acl" : "Versioning";
  } else if (key.empty()) {
    if (m == "GET" && req.HasQuery("location")) c.op = "GetBucketLocation";
    else if (m == "GET" && req.HasQuery("uploads")) c.op = "ListMultipartUploads";
    else if (m == "GET") c.op = req.Query("list-type") != nullptr && *req.Query("list-type") == "2" ? "ListObjectsV2" : "ListObjects";
    else if (m == "HEAD") c.op = "HeadBucket";
    else if (m == "PUT") c.op = "CreateBucket";
    else if (m == "DELETE") c.op = "DeleteBucket";
    else if (m == "POST" && req.HasQuery("delete")) c.op = "DeleteObjects";
  } else {
    if (req.HasQuery("uploadId") || req.HasQuery("uploads")) c.op = "Multipart";
    else if (m == "GET") c.op = "GetObject";
    else if (m == "HEAD") c.op = "HeadObject";
    else if (m == "PUT") c.op = req.Header("x-amz-copy-source") != nullptr ? "CopyObject" : "PutObject";
    else if (m == "DELETE") c.op = "DeleteObject";
  }
  if (!auth.ok()) return c.Fail(auth);
  if (c.op.empty()) return c.Fail({405, "MethodNotAllowed", "The specified method is not allowed against this resource"});
  const Grant& g = *c.verified.grant;
  if (c.op == "ListBuckets") return ListBuckets(c);
  if (!bucket.empty() && (!SafeObjectPath(bucket) || bucket.find('/') != std::string::npos))
    return c.Fail({400, "InvalidBucketName", "The specified bucket is not valid"});
  if (!key.empty() && !SafeObjectPath(bucket + "/" + key))
    return c.Fail({400, "InvalidArgument", "The key is not allowed here (empty, '.' or '..' segments, or a segment over 255 bytes)"});
  if (key.size() > 1024) return c.Fail({400, "KeyTooLongError", "Your key is too long"});
  const bool write = m == "PUT" || m == "DELETE" || m == "POST";
  const std::string target = key.empty() ? bucket : bucket + "/" + key;
  if (!g.Allows(target, write))
    return c.Fail({403, "AccessDenied", std::string("Access Denied: ") + g.name + " may not " + (write ? "write " : "read ") + target});
  if (c.op == "Acl" || c.op == "Versioning") {
    // Never versioned; one owner with full control. Asked by rclone and s3fs;
    // setting either is not supported.
    if (m == "PUT") return c.Fail({501, "NotImplemented", "Setting " + c.op + " is not implemented by this gateway"});
    if (!meta_->Stat(target).ok()) return c.Fail({404, key.empty() ? "NoSuchBucket" : "NoSuchKey", "The specified resource does not exist"});
    std::string xml = c.op == "Versioning"
                          ? std::string(kXmlHead) + "<VersioningConfiguration xmlns=\"" + kNs + "\"/>\n"
                          : std::string(kXmlHead) + "<AccessControlPolicy xmlns=\"" + kNs + "\"><Owner><ID>strata</ID><DisplayName>strata</DisplayName></Owner>"
                            "<AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\">"
                            "<ID>strata</ID><DisplayName>strata</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
                            "</AccessControlList></AccessControlPolicy>\n";
    (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
    return;
  }
  if (key.empty()) {
    Result<index::FileMeta> b = meta_->Stat(bucket);
    bool exists = b.ok() && b->is_dir;
    if (c.op == "CreateBucket") {
      if (exists) return c.Fail({409, "BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded"});
      ufs::Attrs a;
      a.mode = S_IFDIR | 0755;
      Status s = writer_->Mkdir(bucket, a);
      if (!s.ok()) return c.Fail(ErrorOf(s, bucket));
      Changed(bucket);
      (void)c.resp.Send(200, {{"Location", "/" + bucket}}, "");
      return;
    }
    if (!exists) return c.Fail({404, "NoSuchBucket", "The specified bucket does not exist"});
    if (c.op == "HeadBucket") {
      (void)c.resp.Send(200, {{"x-amz-bucket-region", opts_.region}}, "");
      return;
    }
    if (c.op == "GetBucketLocation") {
      std::string xml = std::string(kXmlHead) + "<LocationConstraint xmlns=\"" + kNs + "\">" +
                        (opts_.region == "us-east-1" ? "" : XmlEscape(opts_.region)) + "</LocationConstraint>\n";
      (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
      return;
    }
    if (c.op == "DeleteBucket") {
      Status s = writer_->Rmdir(bucket);
      if (!s.ok()) return c.Fail(s.code() == Status::Code::kNotEmpty ? S3Error{409, "BucketNotEmpty", "The bucket you tried to delete is not empty"} : ErrorOf(s, bucket));
      Changed(bucket);
      (void)c.resp.Send(204, {}, "");
      return;
    }
    if (c.op == "DeleteObjects") return DeleteObjects(c, bucket);
    if (c.op == "ListMultipartUploads") return ListUploads(c, bucket);
    return ListObjects(c, bucket);
  }
  if (c.op == "Multipart") return Multipart(c, target);
  if (c.op == "GetObject" || c.op == "HeadObject") return SendObject(c, target, c.op == "HeadObject");
  if (c.op == "PutObject") return PutObject(c, target);
  if (c.op == "CopyObject") return CopyObject(c, target);
  return DeleteObject(c, target);
}

void Gateway::ListBuckets(Call& c) {
  Result<std::vector<index::DirEntry>> l = meta_->List("");
  if (!l.ok()) return c.Fail(ErrorOf(l.status(), "/"));
  std::string xml = std::string(kXmlHead) + "<ListAllMyBucketsResult xmlns=\"" + kNs + "\"><Owner><ID>strata</ID><DisplayName>strata</DisplayName></Owner><Buckets>";
  for (const index::DirEntry& e : *l) {
    if (!e.is_dir || !c.verified.grant->Allows(e.name, false)) continue;
    xml += "<Bucket><Name>" + XmlEscape(e.name) + "</Name><CreationDate>" + IsoDate(e.mtime_ns) + "</CreationDate></Bucket>";
  }
  xml += "</Buckets></ListAllMyBucketsResult>\n";
  (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
}

namespace {

struct Listed {
  std::string key;
  bool prefix = false;  // a common prefix
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string etag;
};

// Walks `dir` (a namespace path; its keys start with `base`) in S3 key order
// and appends what a listing with `prefix`, `delimiter` and after `after`
// shows, until `out` holds `limit` entries.
Status Walk(cache::Metadata* meta, const std::string& dir, const std::string& base, const std::string& prefix,
            const std::string& delimiter, const std::string& after, size_t limit, std::vector<Listed>* out) {
  Result<std::vector<index::DirEntry>> l = meta->List(dir);
  if (!l.ok()) return l.status().IsNotFound() ? Status::OK() : l.status();
  std::vector<std::pair<std::string, const index::DirEntry*>> items;
  for (const index::DirEntry& e : *l) {
    if (e.name.rfind(".strata-put.", 0) == 0) continue;  // a PUT in progress
    items.emplace_back(base + e.name + (e.is_dir ? "/" : ""), &e);
  }
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [key, e] : items) {
    if (out->size() >= limit) return Status::OK();
    bool matches = key.compare(0, prefix.size(), prefix) == 0;
    if (e->is_dir) {
      bool inside_prefix = prefix.compare(0, key.size(), key) == 0;  // the prefix goes below this directory
      if (!matches && !inside_prefix) continue;
      // Everything below sorts after `key` and before key + "\xff": skip it whole when `after` is past it.
      if (!after.empty() && after > key && after.compare(0, key.size(), key) != 0) continue;
      if (matches && delimiter == "/" && key.size() > prefix.size()) {
        if (key > after) out->push_back({key, true});
        continue;
      }
      STRATA_RETURN_IF_ERROR(Walk(meta, dir.empty() ? e->name : dir + "/" + e->name, key, prefix, delimiter, after, limit, out));
      continue;
    }
    if (!matches || key <= after) continue;
    if (!delimiter.empty()) {
      size_t d = key.find(delimiter, prefix.size());
      if (d != std::string::npos) {
        std::string cp = key.substr(0, d + delimiter.size());
        if (cp > after && (out->empty() || out->back().key != cp)) out->push_back({cp, true});
        continue;
      }
    }
    out->push_back({key, false, e->size, e->mtime_ns, e->etag});
  }
  return Status::OK();
}

}  // namespace

void Gateway::ListObjects(Call& c, const std::string& bucket) {
  const Request& req = c.req;
  const bool v2 = c.op == "ListObjectsV2";
  auto q = [&](const char* name) { const std::string* v = req.Query(name); return v ? *v : std::string(); };
  std::string prefix = q("prefix"), delimiter = q("delimiter"), encoding = q("encoding-type");
  if (!encoding.empty() && encoding != "url") return c.Fail({400, "InvalidArgument", "Invalid Encoding Method specified in Request"});
  int max_keys = 1000;
  if (req.HasQuery("max-keys")) {
    char* e = nullptr;
    long v = std::strtol(q("max-keys").c_str(), &e, 10);
    if (q("max-keys").empty() || *e != '\0' || v < 0) return c.Fail({400, "InvalidArgument", "max-keys must be a non-negative integer"});
    max_keys = static_cast<int>(std::min<long>(v, 1000));
  }
  std::string after, token = q("continuation-token");
  if (v2) {
    after = q("start-after");
    if (!token.empty()) {
      std::string raw;
      if (!Unbase64(token, &raw)) return c.Fail({400, "InvalidArgument", "The continuation token provided is incorrect"});
      after = std::max(after, raw);
    }
  } else {
    after = q("marker");
  }
  // Start the walk at the deepest directory the prefix names.
  std::string dir = bucket, base;
  size_t slash = prefix.rfind('/');
  if (delimiter == "/" || delimiter.empty()) {
    if (slash != std::string::npos) {
      base = prefix.substr(0, slash + 1);
      if (!SafeObjectPath(bucket + "/" + base)) base.clear();
      else dir = bucket + "/" + base.substr(0, base.size() - 1);
    }
  }
  Result<index::FileMeta> b = meta_->Stat(bucket);
  if (!b.ok() || !b->is_dir) return c.Fail({404, "NoSuchBucket", "The specified bucket does not exist"});
  std::vector<Listed> found;
  if (max_keys > 0) {
    Status s = Walk(meta_, dir, base, prefix, delimiter, after, static_cast<size_t>(max_keys) + 1, &found);
    if (!s.ok()) return c.Fail(ErrorOf(s, bucket));
  }
  bool truncated = found.size() > static_cast<size_t>(max_keys);
  if (truncated) found.resize(static_cast<size_t>(max_keys));
  auto enc = [&](const std::string& s) { return XmlEscape(encoding == "url" ? UriEncode(s, true) : s); };
  std::string xml = std::string(kXmlHead) + "<ListBucketResult xmlns=\"" + kNs + "\"><Name>" + XmlEscape(bucket) +
                    "</Name><Prefix>" + enc(prefix) + "</Prefix>";
  if (v2) {
    xml += "<KeyCount>" + std::to_string(found.size()) + "</KeyCount>";
    if (!token.empty()) xml += "<ContinuationToken>" + XmlEscape(token) + "</ContinuationToken>";
    if (req.HasQuery("start-after")) xml += "<StartAfter>" + enc(q("start-after")) + "</StartAfter>";
    if (truncated) xml += "<NextContinuationToken>" + Base64(found.back().key) + "</NextContinuationToken>";
  } else {
    xml += "<Marker>" + enc(after) + "</Marker>";
    if (truncated && !delimiter.empty()) xml += "<NextMarker>" + enc(found.back().key) + "</NextMarker>";
  }
  xml += "<MaxKeys>" + std::to_string(max_keys) + "</MaxKeys>";
  if (!delimiter.empty()) xml += "<Delimiter>" + enc(delimiter) + "</Delimiter>";
  if (!encoding.empty()) xml += "<EncodingType>url</EncodingType>";
  xml += std::string("<IsTruncated>") + (truncated ? "true" : "false") + "</IsTruncated>";
  for (const Listed& l : found) {
    if (l.prefix) continue;
    xml += "<Contents><Key>" + enc(l.key) + "</Key><LastModified>" + IsoDate(l.mtime_ns) + "</LastModified><ETag>" +
           XmlEscape(QuotedEtag(l.etag)) + "</ETag><Size>" + std::to_string(l.size) +
           "</Size><StorageClass>STANDARD</StorageClass></Contents>";
  }
  for (const Listed& l : found)
    if (l.prefix) xml += "<CommonPrefixes><Prefix>" + enc(l.key) + "</Prefix></CommonPrefixes>";
  xml += "</ListBucketResult>\n";
  (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
}

void Gateway::PutObject(Call& c, const std::string& path) {
  if (path.back() == '/') {
    // A directory marker: a directory in the namespace.
    if (!c.body.Drain(0)) return c.Fail({400, "InvalidRequest", "A key ending in '/' is a directory and takes no bytes"});
    ufs::Attrs a;
    a.mode = S_IFDIR | 0755;
    Status s = writer_->Mkdir(path.substr(0, path.size() - 1), a);
    if (!s.ok() && s.code() != Status::Code::kAlreadyExists) return c.Fail(ErrorOf(s, path));
    Changed(path.substr(0, path.size() - 1));
    (void)c.resp.Send(200, {{"ETag", QuotedEtag("d41d8cd98f00b204e9800998ecf8427e")}}, "");
    return;
  }
  if (c.req.Header("content-length") == nullptr && c.req.Header("transfer-encoding") == nullptr)
    return c.Fail({411, "MissingContentLength", "You must provide the Content-Length HTTP header"});
  // A body that cannot fit in the staging area is refused before it is sent.
  if (S3Error e = SizeLimit(c); !e.ok()) return c.Fail(e);
  uint64_t declared = DeclaredLength(c);
  auto [staged, limit] = writer_->StagingUse();
  if (limit > 0 && declared > 0 && staged + declared > limit)
    return c.Fail({503, "SlowDown", "The staging area has no room for " + std::to_string(declared) +
                                        " bytes now; retry later"});
  if (const std::string* inm = c.req.Header("if-none-match"); inm != nullptr && *inm == "*") {
    if (meta_->Stat(path).ok()) return c.Fail({412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"});
  }
  ufs::UserMeta user;
  if (S3Error e = UserMetaOf(c.req, &user); !e.ok()) return c.Fail(e);
  std::string etag;
  Status s = StoreObject(c, path, user, &etag);
  if (!s.ok()) return c.Fail(BodyDecoder::ErrorFor(s));
  (void)c.resp.Send(200, {{"ETag", QuotedEtag(etag)}, {"x-amz-request-id", c.request_id}}, "");
}

void Gateway::CopyObject(Call& c, const std::string& path) {
  std::string src;
  if (!PercentDecode(*c.req.Header("x-amz-copy-source"), &src, false))
    return c.Fail({400, "InvalidArgument", "x-amz-copy-source is not valid"});
  if (size_t q = src.find('?'); q != std::string::npos) src.resize(q);
  while (!src.empty() && src.front() == '/') src.erase(0, 1);
  if (src.find('/') == std::string::npos || !SafeObjectPath(src))
    return c.Fail({400, "InvalidArgument", "x-amz-copy-source must be BUCKET/KEY"});
  if (!c.verified.grant->Allows(src, false)) return c.Fail({403, "AccessDenied", "Access Denied: may not read " + src});
  if (src.back() == '/') {
    // A directory marker ("dir/"): copied onto itself (s3fs setting a
    // directory's times) nothing changes; elsewhere it makes that directory.
    Result<index::FileMeta> d = meta_->Stat(src.substr(0, src.size() - 1));
    if (!d.ok() || !d->is_dir || path.back() != '/') return c.Fail({404, "NoSuchKey", "The specified key does not exist: " + src});
    if (src != path) {
      ufs::Attrs a;
      a.mode = S_IFDIR | 0755;
      Status s = MakeParents(path);
      if (s.ok()) s = writer_->Mkdir(path.substr(0, path.size() - 1), a);
      if (!s.ok() && s.code() != Status::Code::kAlreadyExists) return c.Fail(ErrorOf(s, path));
      Changed(path.substr(0, path.size() - 1));
    }
    std::string xml = std::string(kXmlHead) + "<CopyObjectResult><LastModified>" + IsoDate(d->mtime_ns) +
                      "</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag></CopyObjectResult>\n";
    (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
    return;
  }
  Result<index::FileMeta> m = meta_->Stat(src);
  if (!m.ok() || m->is_dir) return c.Fail({404, "NoSuchKey", "The specified key does not exist: " + src});
  const std::string etag = QuotedEtag(m->etag);
  if (const std::string* v = c.req.Header("x-amz-copy-source-if-match"); v != nullptr && QuotedEtag(*v) != etag && *v != "*")
    return c.Fail({412, "PreconditionFailed", "x-amz-copy-source-if-match did not hold"});
  if (const std::string* v = c.req.Header("x-amz-copy-source-if-none-match"); v != nullptr && (QuotedEtag(*v) == etag || *v == "*"))
    return c.Fail({412, "PreconditionFailed", "x-amz-copy-source-if-none-match did not hold"});
  // COPY (the default) keeps the source's metadata; REPLACE takes the request's.
  const std::string* directive = c.req.Header("x-amz-metadata-directive");
  const bool replace = directive != nullptr && *directive == "REPLACE";
  ufs::UserMeta user = m->user;
  if (replace)
    if (S3Error e = UserMetaOf(c.req, &user); !e.ok()) return c.Fail(e);
  if (src == path && (!replace || user == m->user)) {
    // S3 refuses a copy onto itself without a change of metadata; with
    // REPLACE (how s3fs and rclone change a file's attributes) it is a
    // success that leaves the bytes. New user metadata rewrites the object
    // below, as S3 does.
    if (!replace)
      return c.Fail({400, "InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"});
    std::string xml = std::string(kXmlHead) + "<CopyObjectResult><LastModified>" + IsoDate(m->mtime_ns) +
                      "</LastModified><ETag>" + XmlEscape(etag) + "</ETag></CopyObjectResult>\n";
    (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
    return;
  }
  // Through the cache: the source is read as any GET, the copy written as any PUT.
  cache::Reader::Options ro;
  ro.max_readahead_blocks = opts_.read_ahead_blocks;
  Result<std::unique_ptr<cache::Reader>> reader = cache::Reader::Open(engine_, meta_, writer_, src, ro);
  if (!reader.ok()) return c.Fail(ErrorOf(reader.status(), src));
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md5(NewDigest(EVP_md5()), EVP_MD_CTX_free);
  uint64_t off = 0;
  const uint64_t size = m->size;
  ObjectSource from{[&](char* buf, size_t cap) -> Result<size_t> {
                      size_t n = static_cast<size_t>(std::min<uint64_t>(cap, size - off));
                      if (n == 0) return size_t{0};
                      STRATA_RETURN_IF_ERROR(ReadThrough(**reader, off, n, buf));
                      EVP_DigestUpdate(md5.get(), buf, n);
                      off += n;
                      return n;
                    },
                    [] { return Status::OK(); }, [&] { return DigestHex(md5.get()); }};
  std::string new_etag;
  uint64_t bytes = 0;
  Status s = WriteObject(path, from, user, &bytes, &new_etag);
  if (!s.ok()) return c.Fail(ErrorOf(s, path));
  const int64_t now_ns = static_cast<int64_t>(std::time(nullptr)) * 1000000000;
  std::string xml = std::string(kXmlHead) + "<CopyObjectResult><LastModified>" + IsoDate(now_ns) +
                    "</LastModified><ETag>" + XmlEscape(QuotedEtag(new_etag)) + "</ETag></CopyObjectResult>\n";
  (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
}

void Gateway::DeleteObject(Call& c, const std::string& path) {
  Status s = path.back() == '/' ? writer_->Rmdir(path.substr(0, path.size() - 1)) : writer_->Unlink(path);
  // S3 answers 204 for a key that is not there.
  if (!s.ok() && !s.IsNotFound()) return c.Fail(ErrorOf(s, path));
  Changed(path.back() == '/' ? path.substr(0, path.size() - 1) : path);
  (void)c.resp.Send(204, {{"x-amz-request-id", c.request_id}}, "");
}

void Gateway::DeleteObjects(Call& c, const std::string& bucket) {
  std::string body;
  if (!ReadSmallBody(c, kMaxXmlBody, &body)) return;
  Result<ufs::s3::XmlNode> doc = ufs::s3::ParseXml(body);
  if (!doc.ok() || doc->name != "Delete") return c.Fail({400, "MalformedXML", "The XML you provided was not well-formed"});
  const bool quiet = doc->ChildText("Quiet") == "true";
  std::string out = std::string(kXmlHead) + "<DeleteResult xmlns=\"" + kNs + "\">";
  size_t count = 0;
  for (const ufs::s3::XmlNode& o : doc->children) {
    if (o.name != "Object") continue;
    if (++count > 1000) return c.Fail({400, "MalformedXML", "At most 1000 keys per request"});
    std::string key = o.ChildText("Key");
    std::string path = bucket + "/" + key;
    S3Error e;
    if (key.empty() || !SafeObjectPath(path)) e = {400, "InvalidArgument", "The key is not allowed"};
    else if (!c.verified.grant->Allows(path, true)) e = {403, "AccessDenied", "Access Denied"};
    else {
      Status s = path.back() == '/' ? writer_->Rmdir(path.substr(0, path.size() - 1)) : writer_->Unlink(path);
      if (!s.ok() && !s.IsNotFound()) e = ErrorOf(s, path);
      Changed(path.back() == '/' ? path.substr(0, path.size() - 1) : path);
    }
    if (!e.ok()) out += "<Error><Key>" + XmlEscape(key) + "</Key><Code>" + e.code + "</Code><Message>" + XmlEscape(e.message) + "</Message></Error>";
    else if (!quiet) out += "<Deleted><Key>" + XmlEscape(key) + "</Key></Deleted>";
  }
  out += "</DeleteResult>\n";
  (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, out);
}

}  // namespace strata::gateway
