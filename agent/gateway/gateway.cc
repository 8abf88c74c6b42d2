#include "agent/gateway/gateway.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <cstring>
#include <ctime>
#include <future>
#include <nlohmann/json.hpp>

#include "agent/base/clock.h"
#include "agent/base/hash.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/cache/reader.h"
#include "agent/gateway/internal.h"

namespace strata::gateway {

// --- helpers shared with s3_api.cc (internal.h) ---

std::string XmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string HttpDate(int64_t ns) { return FormatUtc(ns / 1000000000, "%a, %d %b %Y %H:%M:%S GMT"); }

std::string IsoDate(int64_t ns) {
  time_t t = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>((ns / 1000000) % 1000));
  return buf;
}

int64_t ParseHttpDateS(const std::string& s) {
  struct tm tm {};
  for (const char* fmt : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"}) {
    tm = {};
    const char* end = ::strptime(s.c_str(), fmt, &tm);
    if (end != nullptr && *end == '\0') return static_cast<int64_t>(::timegm(&tm));
  }
  return -1;
}

std::string Md5Raw(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_md5(), nullptr);
  return std::string(reinterpret_cast<char*>(md), n);
}

std::string QuotedEtag(const std::string& etag) {
  std::string e = etag;
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return "\"" + e + "\"";
}

S3Error UserMetaOf(const Request& req, ufs::UserMeta* out) {
  constexpr size_t kMaxUserMeta = 2048;  // S3's limit on the x-amz-meta-* names and values
  *out = {};
  size_t total = 0;
  for (const auto& [name, value] : req.headers) {
    if (name == "content-type") {
      out->content_type = value;
      continue;
    }
    if (name.rfind("x-amz-meta-", 0) != 0) continue;
    std::string key = name.substr(11);
    total += key.size() + value.size();
    if (key.empty() || ufs::IsPosixMetaKey(key)) continue;
    auto same = std::find_if(out->pairs.begin(), out->pairs.end(), [&](const auto& p) { return p.first == key; });
    if (same != out->pairs.end()) same->second += "," + value;  // repeated headers join, as HTTP says
    else out->pairs.emplace_back(std::move(key), value);
  }
  if (total > kMaxUserMeta)
    return {400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size (2048 bytes)"};
  std::sort(out->pairs.begin(), out->pairs.end());
  return {};
}

void AddUserMetaHeaders(const ufs::UserMeta& m, bool rest, Headers* h) {
  if (!m.content_type.empty()) h->emplace_back("Content-Type", m.content_type);
  else h->emplace_back("Content-Type", rest ? "application/octet-stream" : "binary/octet-stream");
  for (const auto& [k, v] : m.pairs) h->emplace_back("x-amz-meta-" + k, v);
}

std::string EncodeUserMeta(const ufs::UserMeta& m) {
  nlohmann::json j = {{"content_type", m.content_type}, {"pairs", m.pairs}};
  return strata::JsonText(j);
}
ufs::UserMeta DecodeUserMeta(const std::string& line) {
  ufs::UserMeta m;
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object()) return m;
  m.content_type = j.value("content_type", "");
  if (j.contains("pairs") && j["pairs"].is_array())
    for (const auto& p : j["pairs"])
      if (p.is_array() && p.size() == 2 && p[0].is_string() && p[1].is_string()) m.pairs.emplace_back(p[0], p[1]);
  return m;
}

bool SafeObjectPath(const std::string& path) {
  // No empty, "." or ".." segments, no NUL, no segment longer than a file
  // name may be: nothing escapes the namespace or aliases another key.
  if (path.empty() || path.size() > 4096 || path.find('\0') != std::string::npos) return false;
  size_t at = 0;
  while (at <= path.size()) {
    size_t slash = path.find('/', at);
    size_t end = slash == std::string::npos ? path.size() : slash;
    std::string_view seg(path.data() + at, end - at);
    bool last = slash == std::string::npos || slash + 1 == path.size();
    if ((seg.empty() && !(last && end == path.size() && at == path.size())) || seg == "." || seg == ".." ||
        seg.size() > 255)
      return false;
    if (slash == std::string::npos || slash + 1 == path.size()) break;
    at = slash + 1;
  }
  return true;
}

