#include "ufs/azure/azure_ufs.h"
#include "agent/base/paths.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>
#include <unordered_map>

#include "agent/base/clock.h"
#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "ufs/azure/shared_key.h"
#include "ufs/part_stream.h"
#include "ufs/rest.h"
#include "ufs/s3/list.h"
#include "ufs/s3/xml.h"

namespace strata::ufs {
namespace {

using rest::Request;
using rest::Response;
using azure::Credentials;

constexpr uint64_t kMaxBlocks = 50000;
constexpr char kFolderKey[] = "hdi_isfolder";  // ADLS / blobfuse2: a directory blob
constexpr char kLinkKey[] = "is_symlink";      // blobfuse2: a symbolic link blob

// Azure's metadata names are C# identifiers.
bool ValidMetaName(const std::string& k) {
  if (k.empty() || std::isdigit(static_cast<unsigned char>(k[0]))) return false;
  return std::all_of(k.begin(), k.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool IsTrue(const std::string* v) { return v != nullptr && (*v == "true" || *v == "True" || *v == "TRUE"); }

// Metadata pairs of an answer's x-ms-meta-* headers (names lowercased).
std::vector<std::pair<std::string, std::string>> MetaOf(const Response& r) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [k, v] : r.headers)
    if (k.rfind("x-ms-meta-", 0) == 0) out.emplace_back(k.substr(10), v);
  return out;
}

const std::string* Find(const std::vector<std::pair<std::string, std::string>>& meta, const std::string& key) {
  for (const auto& [k, v] : meta)
    if (k == key) return &v;
  return nullptr;
}

// An ETag the way the headers send it, quotes included (listings leave them out).
std::string Quoted(const std::string& etag) {
  if (etag.empty() || etag.front() == '"') return etag;
  return "\"" + etag + "\"";
}

// One blob of a List Blobs page.
struct ListedBlob {
  std::string name;
  uint64_t size = 0;
  int64_t mtime_ms = 0;
  std::string etag;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> meta;
};
struct BlobPage {
  std::vector<ListedBlob> blobs;
  std::vector<std::string> prefixes;  // with the trailing delimiter
  std::string next_marker;
};

Result<BlobPage> ParseBlobPage(const std::string& body) {
  Result<s3::XmlNode> doc = s3::ParseXml(body);
  if (!doc.ok()) return doc.status().With("azure: List Blobs answer");
  if (doc->name != "EnumerationResults") return Status::IOError("azure: List Blobs answered <" + doc->name + ">");
  BlobPage page;
  page.next_marker = doc->ChildText("NextMarker");
  const s3::XmlNode* blobs = doc->Child("Blobs");
  if (blobs == nullptr) return page;
  for (const s3::XmlNode& n : blobs->children) {
    if (n.name == "BlobPrefix") {
      page.prefixes.push_back(n.ChildText("Name"));
      continue;
    }
    if (n.name != "Blob") continue;
    ListedBlob b;
    b.name = n.ChildText("Name");
    if (const s3::XmlNode* p = n.Child("Properties")) {
      b.size = std::strtoull(p->ChildText("Content-Length").c_str(), nullptr, 10);
      b.mtime_ms = s3::ParseHttpDateMs(p->ChildText("Last-Modified"));
      b.etag = Quoted(p->ChildText("Etag"));
      b.content_type = p->ChildText("Content-Type");
    }
    if (const s3::XmlNode* m = n.Child("Metadata"))
      for (const s3::XmlNode& kv : m->children) {
        std::string k = kv.name;
        for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        b.meta.emplace_back(std::move(k), kv.text);
      }
    page.blobs.push_back(std::move(b));
  }
  return page;
}

class AzurePartSink;

class AzureUfs final : public Ufs {
 public:
  AzureUfs(std::string uri, std::string container, std::string prefix, Credentials creds, const AzureOptions& opts)
      : uri_(std::move(uri)),
        container_(std::move(container)),
        prefix_(std::move(prefix)),
        creds_(std::move(creds)),
        opts_(opts),
        base_path_(BasePath(creds_.endpoint)),
        http_(RestOptions(creds_.endpoint, opts), &counters(),
              [this](const Request& req, const std::string& /*host*/, rest::Pairs* headers) { Sign(req, headers); },
              "azure") {
    // A SAS authorizes by its query parameters, sent with every request.
    for (const auto& [k, v] : SplitQuery(creds_.sas)) sas_.emplace_back(k, v);
  }

