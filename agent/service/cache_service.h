// What a user (agentctl, the control API) or a policy (strata.load, evict,
// pin, ttl, list, stat) does to the cache by path: load jobs that walk a
// tree and fetch its blocks, evictions, pins that must fit, TTLs that expire.
// The control API is a route table over this; the policies' Host is this.
//
// Paths are mount-relative ("a/b"); policy calls may also give them absolute
// under the mount point. Load jobs run on their own threads (a long load
// does not hold up anything else) and are kept, finished, until 100 newer
// ones exist.
//
// Thread safety: every method may be called from any thread; the policy
// calls (policy::Host) come from the agent's loop and never block it.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/base/status.h"
#include "agent/base/thread_pool.h"
#include "agent/cache/engine.h"
#include "agent/cache/eviction.h"
#include "agent/policy/runtime.h"

namespace strata {
class Clock;
namespace cache {
class Metadata;
class PinTable;
class Writer;
}  // namespace cache
namespace peer {
class PeerSource;
}
namespace gossip {
class Cluster;
}
}  // namespace strata

namespace strata::service {

struct ServiceContext {
  std::string mount_point;
  uint64_t block_size = 0;
  cache::Metadata* meta = nullptr;
  cache::Engine* engine = nullptr;
  cache::Writer* writer = nullptr;
  cache::PinTable* pins = nullptr;
  const Clock* clock = nullptr;  // the cache's clock (TTLs, idle times)
  peer::PeerSource* peers = nullptr;  // null: not in a cluster
  gossip::Cluster* cluster = nullptr;
};

// A load job: its progress is read while it runs.
struct LoadJob {
  uint64_t id = 0;
  std::string path;
  bool recursive = false;
  std::optional<cache::Tier> tier;
  std::string origin;  // who asked: "agentctl", "policy", "pin"
  bool cluster = false;  // every member loads the blocks it owns
  std::atomic<bool> walking{true};
  std::atomic<bool> finished{false};
  std::atomic<uint64_t> files_total{0}, files_done{0}, bytes_total{0}, bytes_done{0};
  std::atomic<uint64_t> files_failed{0};
  int64_t started_ms = 0;
  std::atomic<int64_t> finished_ms{0};

  void AddError(const std::string& e);
  std::vector<std::string> Errors();

 private:
  std::mutex mu_;
  std::vector<std::string> errors_;  // guarded by mu_ (the first 20)
};

class CacheService final : public policy::Host {
 public:
  explicit CacheService(ServiceContext ctx);
  ~CacheService() override;
  // Asks running jobs to stop and waits for them.
  void Shutdown();

  // Mount-relative path for what a user typed (absolute under the mount
  // point, or relative to the mount root); an error when outside.
  static Result<std::string> ResolveUserPath(const std::string& mount_point, const std::string& raw);

  // Starts loading `path` (a directory needs `recursive`); returns the job id.
  // With `cluster`, each member loads the blocks it owns (this agent asks
  // the others and loads its own share); the job's progress counts them all.
  uint64_t StartLoad(const std::string& path, bool recursive, std::optional<cache::Tier> tier,
                     const std::string& origin, bool cluster = false);
  std::shared_ptr<LoadJob> Job(uint64_t id);
  std::vector<std::shared_ptr<LoadJob>> RunningJobs();
  // Drops what is cached of `path` (pinned blocks stay).
  Result<cache::EvictResult> EvictPath(const std::string& path, bool recursive);
  // Checks that `path` fits next to what is pinned, pins it and starts
  // loading it; *bytes gets its size. Lists the store: may block.
  Result<uint64_t> PinAndLoad(const std::string& path, bool recursive, uint64_t* bytes);
  Status UnpinPath(const std::string& path);
  Status SetTtl(const std::string& path, bool recursive, int64_t ttl_ms);
  cache::PinTable* pins() const { return ctx_.pins; }

  // policy::Host
  Result<uint64_t> Load(const std::string& path, bool recursive, std::optional<cache::Tier> tier,
                        bool cluster) override;
  Result<cache::EvictResult> Evict(const std::string& path, bool recursive, int64_t idle_ms) override;
  Status Pin(const std::string& path, bool recursive) override;
  Status Unpin(const std::string& path) override;
  Status Ttl(const std::string& path, bool recursive, int64_t ttl_ms) override;
  Result<std::vector<Entry>> List(const std::string& path) override;
  std::vector<std::pair<std::string, double>> Stat() override;
  void Tick(int64_t now_ms) override;
  std::vector<Member> Members() override;

 private:
  // A path as policies give it: mount-relative, or absolute under the mount point.
  Result<std::string> PolicyPath(const std::string& raw);
  void RunLoad(const std::shared_ptr<LoadJob>& job);

  const ServiceContext ctx_;
  std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<LoadJob>> jobs_;  // guarded by mu_
  uint64_t next_job_ = 1;                               // guarded by mu_
  std::vector<std::pair<std::shared_ptr<LoadJob>, std::thread>> job_threads_;  // guarded by mu_
  std::atomic<bool> cancel_{false};
  std::unique_ptr<ThreadPool> workers_;  // policy pins (they list the store)
};

}  // namespace strata::service
