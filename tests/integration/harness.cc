#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "agent/base/hash.h"

namespace strata::it {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {
// STRATA_AGENT / STRATA_AGENTCTL pick other builds (e.g. build-asan/).
const char* Bin(const char* env, const char* fallback) {
  const char* v = std::getenv(env);
  return v && *v ? v : fallback;
}
const char* const kAgent = Bin("STRATA_AGENT", "build/strata-agent");
const char* const kCtl = Bin("STRATA_AGENTCTL", "build/agentctl");
const char* const kShaper = Bin("STRATA_SHAPER", "build/shaper");
const char* const kChaosProxy = Bin("STRATA_CHAOS_PROXY", "build/chaos_proxy");


bool PortOpen(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

// Waits for a child; SIGKILLs it after `timeout`. Returns the exit status.
int WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    std::this_thread::sleep_for(20ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log,
            const std::map<std::string, std::string>& env) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setpgid(0, 0);
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}
}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/strata-it-XXXXXX";
  path = ::mkdtemp(tmpl);
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

CmdResult Run(const std::string& cmd) {
  CmdResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[8192];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) r.out.append(buf, n);
  int st = ::pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out.push_back(c);
  }
  return out + "'";
}

void WriteRandomFile(const std::string& path, uint64_t size, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  std::vector<uint64_t> buf(1 << 16);
  while (size > 0) {
    for (auto& x : buf) x = rng();
    size_t n = std::min<uint64_t>(size, buf.size() * 8);
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(n));
    size -= n;
  }
}

void WriteAll(int fd, const std::string& data) {
  for (size_t off = 0; off < data.size(); off += 1u << 20) {
    size_t n = std::min<size_t>(1u << 20, data.size() - off);
    REQUIRE(::write(fd, data.data() + off, n) == static_cast<ssize_t>(n));
  }
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Sha256File(const std::string& path) {
  CmdResult r = Run("sha256sum " + ShellQuote(path));
  return r.code == 0 ? r.out.substr(0, 64) : "error: " + r.out;
}

uint64_t DirBytes(const std::string& path) {
  uint64_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    uint64_t sz = it->file_size(ec);
    if (!ec && it->is_regular_file(ec)) n += sz;
  }
  return n;
}

bool IsMounted(const std::string& path) {
  std::ifstream m("/proc/self/mountinfo");
  std::string line;
  while (std::getline(m, line)) {
    std::istringstream in(line);
    std::string f[5];
    for (auto& x : f) in >> x;
    if (f[4] == path) return true;
  }
  return false;
}

std::string RawUnixRequest(const std::string& socket, const std::string& bytes, int timeout_s) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (!bytes.empty() && ::write(fd, bytes.data(), bytes.size()) < 0) {
    ::close(fd);
    return "write failed";
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string RandomBytes(uint64_t size, uint32_t seed) {
  TempDir d;
  WriteRandomFile(d.path + "/f", size, seed);
  return ReadFile(d.path + "/f");
}

bool ReadWhole(const std::string& path, std::string* out, int* err) {
  auto fail = [&](int fd) {
    if (err) *err = errno;
    if (fd >= 0) ::close(fd);
    return false;
  };
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return fail(fd);
  out->clear();
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) return fail(fd);
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return true;
}

bool WriteWhole(const std::string& path, const std::string& data, int* err) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    if (err) *err = errno;
    return false;
  }
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::write(fd, data.data() + off, std::min<size_t>(1 << 20, data.size() - off));
    if (n <= 0) {
      if (err) *err = n < 0 ? errno : EIO;
      ::close(fd);
      return false;
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    if (err) *err = errno;
    return false;
  }
  return true;
}

void DropPageCache() {
  ::sync();
  std::ofstream("/proc/sys/vm/drop_caches") << "3";
}

// --- s3rver

S3Server::S3Server() = default;
S3Server::~S3Server() { Kill(); }

void S3Server::Start() {
  if (port_ == 0) port_ = FreePort();
  std::string bin = "tests/s3/node_modules/.bin/s3rver";
  REQUIRE(fs::exists(bin));
  pid_ = Spawn({bin, "-d", dir_.path + "/data", "-a", "127.0.0.1", "-p", std::to_string(port_), "-s"},
               dir_.path + "/s3rver.log", {{"NODE_OPTIONS", "--openssl-legacy-provider"}});
  for (int i = 0; i < 300 && !PortOpen(port_); i++) std::this_thread::sleep_for(50ms);
  INFO(ReadFile(dir_.path + "/s3rver.log"));
  REQUIRE(PortOpen(port_));
}