  const std::string& uri() const override { return uri_; }

  Status Probe() override {
    Request req = ContainerRequest();
    req.query.insert(req.query.end(), {{"comp", "list"}, {"maxresults", "1"}, {"prefix", prefix_}});
    req.timeout_ms = std::min(opts_.request_timeout_ms, 10000);
    // The usual tries within 10 s, as on S3: a passing fault must not stop a start.
    Response resp;
    Status s = http_.Execute(req, &resp);
    if (!s.ok()) return Status::Unavailable("cannot reach Azure Blob endpoint " + creds_.endpoint + ": " + s.message());
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
    // The blob and the directory are asked at once (as on S3): a directory
    // shadows a same-named file blob; a folder blob (hdi_isfolder) keeps its
    // attributes.
    Response resp;
    Status head;
    Result<BlobPage> page = Status::Unavailable("azure: listing not sent");
    rest::RunBeside([&] { page = ListOnce(Key(path) + "/", "/", "", 1); }, [&] { head = Head(Key(path), &resp); });
    STRATA_RETURN_IF_ERROR(head);
    if (resp.http_status != 200 && resp.http_status != 404)
      return HttpError("Get Blob Properties", BlobRequest("HEAD", Key(path)), resp);
    if (resp.http_status == 200) {
      STRATA_RETURN_IF_ERROR(FromProperties(resp, &e));
      if (e.is_dir) return e;
    }
    if (!page.ok()) return page.status();
    if (!page->blobs.empty() || !page->prefixes.empty()) {
      Entry dir;
      dir.name = e.name;
      dir.is_dir = true;
      // "dir/" marker: the first listed blob when there is one.
      if (!page->blobs.empty() && page->blobs[0].name == Key(path) + "/") ApplyMetaPairs(page->blobs[0].meta, &dir);
      dir.is_dir = true;
      return dir;
    }
    if (resp.http_status == 404) return Status::NotFound("azure: no such blob or prefix: " + uri_ + "/" + path);
    if (S_ISLNK(e.attrs.mode)) {
      Result<std::string> target = GetSmall(Key(path), e.etag);
      if (!target.ok()) return target.status();
      e.link_target = *target;
    }
    return e;
  }

  Result<std::vector<Entry>> List(const std::string& dir) override {
    std::string prefix = Key(dir);
    if (!prefix.empty()) prefix += "/";
    std::vector<Entry> files;
    std::unordered_map<std::string, Entry> dirs;
    std::string marker;
    do {
      Result<BlobPage> page = ListOnce(prefix, "/", marker, opts_.list_page);
      if (!page.ok()) return page.status();
      for (ListedBlob& b : page->blobs) {
        if (b.name.size() <= prefix.size()) continue;  // the directory's own "dir/" marker
        std::string name = b.name.substr(prefix.size());
        if (!UsableName(name)) continue;
        Entry e;
        e.name = name;
        e.size = b.size;
        e.mtime_ns = b.mtime_ms < 0 ? 0 : b.mtime_ms * 1000000;
        e.etag = b.etag;
        ApplyMetaPairs(b.meta, &e);  // listings carry the metadata: no call per blob
        if (IsTrue(Find(b.meta, kFolderKey))) {
          e.is_dir = true;
          e.size = 0;
          e.etag.clear();
          dirs[name] = std::move(e);
          continue;
        }
        if (!b.content_type.empty() && b.content_type != "application/octet-stream") e.attrs.user.content_type = b.content_type;
        // A link's target is its body: a Stat reads it.
        e.attrs_known = !S_ISLNK(e.attrs.mode);
        files.push_back(std::move(e));
      }
      for (const std::string& p : page->prefixes) {
        if (p.size() <= prefix.size() + 1) continue;
        std::string name = p.substr(prefix.size(), p.size() - prefix.size() - 1);
        if (!UsableName(name) || dirs.count(name)) continue;
        Entry e;
        e.name = name;
        e.is_dir = true;
        e.attrs_known = false;  // a "dir/" marker may keep attributes: a Stat tells
        dirs[name] = std::move(e);
      }
      marker = page->next_marker;
    } while (!marker.empty());
    std::vector<Entry> out;
    out.reserve(files.size() + dirs.size());
    for (Entry& f : files)
      if (!dirs.count(f.name)) out.push_back(std::move(f));  // a directory shadows a same-named blob
    for (auto& [name, d] : dirs) out.push_back(std::move(d));
    return out;
  }

