#include "ufs/s3/s3_ufs.h"
#include "agent/base/paths.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include "agent/base/clock.h"
#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "ufs/s3/xml.h"

#include "ufs/part_stream.h"
#include "ufs/s3/client.h"
#include "ufs/s3/list.h"

namespace strata::ufs {
namespace {

using s3::Client;
using s3::Request;
using s3::Response;

void AddMetaHeaders(const Attrs& a, Request* req) {
  for (auto& [k, v] : MetaPairs(a)) req->headers.emplace_back("x-amz-meta-" + k, std::move(v));
  if (!a.user.content_type.empty()) req->headers.emplace_back("Content-Type", a.user.content_type);
}

class S3PartSink;

class S3Ufs final : public Ufs {
 public:
  S3Ufs(std::string uri, std::string bucket, std::string prefix, const S3Options& opts)
      : uri_(std::move(uri)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        client_(opts, &counters()) {}

  const std::string& uri() const override { return uri_; }

  bool ReloadCredentials(const std::map<std::string, std::string>& vars) override {
    auto get = [&](const char* k) {
      auto it = vars.find(k);
      return it == vars.end() ? std::string() : it->second;
    };
    if (get("AWS_ACCESS_KEY_ID").empty()) return false;  // keeps the keys it has
    client_.SetKeys({get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"), get("AWS_SESSION_TOKEN")});
    return true;
  }

  Status Probe() override {
    Request req;
    req.bucket = bucket_;
    req.query = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", prefix_}};
    req.timeout_ms = std::min(client_.options().request_timeout_ms, 10000);
    // The usual tries (a store with a passing fault must not stop a start),
    // within 10 s: a wrong endpoint is still named within a few seconds.
    Response resp;
    Status s = client_.Execute(req, &resp);
    if (!s.ok()) return Status::Unavailable("cannot reach S3 endpoint " + Endpoint() + ": " + s.message());
    if (resp.http_status == 200) return Status::OK();
    return HttpError("check " + uri_, req, resp);
  }

  Result<Entry> Stat(const std::string& path) override {
    Entry e;
    e.name = SplitPath(path).second;
    if (path.empty()) {
      e.is_dir = true;
      return e;
    }
    // The object and the directory are asked at once (a HEAD and a one-key
    // listing of "path/"), as mountpoint-s3 does: a directory shadows a
    // same-named object, as in listings, and a file costs no extra latency.
    Response resp;
    Status head;
    Result<s3::ListPage> page = Status::Unavailable("s3: listing not sent");
    rest::RunBeside([&] { page = ListOnce(Key(path) + "/", "/", "", 1); }, [&] { head = Head(Key(path), &resp); });
    if (!page.ok()) return page.status();
    if (!page->objects.empty() || !page->common_prefixes.empty()) {
      e.is_dir = true;
      if (!page->objects.empty() && page->objects[0].key == Key(path) + "/") {
        // The marker ("dir/", as s3fs and the consoles make them) keeps the directory's attributes.
        STRATA_RETURN_IF_ERROR(Head(Key(path) + "/", &resp));
        if (resp.http_status == 200) ApplyMetaPairs(resp.meta, &e);
        e.is_dir = true;
      }
      return e;
    }
    STRATA_RETURN_IF_ERROR(head);
    return FileOf(path, resp, std::move(e));
  }

  Result<Entry> StatListedFile(const std::string& path) override {
    if (path.empty()) return Stat(path);
    Response resp;
    STRATA_RETURN_IF_ERROR(Head(Key(path), &resp));
    Entry e;
    e.name = SplitPath(path).second;
    return FileOf(path, resp, std::move(e));
  }

  Result<std::vector<Entry>> List(const std::string& dir) override {
    std::string prefix = Key(dir);
    if (!prefix.empty()) prefix += "/";
    std::vector<Entry> files;
    std::unordered_set<std::string> dirs;
    std::string token;
    do {
      Result<s3::ListPage> page = ListOnce(prefix, "/", token, client_.options().list_page);
      if (!page.ok()) return page.status();
      for (const s3::ListedObject& o : page->objects) {
        if (o.key.size() <= prefix.size()) continue;  // the directory's own marker
        std::string name = o.key.substr(prefix.size());
        if (!UsableName(name)) continue;
        Entry e;
        e.name = std::move(name);
        e.size = o.size;
        e.mtime_ns = o.mtime_ms < 0 ? 0 : o.mtime_ms * 1000000;
        e.etag = o.etag;
        e.attrs_known = false;  // user metadata comes with a HEAD only
        files.push_back(std::move(e));
      }
      for (const std::string& p : page->common_prefixes) {
        if (p.size() <= prefix.size() + 1) continue;
        std::string name = p.substr(prefix.size(), p.size() - prefix.size() - 1);
        if (UsableName(name)) dirs.insert(std::move(name));
      }
      token = page->truncated ? page->next_token : "";
    } while (!token.empty());
    std::vector<Entry> out;
    out.reserve(files.size() + dirs.size());
    for (Entry& f : files)
      if (!dirs.count(f.name)) out.push_back(std::move(f));
    for (const std::string& d : dirs) {
      Entry e;
      e.name = d;
      e.is_dir = true;
      e.attrs_known = false;
      out.push_back(std::move(e));
    }
    return out;
  }

  Result<size_t> Read(const std::string& path, const std::string& etag, uint64_t off, size_t len,
                      char* buf) override {
    return ReadKey(Key(path), etag, off, len, buf);
  }

  Result<size_t> ReadKey(const std::string& key, const std::string& etag, uint64_t off, size_t len,
                         char* buf) {
    Request req = ObjectRequest("GET", key);
    return client_.ReadRange(req, off, len, etag, buf, [&](const rest::Response& r) { return HttpError("GET", req, r); });
  }

  Result<Entry> Put(const std::string& path, uint64_t size, const ReadAt& src, const Attrs& attrs,
                    const CopyBase* base) override {
    Entry e;
    e.name = SplitPath(path).second;
    e.size = size;
    e.attrs = attrs;
    e.mtime_ns = attrs.mtime_ns ? attrs.mtime_ns : NowUnixMs() * 1000000;
    e.attrs.mtime_ns = e.mtime_ns;
    Result<std::string> etag = size <= PartSize(size) ? PutSingle(Key(path), size, src, e.attrs)
                                                      : PutMultipart(Key(path), size, src, e.attrs, base);
    if (!etag.ok()) return etag.status();
    e.etag = *etag;
    return e;
  }

  std::unique_ptr<StreamUpload> StartStream(const std::string& path, ReadAt src, const Attrs& attrs) override;

  Status Delete(const std::string& path) override { return DeleteKey(Key(path)); }

  Status Mkdir(const std::string& path, const Attrs& attrs) override {
    Attrs a = attrs;
    a.mode = S_IFDIR | (attrs.mode ? attrs.mode & 07777 : 0755);
    if (a.mtime_ns == 0) a.mtime_ns = NowUnixMs() * 1000000;
    return PutSingle(Key(path) + "/", 0, nullptr, a).status();
  }

  Status Rmdir(const std::string& path) override {
    std::string prefix = Key(path) + "/";
    Result<s3::ListPage> page = ListOnce(prefix, "", "", 2);
    if (!page.ok()) return page.status();
    for (const s3::ListedObject& o : page->objects)
      if (o.key != prefix) return Status::NotEmpty("s3: directory " + uri_ + "/" + path + " is not empty");
    return DeleteKey(prefix);
  }

  // Copy then delete, object by object: a crash in between leaves both
  // names (never neither); readers elsewhere may see a half-moved directory.
  Status Rename(const std::string& from, const std::string& to) override {
    Result<Entry> src = Stat(from);
    if (!src.ok()) return src.status();
    if (!src->is_dir) {
      STRATA_RETURN_IF_ERROR(Copy(Key(from), Key(to), src->size));
      return DeleteKey(Key(from));
    }
    std::string from_prefix = Key(from) + "/", to_prefix = Key(to) + "/";
    std::vector<s3::ListedObject> all;
    std::string token;
    do {
      Result<s3::ListPage> page = ListOnce(from_prefix, "", token, client_.options().list_page);
      if (!page.ok()) return page.status();
      all.insert(all.end(), page->objects.begin(), page->objects.end());
      token = page->truncated ? page->next_token : "";
    } while (!token.empty());
    for (const s3::ListedObject& o : all)
      STRATA_RETURN_IF_ERROR(Copy(o.key, to_prefix + o.key.substr(from_prefix.size()), o.size));
    for (const s3::ListedObject& o : all) STRATA_RETURN_IF_ERROR(DeleteKey(o.key));
    return Status::OK();
  }
  bool rename_is_atomic() const override { return false; }

  Result<Entry> SetAttrs(const std::string& path, const Attrs& attrs) override {
    Result<Entry> cur = Stat(path);
    if (!cur.ok()) return cur.status();
    Attrs a = cur->attrs;
    if (attrs.mode) a.mode = (a.mode & S_IFMT) | (attrs.mode & 07777);
    if (attrs.uid != kNoId) a.uid = attrs.uid;
    if (attrs.gid != kNoId) a.gid = attrs.gid;
    if (attrs.mtime_ns) a.mtime_ns = attrs.mtime_ns;
    if (cur->is_dir) {
      a.mode = S_IFDIR | (a.mode ? a.mode & 07777 : 0755);
      STRATA_RETURN_IF_ERROR(PutSingle(Key(path) + "/", 0, nullptr, a).status());
      return Stat(path);
    }
    if (a.mode == 0) a.mode = S_IFREG | 0644;
    if (a.mtime_ns == 0) a.mtime_ns = cur->mtime_ns;
    // Metadata of an object changes only by copying it onto itself.
    Request req = ObjectRequest("PUT", Key(path));
    req.headers.emplace_back("x-amz-metadata-directive", "REPLACE");
    AddMetaHeaders(a, &req);
    Response resp;
    STRATA_RETURN_IF_ERROR(SendCopy(req, Key(path), &resp));
    if (resp.http_status != 200) return HttpError("COPY", req, resp);
    return Stat(path);
  }

  Status Symlink(const std::string& path, const std::string& target, const Attrs& attrs) override {
    Attrs a = attrs;
    a.mode = S_IFLNK | 0777;
    if (a.mtime_ns == 0) a.mtime_ns = NowUnixMs() * 1000000;
    ReadAt src = [&](uint64_t off, size_t len, char* buf) {
      std::memcpy(buf, target.data() + off, len);
      return Status::OK();
    };
    return PutSingle(Key(path), target.size(), src, a).status();
  }

 private:
  // The object key of a path.
  std::string Key(const std::string& path) const { return KeyOf(prefix_, path); }

  // The file `path` from its HEAD answer.
  Result<Entry> FileOf(const std::string& path, const Response& resp, Entry e) {
    if (resp.http_status == 404) return Status::NotFound("s3: no such object or prefix: " + uri_ + "/" + path);
    if (resp.http_status != 200) return HttpError("HEAD", ObjectRequest("HEAD", Key(path)), resp);
    e.size = resp.content_length;
    e.etag = resp.etag;
    e.mtime_ns = std::max<int64_t>(0, s3::ParseHttpDateMs(resp.last_modified)) * 1000000;
    ApplyMetaPairs(resp.meta, &e);
    // A store answers every object with some type; only one set by a writer is kept.
    if (resp.content_type != "binary/octet-stream" && resp.content_type != "application/octet-stream")
      e.attrs.user.content_type = resp.content_type;
    if (S_ISLNK(e.attrs.mode)) {
      Result<std::string> target = GetSmall(Key(path), e.etag);
      if (!target.ok()) return target.status();
      e.link_target = *target;
    }
    return e;
  }
  std::string Endpoint() const {
    const S3Options& o = client_.options();
    return o.endpoint.empty() ? "https://s3." + o.region + ".amazonaws.com" : o.endpoint;
  }

  Request ObjectRequest(const std::string& method, const std::string& key) const {
    Request req;
    req.method = method;
    req.bucket = bucket_;
    req.key = key;
    return req;
  }

  // Executes a request that changes the store, counting it.
  Status Send(const Request& req, Response* resp) {
    counters().put_requests++;
    Status s = client_.Execute(req, resp);
    if (!s.ok() || resp->http_status >= 300) counters().errors++;
    return s;
  }

  Status Head(const std::string& key, Response* resp) {
    counters().head_requests++;
    return client_.Execute(ObjectRequest("HEAD", key), resp);
  }

  // The body of a small object (a symbolic link's target).
  Result<std::string> GetSmall(const std::string& key, const std::string& etag) {
    std::string buf(4096, '\0');
    Request req = ObjectRequest("GET", key);
    if (!etag.empty()) req.headers.emplace_back("If-Match", etag);
    req.sink = buf.data();
    req.sink_len = buf.size();
    Response resp;
    counters().get_requests++;
    STRATA_RETURN_IF_ERROR(client_.Execute(req, &resp));
    if (resp.http_status != 200) return HttpError("GET", req, resp);
    buf.resize(resp.sink_written);
    return buf;
  }

  // x-amz-copy-source is URL-encoded. Some stores (s3rver) decode it with
  // JavaScript's decodeURI, which leaves reserved characters (+ , ; : @ & =
  // $ #) encoded: for them those go literally (found out on the first miss).
  std::string CopySource(const std::string& key, bool literal_reserved) const {
    std::string s = UriEncode("/" + bucket_ + "/" + key, true);
    if (!literal_reserved) return s;
    static const std::pair<const char*, char> kReserved[] = {{"%2B", '+'}, {"%2C", ','}, {"%3B", ';'}, {"%3A", ':'},
                                                             {"%40", '@'}, {"%26", '&'}, {"%3D", '='}, {"%24", '$'}, {"%23", '#'}};
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
      bool done = false;
      if (s[i] == '%' && i + 2 < s.size())
        for (const auto& [enc, c] : kReserved)
          if (s.compare(i, 3, enc) == 0) {
            out.push_back(c);
            i += 2;
            done = true;
            break;
          }
      if (!done) out.push_back(s[i]);
    }
    return out;
  }

  // A server-side copy of `src_key` into req.key (headers of req kept).
  Status SendCopy(Request req, const std::string& src_key, Response* resp) {
    bool literal = copy_source_literal_.load();
    req.headers.emplace_back("x-amz-copy-source", CopySource(src_key, literal));
    STRATA_RETURN_IF_ERROR(Send(req, resp));
    std::string other = CopySource(src_key, !literal);
    if (resp->http_status == 404 && resp->error_code == "NoSuchKey" && other != req.headers.back().second) {
      req.headers.back().second = other;
      STRATA_RETURN_IF_ERROR(Send(req, resp));
      if (resp->http_status == 200 && resp->error_code.empty()) copy_source_literal_ = !literal;
    }
    return Status::OK();
  }

  // Parts stay under S3's 10,000-part limit: the part size grows with the file.
  uint64_t PartSize(uint64_t size) const {
    uint64_t part = std::max<uint64_t>(client_.options().part_size, 5u << 20);
    uint64_t need = (size + 9998) / 9999;
    if (need > part) part = (need + (1u << 20) - 1) & ~uint64_t{(1u << 20) - 1};
    return part;
  }

  Result<std::string> PutSingle(const std::string& key, uint64_t size, const ReadAt& src, const Attrs& a) {
    std::vector<char> body(size);
    if (size > 0) STRATA_RETURN_IF_ERROR(src(0, size, body.data()));
    Request req = ObjectRequest("PUT", key);
    req.body = body.data();
    req.body_len = body.size();
    AddMetaHeaders(a, &req);
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(req, &resp));
    if (resp.http_status != 200) return HttpError("PUT", req, resp);
    counters().bytes_written += size;
    return resp.etag;
  }

  // Multipart: create, parts in parallel, complete. Any failure aborts the
  // upload so no parts are left behind (stores without Abort are named).
  Result<std::string> PutMultipart(const std::string& key, uint64_t size, const ReadAt& src, const Attrs& a,
                                   const CopyBase* base) {
    Result<std::string> upload_id = CreateUpload(key, a);
    if (!upload_id.ok()) return upload_id.status();
    const uint64_t part = PartSize(size);
    const uint64_t parts = (size + part - 1) / part;
    std::vector<std::string> etags(parts);
    Status failed = rest::RunParallel(parts, client_.options().upload_parallel, [&](uint64_t i, std::vector<char>* buf) {
      uint64_t off = i * part;
      size_t len = static_cast<size_t>(std::min(part, size - off));
      Status s;
      std::optional<std::string> copied;
      if (base != nullptr && !part_copy_unsupported_ && base->unchanged(off, len))
        copied = CopyPart(key, *upload_id, i + 1, *base, off, len, &s);
      if (copied.has_value()) {
        etags[i] = *copied;
      } else if (s.ok()) {
        Result<std::string> etag = SendPart(key, *upload_id, i + 1, off, len, src, buf);
        if (etag.ok()) etags[i] = *etag;
        else s = etag.status();
      }
      return s;
    });
    Result<std::string> etag = failed.ok() ? CompleteUpload(key, *upload_id, etags) : Result<std::string>(failed);
    if (!etag.ok()) Abort(key, *upload_id);
    return etag;
  }

  // The three steps of a multipart upload (PutMultipart and S3PartSink).
  Result<std::string> CreateUpload(const std::string& key, const Attrs& a) {
    Request create = ObjectRequest("POST", key);
    create.query = {{"uploads", ""}};
    AddMetaHeaders(a, &create);
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(create, &resp));
    if (resp.http_status != 200) return HttpError("CreateMultipartUpload", create, resp);
    Result<s3::XmlNode> doc = s3::ParseXml(resp.body);
    std::string upload_id = doc.ok() ? doc->ChildText("UploadId") : "";
    if (upload_id.empty()) return Status::IOError("s3: CreateMultipartUpload of " + key + ": no UploadId in the answer");
    return upload_id;
  }

