#include "ufs/s3/s3_ufs.h"
#include "agent/base/paths.h"

#include <unordered_set>

#include "ufs/s3/client.h"
#include "ufs/s3/list.h"

namespace strata::ufs {
namespace {

using s3::Client;
using s3::Request;
using s3::Response;

bool UsableName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 &&
         name.find('\0') == std::string::npos;
}

class S3Ufs final : public Ufs {
 public:
  S3Ufs(std::string uri, std::string bucket, std::string prefix, const S3Options& opts)
      : uri_(std::move(uri)),
        bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        client_(opts, &counters()) {}

  const std::string& uri() const override { return uri_; }

  Status Probe() override {
    Request req;
    req.bucket = bucket_;
    req.query = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", prefix_}};
    req.timeout_ms = std::min(client_.options().request_timeout_ms, 10000);
    req.max_attempts = 2;
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
    // A directory shadows a same-named object, so look for children first only
    // when the object is missing: the common case (a file) costs one HEAD.
    Request req;
    req.method = "HEAD";
    req.bucket = bucket_;
    req.key = Key(path);
    Response resp;
    counters().head_requests++;
    STRATA_RETURN_IF_ERROR(client_.Execute(req, &resp));
    if (resp.http_status == 200) {
      e.size = resp.content_length;
      e.etag = resp.etag;
      e.mtime_ms = s3::ParseHttpDateMs(resp.last_modified);
      if (e.mtime_ms < 0) e.mtime_ms = 0;
      return e;
    }
    if (resp.http_status != 404) return HttpError("HEAD", req, resp);
    Result<s3::ListPage> page = ListOnce(Key(path) + "/", "/", "", 1);
    if (!page.ok()) return page.status();
    if (page->objects.empty() && page->common_prefixes.empty())
      return Status::NotFound("s3: no such object or prefix: " + uri_ + "/" + path);
    e.is_dir = true;
    return e;
  }

  Result<std::vector<Entry>> List(const std::string& dir) override {
    std::string prefix = Key(dir);
    if (!prefix.empty()) prefix += "/";
    std::vector<Entry> files;
    std::unordered_set<std::string> dirs;
    std::string token;
    do {
      Result<s3::ListPage> page = ListOnce(prefix, "/", token, 1000);
      if (!page.ok()) return page.status();
      for (const s3::ListedObject& o : page->objects) {
        if (o.key.size() <= prefix.size()) continue;  // the directory's own marker
        std::string name = o.key.substr(prefix.size());
        if (!UsableName(name)) continue;
        Entry e;
        e.name = std::move(name);
        e.size = o.size;
        e.mtime_ms = o.mtime_ms < 0 ? 0 : o.mtime_ms;
        e.etag = o.etag;
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
      out.push_back(std::move(e));
    }
    return out;
  }

  Result<size_t> Read(const std::string& path, const std::string& etag, uint64_t off, size_t len,
                      char* buf) override {
    if (len == 0) return size_t{0};
    Request req;
    req.bucket = bucket_;
    req.key = Key(path);
    req.headers.emplace_back("Range", "bytes=" + std::to_string(off) + "-" + std::to_string(off + len - 1));
    if (!etag.empty()) req.headers.emplace_back("If-Match", etag);
    req.sink = buf;
    req.sink_len = len;
    Response resp;
    counters().get_requests++;
    Status s = client_.Execute(req, &resp);
    if (!s.ok()) {
      counters().errors++;
      return s;
    }
    if (resp.http_status == 206 || resp.http_status == 200) {
      // A 200 means the store ignored the range: only valid from offset 0.
      if (resp.http_status == 200 && off != 0) {
        counters().errors++;
        return Status::IOError("s3: GET " + client_.Url(req) + ": store ignored the Range header");
      }
      // Stores that ignore If-Match still send the version they served.
      if (!etag.empty() && !resp.etag.empty() && resp.etag != etag)
        return Status::Stale("s3: " + uri_ + "/" + path + " changed (ETag " + resp.etag + ", opened as " + etag + ")");
      counters().bytes_read += resp.sink_written;
      return resp.sink_written;
    }
    if (resp.http_status == 416) return size_t{0};  // at or past the end
    counters().errors++;
    if (resp.http_status == 412)
      return Status::Stale("s3: " + uri_ + "/" + path + " changed since it was opened (412)");
    return HttpError("GET", req, resp);
  }

 private:
  std::string Key(const std::string& path) const {
    if (prefix_.empty()) return path;
    return path.empty() ? prefix_ : prefix_ + "/" + path;
  }
  std::string Endpoint() const {
    const S3Options& o = client_.options();
    return o.endpoint.empty() ? "https://s3." + o.region + ".amazonaws.com" : o.endpoint;
  }

  Result<s3::ListPage> ListOnce(const std::string& prefix, const std::string& delimiter,
                                const std::string& token, int max_keys) {
    Request req;
    req.bucket = bucket_;
    req.query = {{"list-type", "2"}, {"encoding-type", "url"}, {"max-keys", std::to_string(max_keys)},
                 {"prefix", prefix}, {"delimiter", delimiter}};
    if (!token.empty()) req.query.emplace_back("continuation-token", token);
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
  Status HttpError(const std::string& op, const Request& req, const Response& resp) const {
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

  const std::string uri_;
  const std::string bucket_;
  const std::string prefix_;  // no leading or trailing slash
  Client client_;
};

}  // namespace

std::unique_ptr<Ufs> NewS3Ufs(const std::string& uri, const std::string& bucket,
                              const std::string& prefix, const S3Options& opts) {
  return std::make_unique<S3Ufs>(uri, bucket, prefix, opts);
}

}  // namespace strata::ufs
