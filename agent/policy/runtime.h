// The policy runtime: every *.lua of the policy directory, loaded in name
// order into one sandboxed Lua state (see sandbox.h) on the agent's loop
// thread, and what they register there:
//
//   strata.schedule(spec, fn [, {tz=...}])   cron / interval jobs (cron.h)
//   strata.on_admit(fn(file) -> tier|false)   where a new file's blocks go
//   strata.on_evict(fn(candidates) -> scores|ordering)  eviction order, in batches
//   strata.on_access(fn(file))                a file was opened (prefetch)
//
// and the actions they call: strata.load / evict / pin / unpin / ttl / list
// / stat / now / log (the Host does the work). The full API is in
// man/strata-policy.7.
//
// Reload is all or nothing: the files are loaded into a fresh state; if any
// fails, the state in force stays (like a failed `nginx -s reload`) and the
// error is kept for `policy status`. Actions a file calls while it loads run
// only once the whole reload succeeded.
//
// Hooks run on the loop thread, never on a reader's: admission is asked when
// a fetch starts and its answer used when the bytes have arrived; the scorer
// is asked by a thread that needs room and waits at most a deadline. A hook
// that errors, or runs over its instruction or memory budget, is reported
// with file:line in the log and in `policy status` and switched off until
// the next reload: the built-in default (everything to the SSD tier, LRU)
// takes its place.
//
// Thread safety: Reload, Start, Stop, Tick, StatusJson run on the loop
// thread; Prepare, Decide, Rank, Active, OnAccess may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/status.h"
#include "agent/cache/engine.h"
#include "agent/loop/loop.h"
#include "agent/policy/sandbox.h"

namespace strata::policy {

// What the strata.* actions do; the agent implements it. Called on the loop
// thread: implementations must not wait on the network (a load is a job).
// Paths are as a user gives them ("/data/x", or absolute under the mount).
class Host {
 public:
  virtual ~Host() = default;
  // `cluster`: every member of the cluster loads the blocks it owns.
  virtual Result<uint64_t> Load(const std::string& path, bool recursive, std::optional<cache::Tier> tier,
                                bool cluster) = 0;
  virtual Result<cache::EvictResult> Evict(const std::string& path, bool recursive, int64_t idle_ms) = 0;
  virtual Status Pin(const std::string& path, bool recursive) = 0;
  virtual Status Unpin(const std::string& path) = 0;
  // ttl_ms 0 removes the path's TTL.
  virtual Status Ttl(const std::string& path, bool recursive, int64_t ttl_ms) = 0;
  struct Entry {
    std::string name, path, etag;
    bool is_dir = false;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    double cached_percent = 0;
  };
  virtual Result<std::vector<Entry>> List(const std::string& path) = 0;
  virtual std::vector<std::pair<std::string, double>> Stat() = 0;
  // Once a second (and after the test clock moves): expire TTLs.
  virtual void Tick(int64_t now_ms) = 0;
  struct Member {
    std::string name, address, state;
    uint64_t capacity = 0, used = 0;
    bool self = false;
  };
  // The cluster's members (empty when the agent is not in one).
  virtual std::vector<Member> Members() = 0;
};

struct RuntimeOptions {
  std::string dir;                // the policy directory
  SandboxLimits limits;
  const Clock* clock = nullptr;   // default the system clock
  int admit_wait_ms = 200;        // longest a fetch waits for on_admit
  int evict_wait_ms = 1000;       // longest an eviction waits for on_evict
  size_t evict_batch = 1024;      // candidates per on_evict call
};

class Runtime final : public cache::Admission, public cache::Scorer {
 public:
  // `loop` and `host` may be null for Check().
  Runtime(RuntimeOptions opts, loop::Loop* loop, Host* host);
  ~Runtime() override;
  // Before the first Reload (the host may be built after the runtime).
  void SetHost(Host* host) { host_ = host; }

  // Loads the directory's policies (see above). A missing directory means no
  // policies: the built-in default.
  Status Reload();
  // Loads one file into a scratch state and describes what it registers and
  // the actions it would call; nothing is applied. Any thread.
  Result<std::string> Check(const std::string& file);
  // Starts / stops the once-a-second scheduler tick (loop thread). After
  // Stop the hooks are not asked any more: the loop is going away, and a
  // fetch or an eviction must not wait for an answer that cannot come.
  void Start();
  void Stop();
  // Runs what is due now (scheduled jobs, TTLs). Loop thread.
  void Tick();
  // {"dir", "last_reload", "policies", "hooks", "schedules", ...}
  std::string StatusJson();

  // cache::Admission
  void Prepare(const cache::FileRef& f, const char* source = "store") override;
  std::optional<cache::Tier> Decide(const cache::FileRef& f, cache::Tier fallback, const char* source = "store") override;
  bool Deciding() const override { return has_admit_ && !stopping_; }
  // cache::Scorer
  bool Active() const override { return has_evict_ && !stopping_; }
  bool Rank(const std::vector<cache::EvictCandidate>& candidates, std::vector<size_t>* order,
            std::vector<int8_t>* demote) override;
  // A file was opened: on_access hooks, in the background.
  void OnAccess(const cache::FileRef& f);

  struct Generation;  // one loaded set of policies (runtime.cc)
  friend struct ApiAccess;

 private:
  struct Decision {
    bool ready = false;
    std::optional<cache::Tier> tier;
    bool has_answer = false;  // false: no hook answered, the fallback applies
  };
  Status LoadInto(Generation& g, const std::vector<std::string>& files);
  void InstallApi(Generation& g);
  void RunAdmit(const cache::FileRef& f, const std::string& source);
  // Decisions are per file version and answering source.
  static uint64_t DecisionKey(const cache::FileRef& f, const char* source);
  void RunAccess(const cache::FileRef& f);
  // The on_evict hook over all candidates, in batches: score per candidate.
  bool Score(const std::vector<cache::EvictCandidate>& c, std::vector<double>* scores,
             std::vector<int8_t>* demote);
  void UpdateFlags();

  const RuntimeOptions opts_;
  const Clock* const clock_;
  loop::Loop* const loop_;
  Host* host_;

  std::unique_ptr<Generation> live_;  // loop thread
  std::string last_reload_error_;     // loop thread
  int64_t last_reload_ms_ = 0;
  uint64_t reloads_ = 0, failed_reloads_ = 0;
  uv_timer_t* timer_ = nullptr;

  std::atomic<bool> has_admit_{false}, has_evict_{false}, has_access_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<uint64_t, Decision> decisions_;  // guarded by mu_
  uint64_t generation_ = 0;                           // guarded by mu_
  std::atomic<uint64_t> admit_timeouts_{0}, evict_timeouts_{0};
};

}  // namespace strata::policy
