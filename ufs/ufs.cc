#include "ufs/ufs.h"

#include <cstdlib>

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

Result<std::unique_ptr<Ufs>> Open(const std::string& uri, const S3Options& s3) {
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
  return Status::InvalidArgument("bad store URI '" + uri +
                                 "': expected file:///abs/dir or s3://bucket[/prefix]");
}

}  // namespace strata::ufs