  Result<size_t> Read(const std::string& path, const std::string& etag, uint64_t off, size_t len,
                      char* buf) override {
    return ReadKey(Key(path), etag, off, len, buf);
  }

  Result<Entry> Put(const std::string& path, uint64_t size, const ReadAt& src, const Attrs& attrs,
                    const CopyBase* base) override {
    Entry e;
    e.name = SplitPath(path).second;
    e.size = size;
    e.attrs = attrs;
    e.mtime_ns = attrs.mtime_ns ? attrs.mtime_ns : NowUnixMs() * 1000000;
    e.attrs.mtime_ns = e.mtime_ns;
    STRATA_RETURN_IF_ERROR(CheckMeta(e.attrs));
    Result<std::string> etag = size <= BlockSize(size) ? PutBlob(Key(path), size, src, e.attrs, {})
                                                       : PutBlocks(Key(path), size, src, e.attrs, base);
    if (!etag.ok()) return etag.status();
    e.etag = *etag;
    return e;
  }

  Status Delete(const std::string& path) override { return DeleteBlob(Key(path)); }

  Status Mkdir(const std::string& path, const Attrs& attrs) override {
    Attrs a = attrs;
    a.mode = S_IFDIR | (attrs.mode ? attrs.mode & 07777 : 0755);
    if (a.mtime_ns == 0) a.mtime_ns = NowUnixMs() * 1000000;
    a.user = {};
    return PutBlob(Key(path), 0, nullptr, a, {{kFolderKey, "true"}}).status();
  }

  Status Rmdir(const std::string& path) override {
    std::string prefix = Key(path) + "/";
    Result<BlobPage> page = ListOnce(prefix, "", "", 2);
    if (!page.ok()) return page.status();
    for (const ListedBlob& b : page->blobs)
      if (b.name != prefix) return Status::NotEmpty("azure: directory " + uri_ + "/" + path + " is not empty");
    // Whichever markers there are: "dir" (hdi_isfolder) and "dir/".
    bool removed = false;
    for (const std::string& key : {Key(path), prefix}) {
      Status s = DeleteBlob(key);
      if (s.ok()) removed = true;
      else if (!s.IsNotFound()) return s;
    }
    if (!removed && page->blobs.empty()) return Status::NotFound("azure: no such directory: " + uri_ + "/" + path);
    return Status::OK();
  }