void S3Server::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

std::string S3Server::UrlKey(const std::string& key) { return UriEncode(key, true); }

void S3Server::CreateBucket(const std::string& bucket) {
  CmdResult r = Run("curl -sS -f -X PUT " + endpoint() + "/" + bucket);
  INFO(r.out);
  REQUIRE(r.code == 0);
}

void S3Server::Put(const std::string& bucket, const std::string& key, const std::string& file) {
  // curl -T to a URL ending in '/' appends the file's name: markers go as data.
  std::string body = key.ends_with('/') ? "--data-binary @" + ShellQuote(file) + " -H 'Content-Type: application/octet-stream'"
                                        : "-T " + ShellQuote(file);
  CmdResult r = Run("curl -sS -f -X PUT " + body + " " + ShellQuote(endpoint() + "/" + bucket + "/" + UrlKey(key)));
  INFO(r.out);
  REQUIRE(r.code == 0);
}

void S3Server::PutMany(const std::string& bucket,
                       const std::vector<std::pair<std::string, std::string>>& key_file) {
  TempDir d;
  std::ofstream cfg(d.path + "/curl.cfg");
  for (auto& [key, file] : key_file) {
    // As in Put: a marker's bytes go as data, else curl appends the file's name.
    if (key.ends_with('/'))
      cfg << "request = \"PUT\"\ndata-binary = \"@" << file << "\"\nheader = \"Content-Type: application/octet-stream\"\n";
    else
      cfg << "upload-file = \"" << file << "\"\n";
    cfg << "url = \"" << endpoint() << "/" << bucket << "/" << UrlKey(key) << "\"\noutput = \"/dev/null\"\n";
    if (&key != &key_file.back().first) cfg << "next\n";
  }
  cfg.close();
  CmdResult r = Run("curl -sS -f --no-progress-meter --parallel --parallel-max 32 -K " + d.path + "/curl.cfg");
  INFO(r.out.substr(0, 2000));
  REQUIRE(r.code == 0);
}

Shaper::Shaper(const std::string& upstream_endpoint, double mb_per_s, int first_byte_ms, int put_first_byte_ms) {
  port_ = FreePort();
  std::string up = upstream_endpoint.substr(upstream_endpoint.rfind(':') + 1);
  std::vector<std::string> argv = {kShaper, std::to_string(port_), up, std::to_string(mb_per_s),
                                   std::to_string(first_byte_ms)};
  if (put_first_byte_ms >= 0) argv.push_back(std::to_string(put_first_byte_ms));
  pid_ = Spawn(argv, dir_.path + "/shaper.log", {});
  for (int i = 0; i < 100 && !PortOpen(port_); i++) std::this_thread::sleep_for(50ms);
  INFO(ReadFile(dir_.path + "/shaper.log"));
  REQUIRE(PortOpen(port_));
}

Shaper::~Shaper() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

ChaosProxy::ChaosProxy(const std::string& upstream_endpoint) {
  port_ = FreePort();
  std::string up = upstream_endpoint.substr(upstream_endpoint.rfind(':') + 1);
  pid_ = Spawn({kChaosProxy, std::to_string(port_), up}, dir_.path + "/proxy.log", {});
  for (int i = 0; i < 100 && !PortOpen(port_); i++) std::this_thread::sleep_for(50ms);
  INFO(ReadFile(dir_.path + "/proxy.log"));
  REQUIRE(PortOpen(port_));
}

ChaosProxy::~ChaosProxy() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

void ChaosProxy::Set(const std::string& query) const {
  CmdResult r = Run("curl -sS -f -m 5 " + ShellQuote(endpoint() + "/__chaos/set?" + query));
  INFO(query << ": " << r.out);
  REQUIRE(r.code == 0);
}

