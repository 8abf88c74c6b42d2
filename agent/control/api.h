// The control API behind the socket (what agentctl and curl talk to):
//
//   GET  /v1/info                          mount point, stores, block size
//   GET  /v1/stat[?path=P]                 cache-wide or per-path statistics
//   POST /v1/load?path=P[&recursive=1]     starts a load job -> {"job": id}
//   GET  /v1/jobs/ID                       a job's progress and result
//   POST /v1/evict?path=P[&recursive=1]    drops cached blocks, waits
//   POST /v1/flush[?path=P&timeout=S]      waits until staged writes below P are uploaded
//   POST /v1/pin?path=P[&recursive=1]      pins P (refused when it cannot fit), loads it
//   POST /v1/unpin?path=P                  removes the pin
//   POST /v1/ttl?path=P&ttl=D[&recursive=1] P's blocks are evicted D from now ("off" removes)
//   POST /v1/policy/reload                 reloads the policy directory (all or nothing)
//   GET  /v1/policy/status                 loaded policies, hooks, schedules, errors
//   POST /v1/clock?advance=D               moves the test clock (only with --test-clock)
//   GET  /metrics                          Prometheus text format
//
// P is a path inside the mount: absolute under the mount point, or relative
// to the mount root. Errors are JSON {"error": "..."} with a 4xx/5xx code.
//
// Thread safety: Handle runs on the loop thread and never blocks it: work
// that may wait (store requests, loads) runs on the API's worker pool.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/base/thread_pool.h"
#include "agent/cache/engine.h"
#include "agent/cache/metadata.h"
#include "agent/cache/mounts.h"
#include "agent/cache/writer.h"
#include "agent/control/server.h"
#include "agent/cache/pins.h"
#include "agent/index/index.h"
#include "agent/policy/runtime.h"

namespace strata::control {

struct ApiContext {
  std::string mount_point;
  uint64_t block_size = 0;
  cache::MountTable* mounts = nullptr;
  cache::Metadata* meta = nullptr;
  cache::Engine* engine = nullptr;
  index::Index* index = nullptr;
  cache::Writer* writer = nullptr;
  cache::PinTable* pins = nullptr;
  const Clock* clock = nullptr;           // the cache's clock
  ManualClock* test_clock = nullptr;      // set with --test-clock
};

// Also the policies' Host: strata.load / evict / pin ... land here.
class Api final : public policy::Host {
 public:
  explicit Api(ApiContext ctx);
  ~Api() override;
  // Set once, before the loop serves requests.
  void SetRuntime(policy::Runtime* runtime) { runtime_ = runtime; }
  void Handle(const HttpRequest& req, Server::Reply reply);
  // Asks running jobs to stop and waits for the workers.
  void Shutdown();

  // Mount-relative path for what a user typed; error text when outside.
  static Result<std::string> ResolveUserPath(const std::string& mount_point, const std::string& raw);

  struct Job;

  // policy::Host
  Result<uint64_t> Load(const std::string& path, bool recursive, std::optional<cache::Tier> tier) override;
  Result<cache::EvictResult> Evict(const std::string& path, bool recursive, int64_t idle_ms) override;
  Status Pin(const std::string& path, bool recursive) override;
  Status Unpin(const std::string& path) override;
  Status Ttl(const std::string& path, bool recursive, int64_t ttl_ms) override;
  Result<std::vector<Entry>> List(const std::string& path) override;
  std::vector<std::pair<std::string, double>> Stat() override;
  void Tick(int64_t now_ms) override;

 private:
  // Starts a load job; `origin` says who asked ("agentctl", "policy").
  uint64_t StartLoad(const std::string& path, bool recursive, std::optional<cache::Tier> tier, const std::string& origin);
  // Checks that P fits next to what is pinned, pins it and loads it.
  Result<uint64_t> PinAndLoad(const std::string& path, bool recursive, uint64_t* bytes);
  // A path as policies give it: mount-relative, or absolute under the mount point.
  Result<std::string> PolicyPath(const std::string& raw);
  void RunLoad(std::shared_ptr<Job> job);
  std::string StatJson();
  std::string MetricsText();

  ApiContext ctx_;
  policy::Runtime* runtime_ = nullptr;
  std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;  // guarded by mu_
  uint64_t next_job_ = 1;                          // guarded by mu_
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> job_threads_;  // guarded by mu_
  std::atomic<bool> cancel_{false};
  std::unique_ptr<ThreadPool> workers_;
};

}  // namespace strata::control