  // Copy then delete, blob by blob: a crash in between leaves both names
  // (never neither); readers elsewhere may see a half-moved directory.
  Status Rename(const std::string& from, const std::string& to) override {
    Result<Entry> src = Stat(from);
    if (!src.ok()) return src.status();
    if (!src->is_dir) {
      STRATA_RETURN_IF_ERROR(CopyBlob(Key(from), Key(to)));
      return DeleteBlob(Key(from));
    }
    std::string from_prefix = Key(from) + "/", to_prefix = Key(to) + "/";
    std::vector<std::string> all;
    std::string marker;
    do {
      Result<BlobPage> page = ListOnce(from_prefix, "", marker, opts_.list_page);
      if (!page.ok()) return page.status();
      for (const ListedBlob& b : page->blobs) all.push_back(b.name);
      marker = page->next_marker;
    } while (!marker.empty());
    for (const std::string& name : all) STRATA_RETURN_IF_ERROR(CopyBlob(name, to_prefix + name.substr(from_prefix.size())));
    Response head;
    STRATA_RETURN_IF_ERROR(Head(Key(from), &head));
    const bool folder_blob = head.http_status == 200;
    if (folder_blob) STRATA_RETURN_IF_ERROR(CopyBlob(Key(from), Key(to)));
    for (const std::string& name : all) STRATA_RETURN_IF_ERROR(DeleteBlob(name));
    if (folder_blob) STRATA_RETURN_IF_ERROR(DeleteBlob(Key(from)));
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
    if (a.mtime_ns == 0) a.mtime_ns = cur->mtime_ns;
    if (cur->is_dir) {
      // The attributes live on the directory blob; an implied directory gets one.
      a.mode = S_IFDIR | (a.mode ? a.mode & 07777 : 0755);
      Response head;
      STRATA_RETURN_IF_ERROR(Head(Key(path), &head));
      if (head.http_status != 200) STRATA_RETURN_IF_ERROR(Mkdir(path, a));
      else STRATA_RETURN_IF_ERROR(SetMetadata(Key(path), a, {{kFolderKey, "true"}}));
      return Stat(path);
    }
    if (a.mode == 0) a.mode = S_IFREG | 0644;
    STRATA_RETURN_IF_ERROR(SetMetadata(Key(path), a, S_ISLNK(a.mode) ? MetaList{{kLinkKey, "true"}} : MetaList{}));
    return Stat(path);
  }

  Status Symlink(const std::string& path, const std::string& target, const Attrs& attrs) override {
    Attrs a = attrs;
    a.mode = S_IFLNK | 0777;
    if (a.mtime_ns == 0) a.mtime_ns = NowUnixMs() * 1000000;
    a.user = {};
    ReadAt src = [&](uint64_t off, size_t len, char* buf) {
      std::memcpy(buf, target.data() + off, len);
      return Status::OK();
    };
    return PutBlob(Key(path), target.size(), src, a, {{kLinkKey, "true"}}).status();
  }

 private:
  using MetaList = std::vector<std::pair<std::string, std::string>>;

  static rest::Options RestOptions(const std::string& endpoint, const AzureOptions& o) {
    rest::Options r;
    size_t sep = endpoint.find("://");
    size_t path = endpoint.find('/', sep == std::string::npos ? 0 : sep + 3);
    r.endpoint = endpoint.substr(0, path);
    r.connect_timeout_ms = o.connect_timeout_ms;
    r.request_timeout_ms = o.request_timeout_ms;
    r.max_attempts = o.max_attempts;
    r.ca_bundle = o.ca_bundle;
    return r;
  }
  // The endpoint's own path ("/devstoreaccount1" for Azurite), "" for Azure's.
  static std::string BasePath(const std::string& endpoint) {
    size_t sep = endpoint.find("://");
    size_t path = endpoint.find('/', sep == std::string::npos ? 0 : sep + 3);
    return path == std::string::npos ? "" : endpoint.substr(path);
  }
  static rest::Pairs SplitQuery(const std::string& q) {
    rest::Pairs out;
    size_t at = 0;
    while (at < q.size()) {
      size_t amp = q.find('&', at);
      std::string part = q.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
      at = amp == std::string::npos ? q.size() : amp + 1;
      size_t eq = part.find('=');
      if (!part.empty())
        out.emplace_back(UriDecode(part.substr(0, eq)), eq == std::string::npos ? "" : UriDecode(part.substr(eq + 1)));
    }
    return out;
  }

  void Sign(const Request& req, rest::Pairs* headers) const {
    headers->emplace_back("x-ms-date", azure::HttpDate(std::time(nullptr)));
    headers->emplace_back("x-ms-version", azure::kApiVersion);
    if (req.method == "PUT" || req.method == "POST") headers->emplace_back("Content-Length", std::to_string(req.body_len));
    if (creds_.key.empty()) return;  // a SAS, in the query
    azure::SignInput in{req.method, UriEncode(req.path, true), req.query, *headers};
    Result<azure::Signed> s = azure::SignSharedKey(in, creds_.account, creds_.key);
    if (s.ok()) headers->emplace_back("Authorization", s->authorization);
  }

  // The blob name of a path.
  std::string Key(const std::string& path) const { return KeyOf(prefix_, path); }

