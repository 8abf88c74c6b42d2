// Real processes for integration tests: the s3rver S3 server (npm), the
// strata-agent binary on a real FUSE mount, agentctl, and file helpers.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace strata::it {

struct TempDir {
  std::string path;
  TempDir();
  ~TempDir();
};

struct CmdResult {
  int code = -1;
  std::string out;  // stdout and stderr together
};
// Runs a shell command; output captured.
CmdResult Run(const std::string& cmd);
std::string ShellQuote(const std::string& s);

// Writes `size` pseudo-random bytes (seeded) to path.
void WriteRandomFile(const std::string& path, uint64_t size, uint32_t seed);
std::string ReadFile(const std::string& path);
// `size` pseudo-random bytes (seeded), as WriteRandomFile writes them.
std::string RandomBytes(uint64_t size, uint32_t seed);
// A whole file through open/read(2)/close: false on any error, with its
// errno in *err when given (for tests that accept a clear error).
bool ReadWhole(const std::string& path, std::string* out, int* err = nullptr);
// open(O_CREAT|O_TRUNC)/write(2)/close: true only when all of them succeeded
// (close is where a through-mode mount uploads).
bool WriteWhole(const std::string& path, const std::string& data, int* err = nullptr);
// Writes `data` to an open descriptor in 1 MiB write(2)s (REQUIREs each).
void WriteAll(int fd, const std::string& data);
std::string Sha256File(const std::string& path);
uint64_t DirBytes(const std::string& path);  // apparent size of regular files below
bool IsMounted(const std::string& path);
int FreePort();  // a TCP port free on 127.0.0.1 now
// Sends raw bytes on a Unix socket and returns whatever comes back until the
// server closes (or `timeout_s` passes).
std::string RawUnixRequest(const std::string& socket, const std::string& bytes, int timeout_s = 20);
void DropPageCache();