void Gateway::Call::Fail(const S3Error& e) {
  error = e.code;
  if (resp.started()) {
    resp.Close();  // mid-body: the client sees a short body and a closed connection
    return;
  }
  // A body left unread: the connection ends after this answer, and says so
  // (a client must not send its retry on it).
  if (!body.done()) resp.Close();
  if (rest) {
    nlohmann::json j = {{"error", e.code}, {"message", e.message}};
    (void)resp.Send(e.status, {{"Content-Type", "application/json"}}, strata::JsonText(j) + "\n");
    return;
  }
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + XmlEscape(e.code) + "</Code><Message>" +
                    XmlEscape(e.message) + "</Message><Resource>" + XmlEscape(req.path) + "</Resource><RequestId>" +
                    request_id + "</RequestId></Error>\n";
  (void)resp.Send(e.status, {{"Content-Type", "application/xml"}, {"x-amz-request-id", request_id}}, xml);
}

S3Error ErrorOf(const Status& s, const std::string& what) {
  switch (s.code()) {
    case Status::Code::kNotFound: return {404, "NoSuchKey", "The specified key does not exist: " + what};
    case Status::Code::kPermissionDenied: return {403, "AccessDenied", s.message()};
    case Status::Code::kNoSpace: return {503, "SlowDown", "The staging area is full; retry later (" + s.message() + ")"};
    case Status::Code::kTimeout:
    case Status::Code::kUnavailable: return {503, "ServiceUnavailable", s.message()};
    case Status::Code::kIsADirectory:
    case Status::Code::kNotADirectory:
    case Status::Code::kAlreadyExists: return {409, "InvalidRequest", s.message()};
    case Status::Code::kNotEmpty: return {409, "BucketNotEmpty", s.message()};
    case Status::Code::kReadOnly: return {403, "AccessDenied", s.message()};
    case Status::Code::kInvalidArgument: return {400, "InvalidArgument", s.message()};
    default: return {500, "InternalError", s.message()};
  }
}

uint64_t DeclaredLength(Gateway::Call& c) {
  if (const std::string* d = c.req.Header("x-amz-decoded-content-length"); d != nullptr)
    return std::strtoull(d->c_str(), nullptr, 10);
  std::optional<uint64_t> n = c.body.length();
  return n.value_or(0);
}