  Request BlobRequest(const std::string& method, const std::string& key) const {
    Request req;
    req.method = method;
    req.path = base_path_ + "/" + container_ + "/" + key;
    req.query = sas_;
    return req;
  }
  Request ContainerRequest() const {
    Request req;
    req.path = base_path_ + "/" + container_;
    req.query = sas_;
    req.query.emplace_back("restype", "container");
    return req;
  }
  // The blob's URL as another request names it (a copy source), with a
  // read grant: the SAS in use, or one made for this blob.
  Result<std::string> SourceUrl(const std::string& key) const {
    std::string url = http_.Url(BlobRequest("GET", key));
    if (!creds_.sas.empty() || creds_.key.empty()) return url;
    Result<std::string> sas = azure::BlobReadSas(creds_.account, creds_.key, "/" + container_ + "/" + key,
                                                 std::time(nullptr) + 3600);
    if (!sas.ok()) return sas.status();
    return url + (url.find('?') == std::string::npos ? "?" : "&") + *sas;
  }

  // Adds x-ms-meta-* for the attributes, the user's pairs and `extra`.
  void AddMeta(const Attrs& a, const MetaList& extra, Request* req) const {
    for (auto& [k, v] : MetaPairs(a)) req->headers.emplace_back("x-ms-meta-" + k, std::move(v));
    for (const auto& [k, v] : extra) req->headers.emplace_back("x-ms-meta-" + k, v);
  }
  Status CheckMeta(const Attrs& a) const {
    for (const auto& [k, v] : a.user.pairs)
      if (!ValidMetaName(k))
        return Status::InvalidArgument("azure: metadata name '" + k +
                                       "' is not allowed (Azure takes C# identifiers: letters, digits, '_')");
    return Status::OK();
  }

  // Fills *e from Get Blob Properties.
  Status FromProperties(const Response& resp, Entry* e) const {
    MetaList meta = MetaOf(resp);
    e->size = resp.content_length;
    e->etag = resp.etag;
    e->mtime_ns = std::max<int64_t>(0, s3::ParseHttpDateMs(resp.last_modified)) * 1000000;
    ApplyMetaPairs(meta, e);
    e->attrs.user.pairs.erase(std::remove_if(e->attrs.user.pairs.begin(), e->attrs.user.pairs.end(),
                                             [](const auto& kv) { return kv.first == kFolderKey || kv.first == kLinkKey; }),
                              e->attrs.user.pairs.end());
    if (IsTrue(Find(meta, kFolderKey))) {
      e->is_dir = true;
      e->size = 0;
      e->etag.clear();
      e->attrs.user = {};
      return Status::OK();
    }
    if (IsTrue(Find(meta, kLinkKey))) e->attrs.mode = S_IFLNK | 0777;
    if (!resp.content_type.empty() && resp.content_type != "application/octet-stream")
      e->attrs.user.content_type = resp.content_type;
    return Status::OK();
  }

  Status Head(const std::string& key, Response* resp) {
    counters().head_requests++;
    return http_.Execute(BlobRequest("HEAD", key), resp);
  }

  // Executes a request that changes the store, counting it.
  Status Send(const Request& req, Response* resp) {
    counters().put_requests++;
    Status s = http_.Execute(req, resp);
    if (!s.ok() || resp->http_status >= 300) counters().errors++;
    return s;
  }

  Result<std::string> GetSmall(const std::string& key, const std::string& etag) {
    std::string buf(4096, '\0');
    Result<size_t> n = ReadKey(key, etag, 0, buf.size(), buf.data());
    if (!n.ok()) return n.status();
    buf.resize(*n);
    return buf;
  }

  Result<size_t> ReadKey(const std::string& key, const std::string& etag, uint64_t off, size_t len, char* buf) {
    return http_.ReadRange(BlobRequest("GET", key), "x-ms-range", off, len, etag, buf,
                           [&](const Request& req, const Response& r) { return HttpError("Get Blob", req, r); });
  }