  // Sends bytes [off, off+len) of `src` as part `number` (`buf`: scratch);
  // returns the part's ETag.
  Result<std::string> SendPart(const std::string& key, const std::string& upload_id, uint64_t number,
                               uint64_t off, size_t len, const ReadAt& src, std::vector<char>* buf) {
    buf->resize(len);
    STRATA_RETURN_IF_ERROR(src(off, len, buf->data()));
    Request req = ObjectRequest("PUT", key);
    req.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
    req.body = buf->data();
    req.body_len = len;
    Response r;
    STRATA_RETURN_IF_ERROR(Send(req, &r));
    if (r.http_status != 200 || r.etag.empty()) return HttpError("UploadPart", req, r);
    counters().bytes_written += len;
    return r.etag;
  }

  // Completes the upload from its parts' ETags (part i + 1 is etags[i]);
  // returns the object's ETag.
  Result<std::string> CompleteUpload(const std::string& key, const std::string& upload_id,
                                     const std::vector<std::string>& etags) {
    std::string xml = "<CompleteMultipartUpload>";
    for (size_t i = 0; i < etags.size(); i++)
      xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + etags[i] + "</ETag></Part>";
    xml += "</CompleteMultipartUpload>";
    Request done = ObjectRequest("POST", key);
    done.query = {{"uploadId", upload_id}};
    done.body = xml.data();
    done.body_len = xml.size();
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(done, &resp));
    if (resp.error_code == "NoSuchUpload") {
      // An earlier try may have completed it and lost the answer on the way:
      // the object then carries S3's multipart ETag of exactly these parts
      // (the MD5 of the parts' MD5s, "-" and the count).
      std::string md5s;
      for (const std::string& e : etags) {
        std::string hex = e.size() >= 2 && e.front() == '"' ? e.substr(1, e.size() - 2) : e;
        for (size_t i = 0; i + 1 < hex.size(); i += 2)
          md5s.push_back(static_cast<char>(HexValue(hex[i]) * 16 + HexValue(hex[i + 1])));
      }
      std::string expect = "\"" + Hex(Md5(md5s)) + "-" + std::to_string(etags.size()) + "\"";
      Response head;
      STRATA_RETURN_IF_ERROR(Head(key, &head));
      if (head.http_status == 200 && head.etag == expect) {
        LOG_INFO("s3: %s: completed by an earlier try whose answer was lost (ETag %s)", key.c_str(), expect.c_str());
        return head.etag;
      }
    }
    // A 200 may still carry an error (S3 sends it after a long-running complete).
    if (resp.http_status != 200 || !resp.error_code.empty()) return HttpError("CompleteMultipartUpload", done, resp);
    Result<s3::XmlNode> result = s3::ParseXml(resp.body);
    std::string etag = result.ok() ? result->ChildText("ETag") : "";
    if (etag.empty()) etag = resp.etag;
    if (etag.empty()) {
      // Ceph RGW (memstore) answers <ETag></ETag>: the object says it.
      Response head;
      STRATA_RETURN_IF_ERROR(Head(key, &head));
      if (head.http_status != 200) return HttpError("HEAD after CompleteMultipartUpload", ObjectRequest("HEAD", key), head);
      etag = head.etag;
    }
    return etag;
  }