S3Error SizeLimit(Gateway::Call& c) {
  uint64_t declared = DeclaredLength(c);
  if (declared <= kMaxPutBytes) return {};
  return {400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size (" +
                                     std::to_string(declared) + " > 5 GiB; use a multipart upload)"};
}

bool ReadSmallBody(Gateway::Call& c, size_t limit, std::string* body) {
  char tmp[64 * 1024];
  for (;;) {
    Result<size_t> n = c.body.Read(tmp, sizeof(tmp));
    if (!n.ok()) {
      c.Fail({400, "IncompleteBody", n.status().message()});
      return false;
    }
    if (*n == 0) break;
    body->append(tmp, *n);
    if (body->size() > limit) {
      c.Fail({400, "MalformedXML", "The request body is too large"});
      return false;
    }
  }
  c.bytes_in = body->size();
  return true;
}

// --- the gateway ---

Gateway::Gateway(GatewayOptions opts, cache::Engine* engine, cache::Metadata* meta, cache::Writer* writer,
                 cache::MountTable* mounts)
    : opts_(std::move(opts)), engine_(engine), meta_(meta), writer_(writer), mounts_(mounts) {}

Gateway::~Gateway() { Stop(); }

Status Gateway::Start() {
  Result<std::unique_ptr<Auth>> a = Auth::Load(opts_.credentials, opts_.region);
  if (!a.ok()) return a.status();
  auth_ = std::move(a).value();
  if (opts_.credentials.empty()) LOG_WARN("gateway: no --gateway-credentials: every request is refused");
  ServerOptions so;
  so.addr = opts_.addr;
  so.tls_cert = opts_.tls_cert;
  so.tls_key = opts_.tls_key;
  server_ = std::make_unique<Server>(so, [this](Request& req, Body& body, Response& resp) { Handle(req, body, resp); });
  STRATA_RETURN_IF_ERROR(server_->Start());
  LOG_INFO("gateway: S3 and REST on %s%s (region %s)", opts_.addr.c_str(), opts_.tls_cert.empty() ? "" : " over TLS",
           opts_.region.c_str());
  return Status::OK();
}

void Gateway::Stop() {
  if (server_) server_->Stop();
}

Status Gateway::Reload() {
  if (!auth_ || opts_.credentials.empty()) return Status::OK();
  Status s = auth_->Reload();
  if (s.ok()) LOG_INFO("gateway: credentials reloaded from %s", opts_.credentials.c_str());
  else LOG_ERROR("gateway: %s; the credentials in force stay", s.message().c_str());
  return s;
}

void Gateway::Handle(Request& req, Body& body, Response& resp) {
  static std::atomic<uint64_t> ids{0};
  Call c{req, body, resp};
  char id[32];
  std::snprintf(id, sizeof(id), "%016llX", static_cast<unsigned long long>(NowMonoMs() * 1000 + (ids++ % 1000)));
  c.request_id = id;
  c.start_ms = NowMonoMs();
  if (req.path.rfind("/api/v1/", 0) == 0) {
    c.rest = true;
    ServeRest(c);
  } else {
    ServeS3(c);
  }
  Record(c);
}

void Gateway::Record(const Call& c) {
  double s = static_cast<double>(NowMonoMs() - c.start_ms) / 1000.0;
  std::lock_guard<std::mutex> lock(stats_mu_);
  OpStats& o = ops_[c.op.empty() ? "Unknown" : c.op];
  o.requests++;
  if (!c.error.empty()) {
    o.errors++;
    errors_by_code_[c.error]++;
  }
  o.bytes_in += c.bytes_in;
  o.bytes_out += c.resp.bytes_out();
  o.latency.Observe(s);
}

GatewayStats Gateway::Stats() {
  GatewayStats st;
  std::lock_guard<std::mutex> lock(stats_mu_);
  for (const auto& [k, v] : ops_) st.ops.emplace_back(k, v);
  for (const auto& [k, v] : errors_by_code_) st.errors_by_code.emplace_back(k, v);
  return st;
}

// --- shared object paths ---

void Gateway::SendObject(Call& c, const std::string& path, bool head) {
  const Request& req = c.req;
  if (path.back() == '/') {
    // "dir/": a directory reads as an empty directory-marker object, as
    // s3fs and the console tools expect of a key they created with a PUT.
    Result<index::FileMeta> d = meta_->Stat(path.substr(0, path.size() - 1));
    if (!d.ok() || !d->is_dir) return c.Fail({404, "NoSuchKey", "The specified key does not exist: " + path});
    (void)c.resp.SendHead(200, {{"ETag", QuotedEtag("d41d8cd98f00b204e9800998ecf8427e")}, {"Last-Modified", HttpDate(d->mtime_ns)},
                                {"Content-Type", "application/x-directory"}, {"x-amz-request-id", c.request_id}}, 0);
    return;
  }
  Result<index::FileMeta> m = meta_->Stat(path);
  if (!m.ok()) return c.Fail(ErrorOf(m.status(), path));
  if (m->is_dir) return c.Fail({404, "NoSuchKey", "The specified key does not exist (it is a directory): " + path});
  const std::string etag = QuotedEtag(m->etag);
  auto etag_matches = [&](const std::string& list) {
    if (list == "*") return true;
    size_t at = 0;
    while (at < list.size()) {
      size_t comma = list.find(',', at);
      std::string one = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      at = comma == std::string::npos ? list.size() : comma + 1;
      size_t a = one.find_first_not_of(' '), b = one.find_last_not_of(' ');
      if (a == std::string::npos) continue;
      one = one.substr(a, b - a + 1);
      if (one.rfind("W/", 0) == 0) one = one.substr(2);
      if (QuotedEtag(one) == etag) return true;
    }
    return false;
  };
  const int64_t mtime_s = m->mtime_ns / 1000000000;
  // RFC 7232 order, as S3 applies it.
  if (const std::string* im = req.Header("if-match"); im != nullptr) {
    if (!etag_matches(*im)) return c.Fail({412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"});
  } else if (const std::string* ius = req.Header("if-unmodified-since"); ius != nullptr) {
    int64_t t = ParseHttpDateS(*ius);
    if (t >= 0 && mtime_s > t)
      return c.Fail({412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"});
  }
  Headers h = {{"ETag", etag}, {"Last-Modified", HttpDate(m->mtime_ns)}, {"Accept-Ranges", "bytes"},
               {"x-amz-request-id", c.request_id}};
  AddUserMetaHeaders(m->user, c.rest, &h);
  if (const std::string* inm = req.Header("if-none-match"); inm != nullptr) {
    if (etag_matches(*inm)) {
      c.error = "NotModified";
      (void)c.resp.SendHead(304, h, 0);
      return;
    }
  } else if (const std::string* ims = req.Header("if-modified-since"); ims != nullptr) {
    int64_t t = ParseHttpDateS(*ims);
    if (t >= 0 && mtime_s <= t) {
      c.error = "NotModified";
      (void)c.resp.SendHead(304, h, 0);
      return;
    }
  }
  uint64_t first = 0, len = m->size;
  int status = 200;
  if (const std::string* pn = req.Query("partNumber"); pn != nullptr && !c.rest) {
    // Objects here are whole files: part 1 is all of it.
    if (*pn != "1") return c.Fail({416, "InvalidPartNumber", "The requested partnumber is not satisfiable"});
    h.emplace_back("x-amz-mp-parts-count", "1");
  }
  if (const std::string* range = req.Header("range"); range != nullptr && range->rfind("bytes=", 0) == 0 &&
                                                       range->find(',') == std::string::npos) {
    std::string spec = range->substr(6);
    size_t dash = spec.find('-');
    bool ok = dash != std::string::npos;
    uint64_t a = 0, b = 0;
    char* e = nullptr;
    if (ok && dash == 0) {  // the last N bytes
      uint64_t n = std::strtoull(spec.c_str() + 1, &e, 10);
      ok = *e == '\0' && spec.size() > 1 && n > 0 && m->size > 0;
      if (ok) {
        a = n >= m->size ? 0 : m->size - n;
        b = m->size - 1;
      }
    } else if (ok) {
      a = std::strtoull(spec.c_str(), &e, 10);
      ok = e == spec.c_str() + dash;
      if (ok && dash + 1 < spec.size()) {
        b = std::strtoull(spec.c_str() + dash + 1, &e, 10);
        ok = *e == '\0' && b >= a;
      } else {
        b = m->size == 0 ? 0 : m->size - 1;
      }
      ok = ok && a < m->size;
      if (ok && b >= m->size) b = m->size - 1;
    }
    if (!ok) {
      h.emplace_back("Content-Range", "bytes */" + std::to_string(m->size));
      return c.Fail({416, "InvalidRange", "The requested range is not satisfiable"});
    }
    first = a;
    len = b - a + 1;
    status = 206;
    h.emplace_back("Content-Range", "bytes " + std::to_string(a) + "-" + std::to_string(b) + "/" + std::to_string(m->size));
  }
  if (head || len == 0) {
    (void)c.resp.SendHead(status, h, len);
    return;
  }
  cache::Reader::Options ro;
  ro.max_readahead_blocks = opts_.read_ahead_blocks;
  Result<std::unique_ptr<cache::Reader>> reader = cache::Reader::Open(engine_, meta_, writer_, path, ro);
  if (!reader.ok()) return c.Fail(ErrorOf(reader.status(), path));
  // The first piece before the head, so an error can still be an S3 error.
  const uint64_t piece = std::max<uint64_t>(engine_->block_size(), 1 << 20);
  uint64_t off = first, end = first + len;
  bool head_sent = false;
  while (off < end) {
    const size_t n = static_cast<size_t>(std::min(piece - off % piece, end - off));
    std::promise<std::pair<Status, std::vector<cache::Slice>>> p;
    (*reader)->Read(off, n, [&p](Status s, std::vector<cache::Slice> parts) { p.set_value({std::move(s), std::move(parts)}); });
    auto [s, parts] = p.get_future().get();
    uint64_t got = 0;
    for (const cache::Slice& sl : parts) got += sl.length;
    if (s.ok() && got != n) s = Status::IOError("short read from the cache");
    if (!s.ok()) {
      LOG_WARN("gateway: GET /%s at %llu: %s", path.c_str(), static_cast<unsigned long long>(off), s.message().c_str());
      return c.Fail(s.code() == Status::Code::kBusy ? S3Error{503, "SlowDown", "The object changed while it was read; retry"}
                                                    : ErrorOf(s, path));
    }
    if (!head_sent) {
      if (!c.resp.SendHead(status, h, len).ok()) return c.resp.Close();
      head_sent = true;
    }
    for (const cache::Slice& sl : parts) {
      Status w = sl.data != nullptr ? c.resp.Write(std::string_view(sl.data->data() + sl.offset, sl.length))
                                    : c.resp.SendFile(sl.fd->get(), sl.offset, sl.length);
      if (!w.ok()) return c.resp.Close();
    }
    off += n;
  }
}

Status Gateway::MakeParents(const std::string& path) {
  // S3 keys imply their directories: made as a PUT needs them (mkdir -p).
  for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    std::string dir = path.substr(0, slash);
    Result<index::FileMeta> m = meta_->Stat(dir);
    if (m.ok()) {
      if (!m->is_dir) return Status::NotADirectory("/" + dir + " is an object, not a directory");
      continue;
    }
    if (!m.status().IsNotFound()) return m.status();
    ufs::Attrs a;
    a.mode = S_IFDIR | 0755;
    Status s = writer_->Mkdir(dir, a);
    if (!s.ok() && s.code() != Status::Code::kAlreadyExists) return s;
    Changed(dir);
  }
  return Status::OK();
}

Status Gateway::WriteObject(const std::string& path, const ObjectSource& src, const ufs::UserMeta& user, uint64_t* bytes,
                            std::string* etag) {
  // Staged under a hidden name beside the key, renamed over it when whole.
  size_t slash = path.rfind('/');
  char tmp_name[64];
  std::snprintf(tmp_name, sizeof(tmp_name), ".strata-put.%d.%llu", static_cast<int>(::getpid()),
                static_cast<unsigned long long>(++put_seq_));
  const std::string tmp = (slash == std::string::npos ? "" : path.substr(0, slash + 1)) + tmp_name;
  ufs::Attrs attrs;
  attrs.mode = S_IFREG | 0644;
  attrs.mtime_ns = static_cast<int64_t>(std::time(nullptr)) * 1000000000;
  attrs.user = user;
  STRATA_RETURN_IF_ERROR(MakeParents(path));
  Result<cache::Writer::FilePtr> f = writer_->OpenNew(tmp, attrs);
  if (!f.ok()) return f.status();
  writer_->StreamAs(*f, path);  // through mode: parts go to the store as the body arrives
  auto discard = [&](Status why) {
    (void)writer_->Unlink(tmp);
    writer_->Close(*f);
    return why;
  };
  std::vector<char> buf(1 << 20);
  uint64_t at = 0;
  for (;;) {
    Result<size_t> n = src.read(buf.data(), buf.size());
    if (!n.ok()) return discard(n.status());
    if (*n == 0) break;
    uint64_t where = 0;
    Status w = writer_->Write(*f, at, buf.data(), *n, false, &where);
    if (!w.ok()) return discard(w);
    at += *n;
  }
  *bytes = at;
  Status v = src.check();
  if (!v.ok()) return discard(v);
  Status r = writer_->Rename(tmp, path, false);
  if (!r.ok()) return discard(r);
  Changed(path);
  Status cm = writer_->Commit(*f);
  index::FileMeta fm = writer_->MetaOf(*f);
  writer_->Close(*f);
  // The writer keeps the file and retries (through mode): the client is told
  // to retry too, which is harmless.
  if (!cm.ok()) return Status::Unavailable("stored here, but the upload to the store failed (retried in the background): " + cm.message());
  // The store's ETag when the object is there (through mode), else the MD5
  // of the bytes (what a single-part S3 PUT reports).
  *etag = fm.etag.empty() ? src.md5_hex() : fm.etag;
  return Status::OK();
}

Status Gateway::StoreObject(Call& c, const std::string& path, const ufs::UserMeta& user, std::string* etag) {
  BodyDecoder dec(c);
  STRATA_RETURN_IF_ERROR(dec.Init());
  ObjectSource src{[&](char* b, size_t n) { return dec.Read(b, n); }, [&] { return dec.Finish(); },
                   [&] { return dec.md5_hex(); }};
  return WriteObject(path, src, user, &c.bytes_in, etag);
}

// --- REST ---

void Gateway::ServeRest(Call& c) {
  const std::string prefix = "/api/v1/files";
  const Request& req = c.req;
  c.op = "Rest" + req.method;
  const Grant* g = auth_->VerifyToken(req);
  if (g == nullptr) return c.Fail({401, "Unauthorized", "A valid \"Authorization: Bearer TOKEN\" header is required"});
  if (req.path.rfind(prefix, 0) != 0 || (req.path.size() > prefix.size() && req.path[prefix.size()] != '/'))
    return c.Fail({404, "NotFound", "Unknown API path; use /api/v1/files/PATH"});
  std::string path = req.path.size() > prefix.size() + 1 ? req.path.substr(prefix.size() + 1) : "";
  while (!path.empty() && path.back() == '/') path.pop_back();
  if (!path.empty() && !SafeObjectPath(path)) return c.Fail({400, "InvalidPath", "The path is not allowed: " + path});
  const bool write = req.method == "PUT" || req.method == "DELETE";
  if (!g->Allows(path, write)) return c.Fail({403, "AccessDenied", "Not allowed to " + std::string(write ? "write" : "read") + " /" + path});
  if (req.method == "GET" && req.HasQuery("list")) {
    c.op = "RestList";
    Result<std::vector<index::DirEntry>> l = meta_->List(path);
    if (!l.ok()) return c.Fail(ErrorOf(l.status(), "/" + path));
    nlohmann::json entries = nlohmann::json::array();
    for (const index::DirEntry& e : *l) {
      if (e.name.rfind(".strata-put.", 0) == 0) continue;
      entries.push_back({{"name", e.name}, {"type", e.is_dir ? "dir" : "file"}, {"size", e.size},
                         {"mtime", IsoDate(e.mtime_ns)}, {"etag", e.etag}});
    }
    nlohmann::json j = {{"path", "/" + path}, {"entries", entries}};
    (void)c.resp.Send(200, {{"Content-Type", "application/json"}}, strata::JsonText(j) + "\n");
    return;
  }
  if (path.empty()) return c.Fail({400, "InvalidPath", "A file path is required"});
  if (req.method == "GET" || req.method == "HEAD") return SendObject(c, path, req.method == "HEAD");
  if (req.method == "PUT") {
    ufs::UserMeta user;
    if (S3Error e = UserMetaOf(req, &user); !e.ok()) return c.Fail(e);
    std::string etag;
    Status s = StoreObject(c, path, user, &etag);
    if (!s.ok()) return c.Fail(BodyDecoder::ErrorFor(s));
    nlohmann::json j = {{"path", "/" + path}, {"size", c.bytes_in}, {"etag", etag}};
    (void)c.resp.Send(201, {{"Content-Type", "application/json"}, {"ETag", QuotedEtag(etag)}}, strata::JsonText(j) + "\n");
    return;
  }
  if (req.method == "DELETE") {
    Status s = writer_->Unlink(path);
    if (!s.ok()) return c.Fail(ErrorOf(s, "/" + path));
    Changed(path);
    (void)c.resp.Send(204, {}, "");
    return;
  }
  c.Fail({405, "MethodNotAllowed", "Use GET, HEAD, PUT or DELETE"});
}

}  // namespace strata::gateway