// An s3rver on 127.0.0.1 with its own data directory.
//
// s3rver's quirks, as found: it checks no signatures; it answers
// AbortMultipartUpload with 405; its copy source is decoded with
// JavaScript's decodeURI (the driver finds out and adapts, see
// S3Ufs::SendCopy); its delimited listings leave out a common prefix whose
// keys all lie two or more levels down (many/d2/ for only many/d2/y/z).
class S3Server {
 public:
  S3Server();
  ~S3Server();
  void Start();  // on the same port and data as before when restarted
  void Kill();  // SIGKILL: the store disappears mid-run
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void CreateBucket(const std::string& bucket);
  // PUT with curl (a client that is not Strata).
  void Put(const std::string& bucket, const std::string& key, const std::string& file);
  // Many small objects at once (curl --parallel).
  void PutMany(const std::string& bucket, const std::vector<std::pair<std::string, std::string>>& key_file);
  static std::string UrlKey(const std::string& key);

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// tests/bench/shaper.cc in front of an endpoint, as a slow store: each
// connection capped at `mb_per_s`, each response `first_byte_ms` late (the
// answers to PUTs `put_first_byte_ms` late, when >= 0).
class Shaper {
 public:
  Shaper(const std::string& upstream_endpoint, double mb_per_s, int first_byte_ms, int put_first_byte_ms = -1);
  ~Shaper();
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// tests/chaos/chaos_proxy.cc in front of an endpoint: faults on demand.
class ChaosProxy {
 public:
  explicit ChaosProxy(const std::string& upstream_endpoint);
  ~ChaosProxy();
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // "kind=stall&every=2&skip=..." (see chaos_proxy.cc); REQUIREs it taken.
  void Set(const std::string& query) const;
  // What it has injected: {"requests":N,"injected":N,"<kind>":N,...}.
  nlohmann::json Stats() const;

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The shared server most tests use (started on first use).
S3Server& SharedS3();

// Azurite's blob service on 127.0.0.1 (in memory), shared by the tests that
// use an Azure store (started on first use). Its well-known account
// (devstoreaccount1) is put in AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_KEY,
// which agents started afterwards inherit.
//
// Azurite's quirks, as found (the driver does not bend around them):
// - it refuses an x-ms-version newer than its release's: the Azure SDK of
//   the same month (12.34, 2026-10-06) is, so it runs with
//   --skipApiVersionCheck; Strata's 2021-12-02 is well inside;
// - --inMemoryPersistence refuses --location (its extents then live in memory only).
class Azurite {
 public:
  Azurite();
  ~Azurite();
  // The blob endpoint, with the account: http://127.0.0.1:PORT/devstoreaccount1.
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_) + "/devstoreaccount1"; }
  // tests/azure/azop.js against this server; unless `may_fail`, a failure fails the test.
  CmdResult Op(const std::string& op, const std::vector<std::string>& args, bool may_fail = false) const;

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};
Azurite& SharedAzurite();

// The S3 server the [s3] tests run against: s3rver (SharedS3) unless
// tests/run.sh started a Ceph RADOS Gateway and set STRATA_TEST_RGW to its
// endpoint. Tests that need a server they control (they kill it) or
// s3rver's own behaviour are tagged [s3rver] and run on s3rver only; tests
// of what only a real S3 has are tagged [rgw].
//
// Ceph RGW's quirks, as found (memstore, Debian 12's 16.2): it answers
// CompleteMultipartUpload with an empty <ETag> (the driver then HEADs the
// object), and an x-amz-meta- name's '_' comes back as '-'.
bool UsingRgw();
std::string S3Endpoint();

// A store the tests put files into: a local directory or an s3rver bucket.
class Store {
 public:
  virtual ~Store() = default;
  virtual std::string uri() const = 0;
  virtual void Put(const std::string& key, const std::string& local_file) = 0;
  // Many objects at once (in parallel where the store allows).
  virtual void PutMany(const std::vector<std::pair<std::string, std::string>>& key_file) {
    for (auto& [key, file] : key_file) Put(key, file);
  }
  virtual void Remove(const std::string& key) = 0;
  // The stored bytes, read without Strata (the directory, or curl GET);
  // nullopt when absent.
  virtual std::optional<std::string> Fetch(const std::string& key) const = 0;
  virtual std::vector<std::optional<std::string>> FetchMany(const std::vector<std::string>& keys) const {
    std::vector<std::optional<std::string>> out;
    for (const std::string& k : keys) out.push_back(Fetch(k));
    return out;
  }
  // S3 user metadata (x-amz-meta-*, prefix dropped) as another client sees it.
  virtual std::map<std::string, std::string> Meta(const std::string& /*key*/) const { return {}; }
  virtual std::vector<std::string> agent_args() const { return {}; }
  virtual bool is_s3() const { return false; }
};
std::unique_ptr<Store> MakeStore(const std::string& kind);  // "file", "s3" or "azure"
// The store kinds a test that runs on every store covers in this run:
// file, s3 and azure; on the RGW run only s3 (the others ran already).
// `with_azure` false: file and s3 only, for the long tests whose Azure side
// the store conformance suite covers already (make test's time budget).
std::vector<std::string> StoreKinds(bool with_azure = true);

class Agent {
 public:
  Agent();
  ~Agent();
  // Starts strata-agent in the foreground and waits until it is mounted and
  // its socket answers. Extra args are appended (they win over defaults).
  void Start(const std::string& ufs, std::vector<std::string> extra = {});
  // The same under a wrapper command (`unshare ... --`, the agent's argv
  // appended); it waits for the socket only, as the mount may be in a
  // mount namespace of the wrapper's.
  void StartWrapped(const std::vector<std::string>& wrapper, const std::string& ufs,
                    std::vector<std::string> extra = {});
  // Starts and expects a failure; returns exit code and output.
  CmdResult StartExpectFailure(const std::string& ufs, std::vector<std::string> extra = {});
  void Stop();  // SIGTERM, wait, check unmounted
  void Kill();  // SIGKILL, leaves a stale mount (cleared by the next Start)
  CmdResult Ctl(const std::string& args) const;
  nlohmann::json CtlJson(const std::string& args) const;
  nlohmann::json Stat() const { return CtlJson("stat --json"); }
  uint64_t Gets() const;  // GETs sent to the root store by this agent process
  std::string mnt(const std::string& rel = "") const { return rel.empty() ? mnt_ : mnt_ + "/" + rel; }
  const std::string& cache_dir() const { return cache_; }
  const std::string& socket() const { return sock_; }
  pid_t pid() const { return pid_; }
  std::string log() const;
  const std::string& log_path() const { return log_; }

 private:
  std::vector<std::string> Args(const std::string& ufs, const std::vector<std::string>& extra) const;
  TempDir dir_;
  std::string mnt_, cache_, sock_, log_;
  pid_t pid_ = -1;
};

}  // namespace strata::it