  // UploadPartCopy of bytes [off, off+len) of the base version (pinned by
  // x-amz-copy-source-if-match) as part `number`. Returns the part's ETag;
  // nullopt with *err OK when the store cannot copy parts (the caller sends
  // the bytes instead; remembered for later uploads), with *err set when the
  // copy failed.
  std::optional<std::string> CopyPart(const std::string& key, const std::string& upload_id, uint64_t number,
                                      const CopyBase& base, uint64_t off, uint64_t len, Status* err) {
    Request req = ObjectRequest("PUT", key);
    req.query = {{"partNumber", std::to_string(number)}, {"uploadId", upload_id}};
    req.headers.emplace_back("x-amz-copy-source-range",
                             "bytes=" + std::to_string(off) + "-" + std::to_string(off + len - 1));
    if (!base.etag.empty()) req.headers.emplace_back("x-amz-copy-source-if-match", base.etag);
    Response resp;
    *err = SendCopy(req, Key(base.path), &resp);
    if (!err->ok()) return std::nullopt;
    Result<s3::XmlNode> doc = s3::ParseXml(resp.body);
    std::string etag = doc.ok() ? doc->ChildText("ETag") : "";
    if (resp.http_status == 200 && resp.error_code.empty() && !etag.empty()) {
      counters().part_copies++;
      return etag;
    }
    if (resp.http_status == 412) {
      *err = Status::Stale("s3: UploadPartCopy from " + base.path + ": the stored version " + base.etag +
                           " changed before its unchanged parts could be copied (412)");
      return std::nullopt;
    }
    // Not implemented (501/405/400), or a store that took the request for a
    // plain UploadPart with an empty body (no CopyPartResult): the caller
    // uploads this part number again with the bytes, which replaces it.
    if (!part_copy_unsupported_.exchange(true))
      LOG_INFO("s3: %s cannot copy parts server-side (UploadPartCopy answered %ld%s): unchanged parts of "
               "replaced objects are sent from this host",
               Endpoint().c_str(), resp.http_status, resp.error_code.empty() ? "" : (" " + resp.error_code).c_str());
    return std::nullopt;
  }