  // Blocks stay under Azure's 50,000-block limit: the size grows with the blob.
  uint64_t BlockSize(uint64_t size) const {
    uint64_t block = std::max<uint64_t>(opts_.block_size, 1u << 20);
    uint64_t need = (size + kMaxBlocks - 2) / (kMaxBlocks - 1);
    if (need > block) block = (need + (1u << 20) - 1) & ~uint64_t{(1u << 20) - 1};
    return block;
  }

  Result<std::string> PutBlob(const std::string& key, uint64_t size, const ReadAt& src, const Attrs& a,
                              const MetaList& extra) {
    std::vector<char> body(size);
    if (size > 0) STRATA_RETURN_IF_ERROR(src(0, size, body.data()));
    Request req = BlobRequest("PUT", key);
    req.headers.emplace_back("x-ms-blob-type", "BlockBlob");
    if (!a.user.content_type.empty()) req.headers.emplace_back("x-ms-blob-content-type", a.user.content_type);
    AddMeta(a, extra, &req);
    req.body = body.data();
    req.body_len = body.size();
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(req, &resp));
    if (resp.http_status != 201) return HttpError("Put Blob", req, resp);
    counters().bytes_written += size;
    return resp.etag;
  }

  // Block ids: base64 of one fixed-width string, as Azure requires of all
  // the blocks of a blob.
  static std::string BlockId(uint64_t i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "strata-%08llu", static_cast<unsigned long long>(i));
    return Base64(buf);
  }

  // Blocks in parallel, then the list. A failure leaves only uncommitted
  // blocks, which Azure drops after a week: no blob, and the old one stays.
  Result<std::string> PutBlocks(const std::string& key, uint64_t size, const ReadAt& src, const Attrs& a,
                                const CopyBase* base) {
    const uint64_t block = BlockSize(size);
    const uint64_t count = (size + block - 1) / block;
    Result<std::string> source = base != nullptr ? SourceUrl(Key(base->path)) : Result<std::string>(std::string());
    if (!source.ok()) return source.status();
    Status failed = rest::RunParallel(count, opts_.upload_parallel, [&](uint64_t i, std::vector<char>* buf) -> Status {
      uint64_t off = i * block;
      size_t len = static_cast<size_t>(std::min(block, size - off));
      const bool copy = base != nullptr && !block_copy_unsupported_ && base->unchanged(off, len);
      if (!copy) return PutBlock(key, BlockId(i), off, len, src, buf);
      // Put Block From URL: the unchanged range from the stored version.
      Request req = BlobRequest("PUT", key);
      req.query.insert(req.query.end(), {{"comp", "block"}, {"blockid", BlockId(i)}});
      req.headers.emplace_back("x-ms-copy-source", *source);
      req.headers.emplace_back("x-ms-source-range", "bytes=" + std::to_string(off) + "-" + std::to_string(off + len - 1));
      if (!base->etag.empty()) req.headers.emplace_back("x-ms-source-if-match", base->etag);
      Response resp;
      STRATA_RETURN_IF_ERROR(Send(req, &resp));
      if (resp.http_status == 201) {
        counters().part_copies++;
        return Status::OK();
      }
      if (resp.http_status == 412 || resp.error_code == "CannotVerifyCopySource")
        return Status::Stale("azure: Put Block From URL of " + base->path + ": the stored version " + base->etag +
                             " changed (" + std::to_string(resp.http_status) + " " + resp.error_code + ")");
      if ((resp.http_status == 400 || resp.http_status == 501) && resp.error_code != "InvalidBlockId" &&
          !block_copy_unsupported_.exchange(true)) {
        LOG_WARN("azure: %s cannot copy blocks from a URL (%ld %s): unchanged ranges are uploaded instead",
                 creds_.endpoint.c_str(), resp.http_status, resp.error_code.c_str());
        return PutBlock(key, BlockId(i), off, len, src, buf);
      }
      return HttpError("Put Block From URL", req, resp);
    });
    if (!failed.ok()) return failed;
    std::vector<std::string> ids;
    for (uint64_t i = 0; i < count; i++) ids.push_back(BlockId(i));
    return CommitBlocks(key, ids, a);
  }

