// S3 multipart uploads. Parts are files on the cache disk, one directory
// per upload (<uploads_dir>/<upload id>/), never in memory:
//   meta      "bucket/key\naccess key\nuser metadata (JSON)\n"
//   <n>       the bytes of part n (1..10000), written as <n>.tmp then renamed
//   <n>.md5   its MD5 (hex): the part's ETag
// CompleteMultipartUpload checks the list against the parts (order, ETags,
// the 5 MiB minimum of every part but the last) and streams them, in order,
// into one new object through the writer (as a PUT). The upload's ETag is
// the store's, as for a PUT, else S3's multipart form: the MD5 of the
// parts' MD5s, "-" and the part count.
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>

#include "agent/base/fd.h"
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
constexpr uint64_t kMinPart = 5u << 20;
constexpr int kMaxParts = 10000;

std::string ReadSmall(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ValidUploadId(const std::string& id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

struct Part {
  int number = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string md5;  // hex
};

std::map<int, Part> ListPartFiles(const std::string& dir) {
  std::map<int, Part> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.empty() || name.size() > 5 ||
        !std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      continue;
    struct stat st;
    if (::stat((dir + "/" + name).c_str(), &st) != 0) continue;
    Part p;
    p.number = std::atoi(name.c_str());
    p.size = static_cast<uint64_t>(st.st_size);
    p.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    p.md5 = ReadSmall(dir + "/" + name + ".md5");
    if (p.md5.size() == 32) out[p.number] = p;
  }
  ::closedir(d);
  return out;
}

std::string Unquote(std::string e) {
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

}  // namespace

std::string Gateway::UploadDir(const std::string& id) const { return opts_.uploads_dir + "/" + id; }

// The upload named by ?uploadId for `path`, or an S3 error.
S3Error Gateway::FindUpload(Call& c, const std::string& path, std::string* dir) {
  const std::string* id = c.req.Query("uploadId");
  if (id == nullptr || !ValidUploadId(*id))
    return {404, "NoSuchUpload", "The specified upload does not exist"};
  *dir = UploadDir(*id);
  std::string meta = ReadSmall(*dir + "/meta");
  if (meta.empty() || meta.substr(0, meta.find('\n')) != path)
    return {404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."};
  return {};
}

void Gateway::Multipart(Call& c, const std::string& path) {
  const Request& req = c.req;
  const std::string bucket = path.substr(0, path.find('/')), key = path.substr(path.find('/') + 1);
  if (req.method == "POST" && req.HasQuery("uploads")) {
    c.op = "CreateMultipartUpload";
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) return c.Fail({500, "InternalError", "no random bytes"});
    std::string id = Hex(std::string_view(reinterpret_cast<char*>(raw), sizeof(raw)));
    ufs::UserMeta user;
    if (S3Error e = UserMetaOf(req, &user); !e.ok()) return c.Fail(e);
    Status s = MakeDirs(UploadDir(id), 0700);
    if (s.ok()) {
      std::string meta = path + "\n" + c.verified.grant->name + "\n" + EncodeUserMeta(user) + "\n";
      s = WriteFileAtomic(UploadDir(id) + "/meta", meta.data(), meta.size(), false);
    }
    if (!s.ok()) return c.Fail(ErrorOf(s, path));
    std::string xml = std::string(kXmlHead) + "<InitiateMultipartUploadResult xmlns=\"" + kNs + "\"><Bucket>" +
                      XmlEscape(bucket) + "</Bucket><Key>" + XmlEscape(key) + "</Key><UploadId>" + id +
                      "</UploadId></InitiateMultipartUploadResult>\n";
    (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
    return;
  }
  std::string dir;
  S3Error e = FindUpload(c, path, &dir);
  if (req.method == "PUT") {
    c.op = req.Header("x-amz-copy-source") != nullptr ? "UploadPartCopy" : "UploadPart";
    if (!e.ok()) return c.Fail(e);
    const std::string* pn = req.Query("partNumber");
    char* end = nullptr;
    long n = pn == nullptr ? 0 : std::strtol(pn->c_str(), &end, 10);
    if (pn == nullptr || *end != '\0' || n < 1 || n > kMaxParts)
      return c.Fail({400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"});
    if (S3Error too = SizeLimit(c); !too.ok()) return c.Fail(too);
    const std::string part = dir + "/" + std::to_string(n);
    Fd fd(::open((part + ".tmp").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return c.Fail(ErrorOf(Status::FromErrno(errno, "part file"), path));
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md5(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(md5.get(), EVP_md5(), nullptr);
    std::vector<char> buf(1 << 20);
    uint64_t at = 0;
    Status s;
    if (c.op == "UploadPartCopy") {
      // Bytes of another object (x-amz-copy-source-range), read through the cache.
      std::string src;
      if (!PercentDecode(*req.Header("x-amz-copy-source"), &src, false)) return c.Fail({400, "InvalidArgument", "x-amz-copy-source is not valid"});
      if (size_t q = src.find('?'); q != std::string::npos) src.resize(q);
      while (!src.empty() && src.front() == '/') src.erase(0, 1);
      if (!SafeObjectPath(src)) return c.Fail({400, "InvalidArgument", "x-amz-copy-source must be BUCKET/KEY"});
      if (!c.verified.grant->Allows(src, false)) return c.Fail({403, "AccessDenied", "Access Denied: may not read " + src});
      Result<index::FileMeta> m = meta_->Stat(src);
      if (!m.ok() || m->is_dir) return c.Fail({404, "NoSuchKey", "The specified key does not exist: " + src});
      uint64_t first = 0, last = m->size == 0 ? 0 : m->size - 1;
      if (const std::string* r = req.Header("x-amz-copy-source-range"); r != nullptr) {
        unsigned long long a = 0, b = 0;
        if (std::sscanf(r->c_str(), "bytes=%llu-%llu", &a, &b) != 2 || b < a || b >= m->size)
          return c.Fail({400, "InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"});
        first = a;
        last = b;
      }
      cache::Reader::Options ro;
      ro.max_readahead_blocks = opts_.read_ahead_blocks;
      Result<std::unique_ptr<cache::Reader>> reader = cache::Reader::Open(engine_, meta_, writer_, src, ro);
      if (!reader.ok()) return c.Fail(ErrorOf(reader.status(), src));
      for (uint64_t off = first; m->size > 0 && off <= last && s.ok();) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), last + 1 - off));
        s = ReadThrough(**reader, off, want, buf.data());
        if (s.ok()) s = PwriteFull(fd.get(), buf.data(), want, at);
        if (s.ok()) EVP_DigestUpdate(md5.get(), buf.data(), want);
        off += want;
        at += want;
      }
    } else {
      BodyDecoder dec(c);
      s = dec.Init();
      for (;;) {
        if (!s.ok()) break;
        Result<size_t> got = dec.Read(buf.data(), buf.size());
        if (!got.ok()) {
          s = got.status();
          break;
        }
        if (*got == 0) break;
        s = PwriteFull(fd.get(), buf.data(), *got, at);
        EVP_DigestUpdate(md5.get(), buf.data(), *got);
        at += *got;
      }
      if (s.ok()) s = dec.Finish();
      c.bytes_in = at;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(md5.get(), md, &mdlen);
    std::string md5_hex = Hex(std::string_view(reinterpret_cast<char*>(md), mdlen));
    fd.Reset();
    if (s.ok()) s = WriteFileAtomic(part + ".md5", md5_hex.data(), md5_hex.size(), false);
    if (s.ok() && ::rename((part + ".tmp").c_str(), part.c_str()) != 0) s = Status::FromErrno(errno, "rename part");
    if (!s.ok()) {
      ::unlink((part + ".tmp").c_str());
      return c.Fail(BodyDecoder::ErrorFor(s));
    }
    if (c.op == "UploadPartCopy") {
      std::string xml = std::string(kXmlHead) + "<CopyPartResult><LastModified>" + IsoDate(static_cast<int64_t>(std::time(nullptr)) * 1000000000) +
                        "</LastModified><ETag>&quot;" + md5_hex + "&quot;</ETag></CopyPartResult>\n";
      (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
    } else {
      (void)c.resp.Send(200, {{"ETag", "\"" + md5_hex + "\""}}, "");
    }
    return;
  }
  if (req.method == "DELETE") {
    c.op = "AbortMultipartUpload";
    if (!e.ok()) return c.Fail(e);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    (void)c.resp.Send(204, {}, "");
    return;
  }
  if (req.method == "GET") {
    c.op = "ListParts";
    if (!e.ok()) return c.Fail(e);
    std::string xml = std::string(kXmlHead) + "<ListPartsResult xmlns=\"" + kNs + "\"><Bucket>" + XmlEscape(bucket) +
                      "</Bucket><Key>" + XmlEscape(key) + "</Key><UploadId>" + *req.Query("uploadId") +
                      "</UploadId><IsTruncated>false</IsTruncated>";
    int marker = req.Query("part-number-marker") ? std::atoi(req.Query("part-number-marker")->c_str()) : 0;
    for (const auto& [n, p] : ListPartFiles(dir)) {
      if (n <= marker) continue;
      xml += "<Part><PartNumber>" + std::to_string(n) + "</PartNumber><LastModified>" + IsoDate(p.mtime_ns) +
             "</LastModified><ETag>&quot;" + p.md5 + "&quot;</ETag><Size>" + std::to_string(p.size) + "</Size></Part>";
    }
    xml += "</ListPartsResult>\n";
    (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
    return;
  }
  if (req.method != "POST") return c.Fail({405, "MethodNotAllowed", "The specified method is not allowed against this resource"});
  c.op = "CompleteMultipartUpload";
  if (!e.ok()) return c.Fail(e);
  std::string body;
  if (!ReadSmallBody(c, 4 << 20, &body)) return;
  Result<ufs::s3::XmlNode> doc = ufs::s3::ParseXml(body);
  if (!doc.ok() || doc->name != "CompleteMultipartUpload")
    return c.Fail({400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema"});
  std::map<int, Part> have = ListPartFiles(dir);
  std::vector<Part> use;
  for (const ufs::s3::XmlNode& p : doc->children) {
    if (p.name != "Part") continue;
    int n = std::atoi(p.ChildText("PartNumber").c_str());
    if (!use.empty() && n <= use.back().number)
      return c.Fail({400, "InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number."});
    auto it = have.find(n);
    if (it == have.end() || Unquote(p.ChildText("ETag")) != it->second.md5)
      return c.Fail({400, "InvalidPart", "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not have matched the part's entity tag."});
    use.push_back(it->second);
  }
  if (use.empty()) return c.Fail({400, "MalformedXML", "You must specify at least one part"});
  for (size_t i = 0; i + 1 < use.size(); i++)
    if (use[i].size < kMinPart)
      return c.Fail({400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size (part " +
                                                std::to_string(use[i].number) + " is under 5 MiB)"});
  // The parts in order, as one stream into the new object.
  std::string md5s;
  for (const Part& p : use) {
    std::string raw(16, '\0');
    for (int i = 0; i < 16; i++) raw[i] = static_cast<char>(std::stoi(p.md5.substr(i * 2, 2), nullptr, 16));
    md5s += raw;
  }
  const std::string mp_etag = Hex(Md5Raw(md5s)) + "-" + std::to_string(use.size());
  size_t idx = 0;
  uint64_t in_part = 0;
  Fd cur;
  ObjectSource src{[&](char* buf, size_t cap) -> Result<size_t> {
                     while (idx < use.size()) {
                       if (!cur.valid()) {
                         cur.Reset(::open((dir + "/" + std::to_string(use[idx].number)).c_str(), O_RDONLY | O_CLOEXEC));
                         if (!cur.valid()) return Status::FromErrno(errno, "part " + std::to_string(use[idx].number));
                         in_part = 0;
                       }
                       size_t want = static_cast<size_t>(std::min<uint64_t>(cap, use[idx].size - in_part));
                       if (want == 0) {
                         cur.Reset();
                         idx++;
                         continue;
                       }
                       size_t got = 0;
                       STRATA_RETURN_IF_ERROR(PreadFull(cur.get(), buf, want, in_part, &got));
                       if (got != want) return Status::IOError("a part file is shorter than when it was uploaded");
                       in_part += got;
                       return got;
                     }
                     return size_t{0};
                   },
                   [] { return Status::OK(); }, [&] { return mp_etag; }};
  // The metadata given at creation: the meta file's third line.
  std::string meta = ReadSmall(dir + "/meta");
  size_t l2 = meta.find('\n', meta.find('\n') + 1);
  ufs::UserMeta user = l2 == std::string::npos ? ufs::UserMeta{} : DecodeUserMeta(meta.substr(l2 + 1));
  std::string etag;
  uint64_t bytes = 0;
  Status s = WriteObject(path, src, user, &bytes, &etag);
  if (!s.ok()) return c.Fail(ErrorOf(s, path));
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::string xml = std::string(kXmlHead) + "<CompleteMultipartUploadResult xmlns=\"" + kNs + "\"><Location>/" +
                    XmlEscape(path) + "</Location><Bucket>" + XmlEscape(bucket) + "</Bucket><Key>" + XmlEscape(key) +
                    "</Key><ETag>" + XmlEscape(QuotedEtag(etag)) + "</ETag></CompleteMultipartUploadResult>\n";
  (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
}

void Gateway::ListUploads(Call& c, const std::string& bucket) {
  std::string xml = std::string(kXmlHead) + "<ListMultipartUploadsResult xmlns=\"" + kNs + "\"><Bucket>" +
                    XmlEscape(bucket) + "</Bucket><IsTruncated>false</IsTruncated>";
  const std::string* prefix = c.req.Query("prefix");
  DIR* d = ::opendir(opts_.uploads_dir.c_str());
  while (d != nullptr) {
    dirent* e = ::readdir(d);
    if (e == nullptr) break;
    std::string id = e->d_name;
    if (!ValidUploadId(id)) continue;
    std::string meta = ReadSmall(UploadDir(id) + "/meta");
    std::string path = meta.substr(0, meta.find('\n'));
    if (path.rfind(bucket + "/", 0) != 0) continue;
    std::string key = path.substr(bucket.size() + 1);
    if (prefix != nullptr && key.rfind(*prefix, 0) != 0) continue;
    struct stat st;
    int64_t t = ::stat(UploadDir(id).c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 : 0;
    xml += "<Upload><Key>" + XmlEscape(key) + "</Key><UploadId>" + id + "</UploadId><Initiated>" + IsoDate(t) +
           "</Initiated><StorageClass>STANDARD</StorageClass></Upload>";
  }
  if (d != nullptr) ::closedir(d);
  xml += "</ListMultipartUploadsResult>\n";
  (void)c.resp.Send(200, {{"Content-Type", "application/xml"}}, xml);
}

Status Gateway::ReadThrough(cache::Reader& reader, uint64_t off, size_t n, char* buf) {
  std::promise<std::pair<Status, std::vector<cache::Slice>>> p;
  reader.Read(off, n, [&p](Status st, std::vector<cache::Slice> parts) { p.set_value({std::move(st), std::move(parts)}); });
  auto [st, parts] = p.get_future().get();
  size_t at = 0;
  if (st.ok()) st = cache::CopySlices(parts, buf, n, &at);
  if (st.ok() && at != n) st = Status::IOError("short read from the cache");
  return st;
}

}  // namespace strata::gateway
