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
// The API is a route table over service::CacheService (what is done to the
// cache), the writer (flush) and the policy runtime; it only translates
// requests and answers (JSON, HTTP codes).
//
// Thread safety: Handle runs on the loop thread and never blocks it: work
// that may wait (store requests) runs on the API's worker pool.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/base/thread_pool.h"
#include "agent/control/server.h"
#include "agent/control/status_page.h"
#include "agent/gateway/gateway.h"

namespace strata {
class Clock;
class ManualClock;
namespace cache {
class Engine;
class Metadata;
class MountTable;
class Writer;
}  // namespace cache
namespace index {
class Index;
struct FileMeta;
}
namespace policy {
class Runtime;
}
namespace gossip {
class Cluster;
}
namespace peer {
class PeerServer;
class PeerSource;
}  // namespace peer
namespace service {
class CacheService;
}
}  // namespace strata

namespace strata::control {

struct ApiContext {
  std::string mount_point;
  uint64_t block_size = 0;
  cache::MountTable* mounts = nullptr;
  cache::Metadata* meta = nullptr;
  cache::Engine* engine = nullptr;
  index::Index* index = nullptr;
  cache::Writer* writer = nullptr;
  service::CacheService* service = nullptr;  // loads, evictions, pins, TTLs
  policy::Runtime* runtime = nullptr;
  const Clock* clock = nullptr;           // the cache's clock
  ManualClock* test_clock = nullptr;      // set with --test-clock
  gossip::Cluster* cluster = nullptr;     // null: a cluster of one
  peer::PeerSource* peers = nullptr;
  peer::PeerServer* peer_server = nullptr;
  bool status_paths = false;  // the status page may show file names (log lines)
};

class Api {
 public:
  explicit Api(ApiContext ctx);
  ~Api();
  void Handle(const HttpRequest& req, Server::Reply reply);
  // The gateway, once it serves (it starts after the mount): its figures
  // join /metrics and stat.
  void SetGateway(gateway::Gateway* gw) { gateway_ = gw; }
  // /healthz and /readyz: the agent's health checks (Agent::Healthy, Ready).
  void SetHealth(std::function<bool()> healthy, std::function<bool()> ready) {
    healthy_ = std::move(healthy);
    ready_ = std::move(ready);
  }
  // Adds a point to the status page's history (every 10 s at most; the
  // agent's health thread calls it). Thread-safe.
  void Sample();
  // Waits for the requests being answered on the workers.
  void Shutdown();

 private:
  using Handler = void (Api::*)(const HttpRequest&, const Server::Reply&);
  struct Route {
    const char* method;
    const char* path;  // ending in '/': a prefix
    Handler handler;
  };
  static const Route kRoutes[];

  void Metrics(const HttpRequest& req, const Server::Reply& reply);
  void Health(const HttpRequest& req, const Server::Reply& reply);
  void StatusPage(const HttpRequest& req, const Server::Reply& reply);
  void StatusPageData(const HttpRequest& req, const Server::Reply& reply);
  void Readiness(const HttpRequest& req, const Server::Reply& reply);
  void Info(const HttpRequest& req, const Server::Reply& reply);
  void Stat(const HttpRequest& req, const Server::Reply& reply);
  void Load(const HttpRequest& req, const Server::Reply& reply);
  void JobStatus(const HttpRequest& req, const Server::Reply& reply);
  void Evict(const HttpRequest& req, const Server::Reply& reply);
  void Flush(const HttpRequest& req, const Server::Reply& reply);
  void Pin(const HttpRequest& req, const Server::Reply& reply);
  void Unpin(const HttpRequest& req, const Server::Reply& reply);
  void Ttl(const HttpRequest& req, const Server::Reply& reply);
  void PolicyReload(const HttpRequest& req, const Server::Reply& reply);
  void PolicyStatus(const HttpRequest& req, const Server::Reply& reply);
  void MoveClock(const HttpRequest& req, const Server::Reply& reply);
  void Members(const HttpRequest& req, const Server::Reply& reply);
  void Keys(const HttpRequest& req, const Server::Reply& reply);
  void KeyOp(const HttpRequest& req, const Server::Reply& reply);
  void Owner(const HttpRequest& req, const Server::Reply& reply);
  // False (answered 409) when the agent is not in a cluster.
  bool InCluster(const Server::Reply& reply);
  std::string ClusterMetrics();
  std::string GatewayMetrics();
  std::string PolicyMetrics();
  std::atomic<gateway::Gateway*> gateway_{nullptr};
  std::function<bool()> healthy_, ready_;  // set before the server listens
  StatusHistory history_;
  // What every member holds of `m`'s version (rows for the JSON answers);
  // with `held`, the block indexes by member.
  nlohmann::json ClusterCached(const index::FileMeta& m, bool list,
                               std::map<std::string, std::set<uint64_t>>* held = nullptr);
  // The request's ?path= made mount-relative; false (answered 400) when bad.
  bool PathParam(const HttpRequest& req, const Server::Reply& reply, std::string* out);
  std::string StatJson();
  std::string MetricsText();

  ApiContext ctx_;
  std::unique_ptr<ThreadPool> workers_;  // requests that may wait (store requests)
};

}  // namespace strata::control