  // Put Block List: the blocks, in order, become the blob.
  Result<std::string> CommitBlocks(const std::string& key, const std::vector<std::string>& ids, const Attrs& a) {
    std::string xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
    for (const std::string& id : ids) xml += "<Latest>" + id + "</Latest>";
    xml += "</BlockList>";
    Request commit = BlobRequest("PUT", key);
    commit.query.emplace_back("comp", "blocklist");
    if (!a.user.content_type.empty()) commit.headers.emplace_back("x-ms-blob-content-type", a.user.content_type);
    AddMeta(a, {}, &commit);
    commit.body = xml.data();
    commit.body_len = xml.size();
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(commit, &resp));
    if (resp.http_status != 201) return HttpError("Put Block List", commit, resp);
    return resp.etag;
  }

  // Put Block of bytes [off, off + len) of `src` as block `id`.
  Status PutBlock(const std::string& key, const std::string& id, uint64_t off, size_t len, const ReadAt& src,
                  std::vector<char>* buf) {
    buf->resize(len);
    STRATA_RETURN_IF_ERROR(src(off, len, buf->data()));
    Request req = BlobRequest("PUT", key);
    req.query.insert(req.query.end(), {{"comp", "block"}, {"blockid", id}});
    req.body = buf->data();
    req.body_len = len;
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(req, &resp));
    if (resp.http_status != 201) return HttpError("Put Block", req, resp);
    counters().bytes_written += len;
    return Status::OK();
  }

  std::unique_ptr<StreamUpload> StartStream(const std::string& path, ReadAt src, const Attrs& attrs) override;

  Status SetMetadata(const std::string& key, const Attrs& a, const MetaList& extra) {
    Request req = BlobRequest("PUT", key);
    req.query.emplace_back("comp", "metadata");
    AddMeta(a, extra, &req);
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(req, &resp));
    if (resp.http_status != 200) return HttpError("Set Blob Metadata", req, resp);
    return Status::OK();
  }

  // Copy Blob within the account; waits for a copy the service runs in the
  // background (large blobs) until it ends or the request deadline passes.
  Status CopyBlob(const std::string& from, const std::string& to) {
    Result<std::string> source = SourceUrl(from);
    if (!source.ok()) return source.status();
    Request req = BlobRequest("PUT", to);
    req.headers.emplace_back("x-ms-copy-source", *source);
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(req, &resp));
    if (resp.http_status != 202 && resp.http_status != 201) return HttpError("Copy Blob", req, resp);
    const std::string* status = resp.Header("x-ms-copy-status");
    const int64_t deadline = NowMonoMs() + opts_.request_timeout_ms;
    while (status != nullptr && *status == "pending") {
      if (NowMonoMs() > deadline)
        return Status::Timeout("azure: Copy Blob " + from + " -> " + to + " still pending after " +
                               std::to_string(opts_.request_timeout_ms) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      STRATA_RETURN_IF_ERROR(Head(to, &resp));
      if (resp.http_status != 200) return HttpError("Get Blob Properties", BlobRequest("HEAD", to), resp);
      status = resp.Header("x-ms-copy-status");
    }
    if (status != nullptr && *status != "success")
      return Status::IOError("azure: Copy Blob " + from + " -> " + to + " ended " + *status);
    return Status::OK();
  }

  Status DeleteBlob(const std::string& key) {
    Request req = BlobRequest("DELETE", key);
    Response resp;
    STRATA_RETURN_IF_ERROR(Send(req, &resp));
    if (resp.http_status == 202 || resp.http_status == 200) return Status::OK();
    return HttpError("Delete Blob", req, resp);
  }

  Result<BlobPage> ListOnce(const std::string& prefix, const std::string& delimiter, const std::string& marker,
                            int max_results) {
    Request req = ContainerRequest();
    req.query.insert(req.query.end(), {{"comp", "list"}, {"include", "metadata"},
                                       {"maxresults", std::to_string(max_results)}, {"prefix", prefix}});
    if (!delimiter.empty()) req.query.emplace_back("delimiter", delimiter);
    if (!marker.empty()) req.query.emplace_back("marker", marker);
    // A page cut short or damaged on the way is asked for again.
    req.check_body = [](const Response& r) { return ParseBlobPage(r.body).ok(); };
    Response resp;
    counters().list_requests++;
    Status s = http_.Execute(req, &resp);
    if (!s.ok()) {
      counters().errors++;
      return s;
    }
    if (resp.http_status != 200) {
      counters().errors++;
      return HttpError("List Blobs", req, resp);
    }
    return ParseBlobPage(resp.body);
  }

  // Turns an HTTP error answer into a Status that names the problem.
  Status HttpError(const std::string& op, const Request& req, const Response& resp) const {
    std::string where = op + " " + http_.Url(req) + ": " + std::to_string(resp.http_status) +
                        (resp.error_code.empty() ? "" : " " + resp.error_code) +
                        (resp.error_message.empty() ? "" : " (" + resp.error_message + ")");
    if (resp.error_code == "ContainerNotFound")
      return Status::NotFound("azure: container '" + container_ + "' does not exist at " + creds_.endpoint + " [" + where + "]");
    if (resp.http_status == 404) return Status::NotFound("azure: " + where);
    if (resp.http_status == 403 || resp.http_status == 401) {
      std::string check = creds_.key.empty() ? "check AZURE_STORAGE_SAS_TOKEN (its permissions and expiry)"
                                             : "check AZURE_STORAGE_KEY (and AZURE_STORAGE_ACCOUNT)";
      return Status::PermissionDenied("azure: " + std::to_string(resp.http_status) + " " + resp.error_code + ": " +
                                      check + " [" + where + "]");
    }
    return Status::IOError("azure: " + where);
  }

  friend class AzurePartSink;

  const std::string uri_;
  const std::string container_;
  const std::string prefix_;  // no leading or trailing slash
  const Credentials creds_;
  const AzureOptions opts_;
  const std::string base_path_;
  rest::Pairs sas_;
  rest::Client http_;
  std::atomic<bool> block_copy_unsupported_{false};
};