  void Abort(const std::string& key, const std::string& upload_id) {
    Request req = ObjectRequest("DELETE", key);
    req.query = {{"uploadId", upload_id}};
    req.max_attempts = 3;
    Response resp;
    Status s = Send(req, &resp);
    if (s.ok() && (resp.http_status == 204 || resp.http_status == 200 || resp.http_status == 404)) return;
    if (s.ok() && (resp.http_status == 501 || resp.http_status == 405)) {
      if (!abort_unsupported_.exchange(true))
        LOG_WARN("s3: %s does not support AbortMultipartUpload (%ld): parts of failed uploads stay "
                 "until a lifecycle rule removes them (upload %s of %s)",
                 Endpoint().c_str(), resp.http_status, upload_id.c_str(), key.c_str());
      return;
    }
    LOG_WARN("s3: could not abort multipart upload %s of %s: %s", upload_id.c_str(), key.c_str(),
             s.ok() ? HttpError("AbortMultipartUpload", req, resp).message().c_str() : s.message().c_str());
  }

  // Server-side copy (the store's CopyObject is limited to 5 GiB objects;
  // larger ones are streamed through this host as a multipart upload).
  Status Copy(const std::string& from, const std::string& to, uint64_t size) {
    if (size > (5ull << 30)) {
      Response head;
      STRATA_RETURN_IF_ERROR(Head(from, &head));
      Entry e;
      ApplyMetaPairs(head.meta, &e);
      ReadAt src = [&](uint64_t off, size_t len, char* buf) -> Status {
        Result<size_t> got = ReadKey(from, head.etag, off, len, buf);
        if (!got.ok()) return got.status();
        if (*got != len) return Status::Stale("s3: " + from + " shrank during the copy");
        return Status::OK();
      };
      return PutMultipart(to, size, src, e.attrs, nullptr).status();
    }
    Request req = ObjectRequest("PUT", to);
    Response resp;
    STRATA_RETURN_IF_ERROR(SendCopy(req, from, &resp));
    if (resp.http_status != 200 || !resp.error_code.empty()) return HttpError("COPY", req, resp);
    return Status::OK();
  }