nlohmann::json ChaosProxy::Stats() const {
  CmdResult r = Run("curl -sS -f -m 5 " + ShellQuote(endpoint() + "/__chaos/stats"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  return nlohmann::json::parse(r.out);
}

bool UsingRgw() {
  const char* e = std::getenv("STRATA_TEST_RGW");
  return e != nullptr && *e != '\0';
}

std::string S3Endpoint() { return UsingRgw() ? std::getenv("STRATA_TEST_RGW") : SharedS3().endpoint(); }

S3Server& SharedS3() {
  // Destroyed (killed) at exit like any static.
  static std::unique_ptr<S3Server> server = [] {
    auto s = std::make_unique<S3Server>();
    s->Start();
    return s;
  }();
  return *server;
}

// --- Azurite

Azurite::Azurite() {
  port_ = FreePort();
  std::string bin = "tests/azure/node_modules/.bin/azurite-blob";
  REQUIRE(fs::exists(bin));
  // --inMemoryPersistence refuses --location. --skipApiVersionCheck is for
  // the SDK (azop.js), whose x-ms-version is newer than this Azurite's;
  // Strata sends 2021-12-02.
  pid_ = Spawn({bin, "--blobHost", "127.0.0.1", "--blobPort", std::to_string(port_), "--inMemoryPersistence", "--silent",
                "--skipApiVersionCheck"},
               dir_.path + "/azurite.log", {});
  for (int i = 0; i < 300 && !PortOpen(port_); i++) std::this_thread::sleep_for(50ms);
  INFO(ReadFile(dir_.path + "/azurite.log"));
  REQUIRE(PortOpen(port_));
  ::setenv("AZURE_STORAGE_ACCOUNT", "devstoreaccount1", 1);
  ::setenv("AZURE_STORAGE_KEY", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==", 1);
}

Azurite::~Azurite() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

CmdResult Azurite::Op(const std::string& op, const std::vector<std::string>& args, bool may_fail) const {
  std::string cmd = "node tests/azure/azop.js " + ShellQuote(endpoint()) + " " + op;
  for (const std::string& a : args) cmd += " " + ShellQuote(a);
  CmdResult r = Run(cmd);
  if (!may_fail) {
    INFO(cmd << ": " << r.out);
    REQUIRE(r.code == 0);
  }
  return r;
}

Azurite& SharedAzurite() {
  static std::unique_ptr<Azurite> server = std::make_unique<Azurite>();
  return *server;
}

// --- stores

namespace {
class FileStore final : public Store {
 public:
  std::string uri() const override { return "file://" + dir_.path; }
  void Put(const std::string& key, const std::string& local) override {
    fs::path dst = fs::path(dir_.path) / key;
    fs::create_directories(dst.parent_path());
    // Replace, not rewrite in place: like an upload, the old version's
    // inode stays intact for readers still holding it.
    fs::copy_file(local, dst.string() + ".new", fs::copy_options::overwrite_existing);
    fs::rename(dst.string() + ".new", dst);
  }
  void Remove(const std::string& key) override { fs::remove(fs::path(dir_.path) / key); }
  std::optional<std::string> Fetch(const std::string& key) const override {
    fs::path p = fs::path(dir_.path) / key;
    if (!fs::is_regular_file(p)) return std::nullopt;
    return ReadFile(p);
  }

 private:
  TempDir dir_;
};

// A bucket of the shared s3rver (plain curl: s3rver checks no signature) or
// of the RGW (tests/s3/s3op.js: signed by the AWS SDK's signer).
class S3Store final : public Store {
 public:
  S3Store() : bucket_("b" + std::to_string(counter_++) + "-" + std::to_string(::getpid())) {
    if (UsingRgw()) Op("mb");
    else SharedS3().CreateBucket(bucket_);
  }
  std::string uri() const override { return "s3://" + bucket_; }
  void Put(const std::string& key, const std::string& local) override {
    if (UsingRgw()) Op("put", key, local);
    else SharedS3().Put(bucket_, key, local);
  }
  void PutMany(const std::vector<std::pair<std::string, std::string>>& key_file) override {
    if (!UsingRgw()) return SharedS3().PutMany(bucket_, key_file);
    TempDir d;
    std::ofstream list(d.path + "/list");
    for (auto& [key, file] : key_file) list << key << '\t' << file << '\n';
    list.close();
    Op("put-many", d.path + "/list");
  }
  void Remove(const std::string& key) override {
    if (UsingRgw()) Op("rm", key);
    else Run("curl -sS -X DELETE " + ShellQuote(Url(key)));
  }
  std::optional<std::string> Fetch(const std::string& key) const override {
    TempDir d;
    CmdResult r = UsingRgw() ? Op("get", key, d.path + "/obj", true)
                             : Run("curl -sS -f -o " + d.path + "/obj " + ShellQuote(Url(key)));
    if (r.code != 0) return std::nullopt;
    return ReadFile(d.path + "/obj");
  }
  std::vector<std::optional<std::string>> FetchMany(const std::vector<std::string>& keys) const override {
    if (!UsingRgw()) return Store::FetchMany(keys);
    TempDir d;
    std::ofstream list(d.path + "/list");
    for (size_t i = 0; i < keys.size(); i++) list << keys[i] << '\t' << d.path << "/" << i << '\n';
    list.close();
    Op("get-many", d.path + "/list");
    std::vector<std::optional<std::string>> out;
    for (size_t i = 0; i < keys.size(); i++) {
      std::string f = d.path + "/" + std::to_string(i);
      out.push_back(fs::exists(f) ? std::optional<std::string>(ReadFile(f)) : std::nullopt);
    }
    return out;
  }
  std::map<std::string, std::string> Meta(const std::string& key) const override {
    std::map<std::string, std::string> out;
    if (UsingRgw()) {
      CmdResult r = Op("head", key, "", true);
      if (r.code != 0) return out;
      nlohmann::json headers = nlohmann::json::parse(r.out);
      for (auto& [name, value] : headers.items())
        if (name.rfind("x-amz-meta-", 0) == 0) out[name.substr(11)] = value.get<std::string>();
      return out;
    }
    CmdResult r = Run("curl -sS -f -I " + ShellQuote(Url(key)));
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      std::string lower = line;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower.rfind("x-amz-meta-", 0) != 0) continue;
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      size_t v = line.find_first_not_of(' ', colon + 1);
      out[lower.substr(11, colon - 11)] = v == std::string::npos ? "" : line.substr(v);
    }
    return out;
  }
  std::vector<std::string> agent_args() const override { return {"--s3-endpoint", S3Endpoint()}; }
  bool is_s3() const override { return true; }

 private:
  std::string Url(const std::string& key) const { return S3Endpoint() + "/" + bucket_ + "/" + S3Server::UrlKey(key); }
  // Runs tests/s3/s3op.js; unless `may_fail`, a failure fails the test.
  CmdResult Op(const std::string& op, const std::string& a = "", const std::string& b = "",
               bool may_fail = false) const {
    std::string cmd = "node tests/s3/s3op.js " + ShellQuote(S3Endpoint()) + " " + op + " " + ShellQuote(bucket_);
    if (!a.empty()) cmd += " " + ShellQuote(a);
    if (!b.empty()) cmd += " " + ShellQuote(b);
    CmdResult r = Run(cmd);
    if (!may_fail) {
      INFO(cmd << ": " << r.out);
      REQUIRE(r.code == 0);
    }
    return r;
  }
  static inline int counter_ = 0;
  std::string bucket_;
};
}  // namespace

// A container of the shared Azurite, filled and read with the Azure SDK.
class AzureStore final : public Store {
 public:
  AzureStore() : container_("c" + std::to_string(counter_++) + "-" + std::to_string(::getpid())) {
    SharedAzurite().Op("mb", {container_});
  }
  std::string uri() const override { return "az://" + container_; }
  void Put(const std::string& key, const std::string& local) override { SharedAzurite().Op("put", {container_, key, local}); }
  void PutMany(const std::vector<std::pair<std::string, std::string>>& key_file) override {
    TempDir d;
    std::ofstream list(d.path + "/list");
    for (auto& [key, file] : key_file) list << key << '\t' << file << '\n';
    list.close();
    SharedAzurite().Op("put-many", {container_, d.path + "/list"});
  }
  void Remove(const std::string& key) override { SharedAzurite().Op("rm", {container_, key}); }
  std::optional<std::string> Fetch(const std::string& key) const override {
    TempDir d;
    if (SharedAzurite().Op("get", {container_, key, d.path + "/obj"}, true).code != 0) return std::nullopt;
    return ReadFile(d.path + "/obj");
  }
  std::map<std::string, std::string> Meta(const std::string& key) const override {
    CmdResult r = SharedAzurite().Op("head", {container_, key}, true);
    std::map<std::string, std::string> out;
    if (r.code != 0) return out;
    nlohmann::json j = nlohmann::json::parse(r.out);
    for (auto& [k, v] : j["metadata"].items()) out[k] = v.get<std::string>();
    return out;
  }
  std::vector<std::string> agent_args() const override { return {"--azure-endpoint", SharedAzurite().endpoint()}; }

 private:
  static inline int counter_ = 0;
  std::string container_;
};

std::vector<std::string> StoreKinds(bool with_azure) {
  if (UsingRgw()) return {"s3"};
  if (!with_azure) return {"file", "s3"};
  return {"file", "s3", "azure"};
}

std::unique_ptr<Store> MakeStore(const std::string& kind) {
  if (kind == "s3") return std::make_unique<S3Store>();
  if (kind == "azure") return std::make_unique<AzureStore>();
  return std::make_unique<FileStore>();
}

// --- agent

Agent::Agent() {
  mnt_ = dir_.path + "/mnt";
  cache_ = dir_.path + "/cache";
  sock_ = dir_.path + "/agent.sock";
  log_ = dir_.path + "/agent.log";
  fs::create_directories(mnt_);
}

Agent::~Agent() {
  if (pid_ > 0) Stop();
  if (IsMounted(mnt_)) Run("fusermount3 -u -z " + mnt_);
}

std::vector<std::string> Agent::Args(const std::string& ufs, const std::vector<std::string>& extra) const {
  std::vector<std::string> a = {kAgent,        "-f",          "--mount-point", mnt_,       "--ufs", ufs,
                                "--cache-dir", cache_,        "--cache-size",  "256MiB",   "--socket",
                                sock_,         "--s3-timeout", "10",
                                // No policies unless a test gives some (not /etc/strata/policies).
                                "--policy-dir", dir_.path + "/no-policies"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

void Agent::Start(const std::string& ufs, std::vector<std::string> extra) { StartWrapped({}, ufs, std::move(extra)); }

void Agent::StartWrapped(const std::vector<std::string>& wrapper, const std::string& ufs,
                         std::vector<std::string> extra) {
  if (IsMounted(mnt_)) Run("fusermount3 -u -z " + mnt_);
  std::vector<std::string> argv = wrapper;
  for (std::string& a : Args(ufs, extra)) argv.push_back(std::move(a));
  pid_ = Spawn(argv, log_, {{"AWS_ACCESS_KEY_ID", "S3RVER"}, {"AWS_SECRET_ACCESS_KEY", "S3RVER"}});
  for (int i = 0; i < 400; i++) {
    // A wrapped agent may mount in a mount namespace of its own: its socket says it is up.
    if ((!wrapper.empty() || IsMounted(mnt_)) && fs::exists(sock_)) return;
    int st;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      FAIL("strata-agent exited at start:\n" << log());
    }
    std::this_thread::sleep_for(50ms);
  }
  FAIL("strata-agent did not mount within 20 s:\n" << log());
}

CmdResult Agent::StartExpectFailure(const std::string& ufs, std::vector<std::string> extra) {
  std::string cmd = "AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-S3RVER} AWS_SECRET_ACCESS_KEY=S3RVER timeout 60";
  for (const std::string& a : Args(ufs, extra)) cmd += " " + ShellQuote(a);
  return Run(cmd);
}

void Agent::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int st = WaitFor(pid_, 15000ms);
  pid_ = -1;
  INFO(log());
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK_FALSE(IsMounted(mnt_));
}

void Agent::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

CmdResult Agent::Ctl(const std::string& args) const {
  return Run(std::string(kCtl) + " --socket " + sock_ + " " + args);
}

nlohmann::json Agent::CtlJson(const std::string& args) const {
  CmdResult r = Ctl(args);
  INFO("agentctl " << args << ": " << r.out);
  REQUIRE(r.code == 0);
  return nlohmann::json::parse(r.out);
}

uint64_t Agent::Gets() const { return Stat()["mounts"][0]["get_requests"].get<uint64_t>(); }

std::string Agent::log() const { return ReadFile(log_); }

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace strata::it