// Blocks sent while the file is written, committed with Put Block List.
// An unfinished stream leaves only uncommitted blocks (Azure drops them).
class AzurePartSink final : public PartSink {
 public:
  AzurePartSink(AzureUfs* ufs, std::string path, const Attrs& attrs) : ufs_(ufs), path_(std::move(path)), attrs_(attrs) {}
  Result<std::string> SendPart(uint64_t number, uint64_t off, size_t len, const ReadAt& src,
                               std::vector<char>* buf) override {
    std::string id = AzureUfs::BlockId(number - 1);
    STRATA_RETURN_IF_ERROR(ufs_->PutBlock(ufs_->Key(path_), id, off, len, src, buf));
    return id;
  }
  Result<std::string> Complete(const std::vector<std::string>& parts) override {
    Attrs a = attrs_;
    a.mtime_ns = NowUnixMs() * 1000000;
    return ufs_->CommitBlocks(ufs_->Key(path_), parts, a);
  }
  void Abort() override {}
  Result<Entry> PutWhole(uint64_t size, const ReadAt& src, const Attrs& attrs) override {
    return ufs_->Put(path_, size, src, attrs, nullptr);
  }

 private:
  AzureUfs* const ufs_;
  const std::string path_;
  const Attrs attrs_;
};

std::unique_ptr<StreamUpload> AzureUfs::StartStream(const std::string& path, ReadAt src, const Attrs& attrs) {
  if (!CheckMeta(attrs).ok()) return nullptr;  // Put says why
  return NewPartStream(std::make_unique<AzurePartSink>(this, path, attrs), path, std::move(src), attrs,
                       std::max<uint64_t>(opts_.block_size, 1u << 20), opts_.upload_parallel, &counters());
}

}  // namespace

Result<std::unique_ptr<Ufs>> NewAzureUfs(const std::string& uri, const std::string& container,
                                         const std::string& prefix, const AzureOptions& opts) {
  Result<Credentials> creds = azure::CredentialsFromEnv(opts.endpoint);
  if (!creds.ok()) return creds.status();
  return std::unique_ptr<Ufs>(std::make_unique<AzureUfs>(uri, container, prefix, *creds, opts));
}

}  // namespace strata::ufs