  Status DeleteKey(const std::string& key) {
    Request req = ObjectRequest("DELETE", key);
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(req, &resp));
    if (resp.http_status == 204 || resp.http_status == 200) return Status::OK();
    return HttpError("DELETE", req, resp);
  }

  Result<s3::ListPage> ListOnce(const std::string& prefix, const std::string& delimiter,
                                const std::string& token, int max_keys) {
    Request req;
    req.bucket = bucket_;
    req.query = {{"list-type", "2"}, {"encoding-type", "url"}, {"max-keys", std::to_string(max_keys)},
                 {"prefix", prefix}, {"delimiter", delimiter}};
    if (!token.empty()) req.query.emplace_back("continuation-token", token);
    // A page cut short or damaged on the way is asked for again.
    req.check_body = [](const rest::Response& r) { return s3::ParseListPage(r.body).ok(); };
    Response resp;
    counters().list_requests++;
    Status s = client_.Execute(req, &resp);
    if (!s.ok()) {
      counters().errors++;
      return s;
    }
    if (resp.http_status != 200) {
      counters().errors++;
      return HttpError("LIST", req, resp);
    }
    return s3::ParseListPage(resp.body);
  }

  // Turns an HTTP error answer into a Status that names the problem.
  Status HttpError(const std::string& op, const Request& req, const rest::Response& resp) const {
    std::string where = op + " " + client_.Url(req) + ": " + std::to_string(resp.http_status) +
                        (resp.error_code.empty() ? "" : " " + resp.error_code) +
                        (resp.error_message.empty() ? "" : " (" + resp.error_message + ")");
    if (resp.error_code == "NoSuchBucket")
      return Status::NotFound("s3: bucket '" + bucket_ + "' does not exist at " + Endpoint() + " [" + where + "]");
    if (resp.http_status == 404) return Status::NotFound("s3: " + where);
    if (resp.http_status == 403 || resp.http_status == 401) {
      return Status::PermissionDenied(
          "s3: access denied [" + where +
          "]: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy");
    }
    if (resp.http_status == 301 || resp.error_code == "PermanentRedirect" ||
        resp.error_code == "AuthorizationHeaderMalformed")
      return Status::InvalidArgument("s3: wrong region or endpoint [" + where + "]: set --s3-region / AWS_REGION");
    return Status::IOError("s3: " + where);
  }

