// The gateway: the agent's namespace over an S3-compatible API and a plain
// REST file API, for clients that cannot mount. A front end like fuse/: it
// reads through cache::Reader (the cache, readahead, peers) and writes
// through cache::Writer (staging and the mount's write mode), so what a PUT
// stores is visible through the mount on this host at once and reaches the
// store as the write mode says.
//
// Buckets are the top-level directories of the namespace: s3://data/x is
// /data/x in the mount. Path-style requests always work; virtual-hosted ones
// ("data.gw.example:9000") when --gateway-domain names the domain.
//
// A PUT is staged under a hidden name in the key's directory
// (".strata-put.*") and renamed over the key only once its body is complete
// and its checksums match, so no reader ever sees a partial object and a
// failed PUT leaves the old one as it was.
//
// REST: /api/v1/files/PATH (GET, HEAD, PUT, DELETE; GET ?list lists a
// directory as JSON), "Authorization: Bearer TOKEN".
//
// Thread safety: Start/Stop/Reload from one thread; requests are served on
// the HTTP server's connection threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "agent/base/histogram.h"
#include "agent/base/status.h"
#include "agent/cache/engine.h"
#include "agent/cache/metadata.h"
#include "agent/cache/reader.h"
#include "agent/cache/mounts.h"
#include "agent/cache/writer.h"
#include "agent/gateway/auth.h"
#include "agent/gateway/http.h"

namespace strata::gateway {

struct GatewayOptions {
  std::string addr;         // "0.0.0.0:9000"; empty: no gateway
  std::string credentials;  // the JSON credentials file
  std::string tls_cert, tls_key;
  std::string region = "us-east-1";
  std::string domain;  // virtual-hosted-style requests: BUCKET.domain
  uint64_t read_ahead_blocks = 16;
  std::string uploads_dir;  // multipart parts, on the cache disk
};

// Per operation (S3 names: GetObject, PutObject ...; REST: RestGet ...).
struct OpStats {
  uint64_t requests = 0, errors = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  LatencyHistogram latency;
};
struct GatewayStats {
  std::vector<std::pair<std::string, OpStats>> ops;
  std::vector<std::pair<std::string, uint64_t>> errors_by_code;
};

class Gateway {
 public:
  Gateway(GatewayOptions opts, cache::Engine* engine, cache::Metadata* meta, cache::Writer* writer,
          cache::MountTable* mounts);
  ~Gateway();
  // Loads the credentials and starts listening.
  Status Start();
  void Stop();
  // Re-reads the credentials file (SIGHUP).
  Status Reload();
  GatewayStats Stats();
  uint16_t port() const { return server_ ? server_->port() : 0; }
  // Told of every path the gateway creates, replaces or removes (the mount
  // on this host drops what its kernel cached of it). Set before Start.
  void SetOnChange(std::function<void(const std::string& path)> fn) { on_change_ = std::move(fn); }

  struct Call;  // one request being served (gateway.cc)

 private:
  void Handle(Request& req, Body& body, Response& resp);
  // S3 (s3_api.cc).
  void ServeS3(Call& c);
  void ListBuckets(Call& c);
  void ListObjects(Call& c, const std::string& bucket);
  void GetObject(Call& c, const std::string& path, bool head);
  void PutObject(Call& c, const std::string& path);
  void CopyObject(Call& c, const std::string& path);
  void DeleteObject(Call& c, const std::string& path);
  void DeleteObjects(Call& c, const std::string& bucket);
  // Multipart uploads (multipart.cc).
  void Multipart(Call& c, const std::string& path);
  void ListUploads(Call& c, const std::string& bucket);
  S3Error FindUpload(Call& c, const std::string& path, std::string* dir);
  std::string UploadDir(const std::string& id) const;
  // n bytes at off through the reader (the cache), copied into buf.
  static Status ReadThrough(cache::Reader& reader, uint64_t off, size_t n, char* buf);
  // REST (gateway.cc).
  void ServeRest(Call& c);
  // Shared by both: the object at `path` streamed from the cache, with
  // conditions and a range; the body streamed into a new object at `path`.
  void SendObject(Call& c, const std::string& path, bool head);
  Status StoreObject(Call& c, const std::string& path, const ufs::UserMeta& user, std::string* etag);
  // Streams `read` into a new object at `path` with `user` metadata: staged
  // under a hidden name and renamed over the key once `read` returned 0 and
  // `check` passed. *etag as the store reports it, else `md5_hex`.
  struct ObjectSource {
    std::function<Result<size_t>(char* buf, size_t n)> read;
    std::function<Status()> check;
    std::function<std::string()> md5_hex;
  };
  Status WriteObject(const std::string& path, const ObjectSource& src, const ufs::UserMeta& user, uint64_t* bytes,
                     std::string* etag);
  Status MakeParents(const std::string& path);
  void Record(const Call& c);

  const GatewayOptions opts_;
  cache::Engine* const engine_;
  cache::Metadata* const meta_;
  cache::Writer* const writer_;
  cache::MountTable* const mounts_;
  std::unique_ptr<Auth> auth_;
  std::unique_ptr<Server> server_;
  std::atomic<uint64_t> put_seq_{0};
  std::function<void(const std::string&)> on_change_;
  void Changed(const std::string& path) {
    if (on_change_) on_change_(path);
  }

  std::mutex stats_mu_;
  std::map<std::string, OpStats> ops_;              // guarded by stats_mu_
  std::map<std::string, uint64_t> errors_by_code_;  // guarded by stats_mu_
};

}  // namespace strata::gateway
