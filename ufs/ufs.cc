#include "ufs/ufs.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <cstring>
#include <cerrno>

#include "ufs/azure/azure_ufs.h"
#include "ufs/local.h"
#include "ufs/s3/s3_ufs.h"

namespace strata::ufs {
namespace {
std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
std::string StripSlashes(std::string s) {
  while (!s.empty() && s.front() == '/') s.erase(0, 1);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}
}  // namespace

bool IsPosixMetaKey(std::string_view key) {
  // s3fs-fuse also writes atime and ctime; they are its, not the user's.
  return key == "mode" || key == "uid" || key == "gid" || key == "mtime" || key == "atime" || key == "ctime";
}

bool UsableName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.size() <= 255 && name.find('\0') == std::string::npos;
}

std::string KeyOf(const std::string& prefix, const std::string& path) {
  if (prefix.empty()) return path;
  return path.empty() ? prefix : prefix + "/" + path;
}

std::vector<std::pair<std::string, std::string>> MetaPairs(const Attrs& a) {
  std::vector<std::pair<std::string, std::string>> out;
  if (a.mode) out.emplace_back("mode", std::to_string(a.mode));
  if (a.uid != kNoId) out.emplace_back("uid", std::to_string(a.uid));
  if (a.gid != kNoId) out.emplace_back("gid", std::to_string(a.gid));
  if (a.mtime_ns) {
    int64_t sec = a.mtime_ns / 1000000000, ns = a.mtime_ns % 1000000000;
    char buf[40];
    if (ns) std::snprintf(buf, sizeof(buf), "%lld.%09lld", static_cast<long long>(sec), static_cast<long long>(ns));
    else std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(sec));
    out.emplace_back("mtime", buf);
  }
  for (const auto& kv : a.user.pairs) out.push_back(kv);
  return out;
}

void ApplyMetaPairs(const std::vector<std::pair<std::string, std::string>>& meta, Entry* e) {
  for (const auto& [key, v] : meta) {
    std::string k = key;
    for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    char* end = nullptr;
    if (k == "mode") {
      unsigned long m = std::strtoul(v.c_str(), &end, 10);
      if (end != v.c_str() && m <= 0xFFFFFF) e->attrs.mode = static_cast<uint32_t>(m);
    } else if (k == "uid" || k == "gid") {
      unsigned long id = std::strtoul(v.c_str(), &end, 10);
      if (end != v.c_str() && id < kNoId) (k == "uid" ? e->attrs.uid : e->attrs.gid) = static_cast<uint32_t>(id);
    } else if (k == "mtime") {
      long long sec = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || sec <= 0 || sec > 9000000000LL) continue;
      int64_t ns = 0, scale = 100000000;
      if (*end == '.')
        for (const char* p = end + 1; *p >= '0' && *p <= '9' && scale > 0; p++, scale /= 10) ns += (*p - '0') * scale;
      e->attrs.mtime_ns = sec * 1000000000LL + ns;
    } else if (!IsPosixMetaKey(k)) {
      e->attrs.user.pairs.emplace_back(k, v);
    }
  }
  std::sort(e->attrs.user.pairs.begin(), e->attrs.user.pairs.end());
  if (e->attrs.mode) e->is_dir = S_ISDIR(e->attrs.mode);
  if (e->attrs.mtime_ns) e->mtime_ns = e->attrs.mtime_ns;
}

Result<std::map<std::string, std::string>> ReadCredentialsFile(const std::string& path) {
  std::map<std::string, std::string> vars;
  std::ifstream f(path);
  if (!f) {
    if (errno == ENOENT) return vars;
    return Status::PermissionDenied("credentials file " + path + ": " + std::strerror(errno));
  }
  int n = 0;
  // Whole lines, however long (a session token runs to kilobytes).
  for (std::string s; std::getline(f, s);) {
    n++;
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    size_t b = s.find_first_not_of(" \t");
    if (b == std::string::npos || s[b] == '#' || s[b] == ';') continue;
    s.erase(0, b);
    if (s.rfind("export ", 0) == 0) s.erase(0, 7);
    size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::InvalidArgument("credentials file " + path + ":" + std::to_string(n) + ": expected KEY=VALUE");
    std::string value = s.substr(eq + 1);
    if (value.size() >= 2 && (value[0] == '"' || value[0] == '\'') && value.back() == value[0])
      value = value.substr(1, value.size() - 2);
    vars[s.substr(0, eq)] = value;
  }
  return vars;
}

S3Options S3OptionsFromEnv() {
  S3Options o;
  o.endpoint = Env("AWS_ENDPOINT_URL_S3");
  if (o.endpoint.empty()) o.endpoint = Env("AWS_ENDPOINT_URL");
  std::string region = Env("AWS_REGION");
  if (region.empty()) region = Env("AWS_DEFAULT_REGION");
  if (!region.empty()) o.region = region;
  o.access_key = Env("AWS_ACCESS_KEY_ID");
  o.secret_key = Env("AWS_SECRET_ACCESS_KEY");
  o.session_token = Env("AWS_SESSION_TOKEN");
  o.ca_bundle = Env("AWS_CA_BUNDLE");
  // AWS itself wants virtual-hosted style; custom endpoints mostly path style.
  o.path_style = !o.endpoint.empty();
  return o;
}

Result<std::unique_ptr<Ufs>> Open(const std::string& uri, const S3Options& s3, const AzureOptions& azure) {
  if (uri.rfind("file://", 0) == 0) {
    std::string path = uri.substr(7);
    if (path.empty() || path[0] != '/')
      return Status::InvalidArgument("bad store URI '" + uri + "': use file:///absolute/dir");
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return NewLocalUfs(uri, path);
  }
  if (uri.rfind("s3://", 0) == 0) {
    std::string rest = uri.substr(5);
    size_t slash = rest.find('/');
    std::string bucket = rest.substr(0, slash);
    std::string prefix = slash == std::string::npos ? "" : StripSlashes(rest.substr(slash));
    if (bucket.empty() || bucket.size() > 63 || bucket.find_first_of(" ?#\\") != std::string::npos)
      return Status::InvalidArgument("bad store URI '" + uri + "': use s3://bucket[/prefix]");
    return NewS3Ufs(uri, bucket, prefix, s3);
  }
  if (uri.rfind("az://", 0) == 0) {
    std::string rest = uri.substr(5);
    size_t slash = rest.find('/');
    std::string container = rest.substr(0, slash);
    std::string prefix = slash == std::string::npos ? "" : StripSlashes(rest.substr(slash));
    // Azure's container names: 3-63 of lowercase letters, digits and '-'.
    bool valid = container.size() >= 3 && container.size() <= 63 &&
                 container.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos;
    if (!valid)
      return Status::InvalidArgument("bad store URI '" + uri +
                                     "': use az://container[/prefix] (3-63 lowercase letters, digits, '-')");
    return NewAzureUfs(uri, container, prefix, azure);
  }
  return Status::InvalidArgument("bad store URI '" + uri +
                                 "': expected file:///abs/dir, s3://bucket[/prefix] or az://container[/prefix]");
}

}  // namespace strata::ufs