  friend class S3PartSink;

  const std::string uri_;
  const std::string bucket_;
  const std::string prefix_;  // no leading or trailing slash
  Client client_;
  std::atomic<bool> abort_unsupported_{false};
  std::atomic<bool> part_copy_unsupported_{false};
  std::atomic<bool> copy_source_literal_{false};
};

// S3's multipart upload as the parts of a stream: created by the first part
// that needs it.
class S3PartSink final : public PartSink {
 public:
  S3PartSink(S3Ufs* ufs, std::string path, const Attrs& attrs)
      : ufs_(ufs), path_(std::move(path)), key_(ufs->Key(path_)), attrs_{attrs.mode, attrs.uid, attrs.gid, 0, attrs.user} {}

  Result<std::string> SendPart(uint64_t number, uint64_t off, size_t len, const ReadAt& src,
                               std::vector<char>* buf) override {
    Result<std::string> id = UploadId();
    if (!id.ok()) return id.status();
    return ufs_->SendPart(key_, *id, number, off, len, src, buf);
  }
  Result<std::string> Complete(const std::vector<std::string>& parts) override {
    return ufs_->CompleteUpload(key_, upload_id_, parts);
  }
  void Abort() override {
    std::lock_guard<std::mutex> lock(create_mu_);
    if (!upload_id_.empty()) ufs_->Abort(key_, upload_id_);
  }
  Result<Entry> PutWhole(uint64_t size, const ReadAt& src, const Attrs& attrs) override {
    return ufs_->Put(path_, size, src, attrs, nullptr);
  }

 private:
  Result<std::string> UploadId() {
    std::lock_guard<std::mutex> lock(create_mu_);
    if (upload_id_.empty()) {
      Result<std::string> id = ufs_->CreateUpload(key_, attrs_);
      if (!id.ok()) return id.status();
      upload_id_ = *id;
    }
    return upload_id_;
  }

  S3Ufs* const ufs_;
  const std::string path_;
  const std::string key_;
  const Attrs attrs_;  // sent with the create (the time is the completion's)
  std::mutex create_mu_;
  std::string upload_id_;  // written once under create_mu_, before any part is sent
};

std::unique_ptr<StreamUpload> S3Ufs::StartStream(const std::string& path, ReadAt src, const Attrs& attrs) {
  const S3Options& o = client_.options();
  return NewPartStream(std::make_unique<S3PartSink>(this, path, attrs), path, std::move(src), attrs,
                       std::max<uint64_t>(o.part_size, 5u << 20), o.upload_parallel, &counters());
}

}  // namespace

std::unique_ptr<Ufs> NewS3Ufs(const std::string& uri, const std::string& bucket,
                              const std::string& prefix, const S3Options& opts) {
  return std::make_unique<S3Ufs>(uri, bucket, prefix, opts);
}

}  // namespace strata::ufs
