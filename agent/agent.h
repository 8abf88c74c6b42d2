// One strata-agent process: every module, wired together, started in
// dependency order and stopped in the reverse order.
//
//   Open():  the stores (each probed), the cache directory (created, locked
//            against a second agent), the cluster's key file and ports. Everything that can fail because of
//            the user's input fails here, before the agent daemonizes.
//   Start(): index + SSD tier -> engine (store source, peers in front) ->
//            metadata -> writer -> peer server -> cache service + policies
//            -> control socket -> gossip -> FUSE mount.
//   Serve(): the FUSE loop, until a signal or an unmount. Beside it a health
//            thread checks that the mount answers (a statfs the FUSE loop
//            serves) and the event loop turns: the first pass calls the
//            ready callback (systemd's READY=1), every pass feeds systemd's
//            watchdog and the /healthz endpoint.
//   Stop():  the reverse of Start(); idempotent, also run by the destructor.
//
// The settings are checked values (agent_main.cc parses and checks the
// command line and the config file into them).
//
// Thread safety: one thread drives Open/Start/Serve/Stop in that order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "agent/base/status.h"
#include "agent/cache/engine.h"
#include "agent/cache/writer.h"
#include "agent/fuse/frontend.h"
#include "agent/gateway/gateway.h"
#include "agent/gossip/cluster.h"
#include "agent/policy/runtime.h"
#include "ufs/ufs.h"

namespace strata {

namespace cache {
class Metadata;
class MountTable;
class PinTable;
}  // namespace cache
namespace control {
class Api;
class Server;
}  // namespace control
namespace index {
class Index;
}
namespace service {
class CacheService;
}
namespace peer {
class PeerServer;
class PeerSource;
}  // namespace peer
namespace loop {
class Loop;
}
namespace tier {
class SsdTier;
}
class Fd;
class ManualClock;

struct AgentSettings {
  struct Store {
    std::string path;  // where in the namespace ("" = the root)
    std::string uri;
    cache::WriteMode mode = cache::WriteMode::kThrough;
  };
  std::vector<Store> stores;  // the first is the root
  ufs::S3Options s3;
  ufs::AzureOptions azure;
  std::string cache_dir;
  std::string socket;        // the control socket
  std::string control_group = "strata";  // may use the control socket, beside root and the agent's user
  std::string metrics_addr;  // also /metrics, /healthz, /readyz, /status on HOST:PORT; "" = none
  bool status_paths = false;  // the status page may show file names
  std::string credentials_file;  // store keys, re-read on SIGHUP; "" = none
  double metadata_ttl_s = 60;
  bool attrs_from_listing = false;  // no HEAD per listed object (Metadata::SetAttrsFromListing)
  int64_t test_clock_s = -1;  // >= 0: a manual clock for the policies (tests)
  cache::EngineOptions engine;  // clock set by the agent
  cache::WriterOptions writer;  // staging_dir and modes set by the agent
  policy::RuntimeOptions policy;  // clock set by the agent
  fuse::Options fuse;             // on_open set by the agent
  // With a cluster key file: joins the cluster and reads peers' blocks.
  bool cluster = false;
  gossip::ClusterOptions cluster_opts;
  // With an address: the S3 / REST gateway.
  gateway::GatewayOptions gateway;
};

class Agent {
 public:
  explicit Agent(AgentSettings settings);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  Status Open();
  Status Start();
  // Runs once, on the health thread, when the mount first answers.
  void OnReady(std::function<void()> fn) { on_ready_ = std::move(fn); }
  // The FUSE loop; returns the process's exit code.
  int Serve();
  // The mount and the event loop answered within the last few checks.
  bool Healthy() const;
  bool Ready() const { return ready_; }
  void Stop();

 private:
  AgentSettings s_;
  std::unique_ptr<cache::MountTable> mounts_;
  std::unique_ptr<Fd> lock_;
  std::unique_ptr<index::Index> index_;
  std::unique_ptr<tier::SsdTier> ssd_;
  std::unique_ptr<ManualClock> test_clock_;
  std::unique_ptr<loop::Loop> loop_;
  std::unique_ptr<policy::Runtime> runtime_;
  std::unique_ptr<gossip::Cluster> cluster_;
  std::unique_ptr<cache::BlockSource> store_source_;
  std::unique_ptr<peer::PeerSource> peer_source_;
  std::unique_ptr<cache::Engine> engine_;
  std::unique_ptr<peer::PeerServer> peer_server_;
  std::unique_ptr<cache::PinTable> pins_;
  std::unique_ptr<cache::Metadata> meta_;
  std::unique_ptr<cache::Writer> writer_;
  std::unique_ptr<service::CacheService> service_;
  std::unique_ptr<control::Api> api_;
  std::unique_ptr<control::Server> server_;
  std::unique_ptr<fuse::Frontend> frontend_;
  std::unique_ptr<gateway::Gateway> gateway_;
  void* hup_ = nullptr;  // the SIGHUP handle (a uv_signal_t), on the loop
  // SIGHUP: new keys from the credentials file for the stores that take them.
  void ReloadStoreCredentials();
  // Health: one pass = statfs of the mount + a turn of the event loop.
  bool CheckHealth();
  void HealthLoop();
  struct HealthProbe;
  std::shared_ptr<HealthProbe> stuck_probe_;  // a statfs that did not return (health thread)
  std::function<void()> on_ready_;
  std::thread health_;
  std::mutex health_mu_;
  std::condition_variable health_cv_;
  std::atomic<bool> health_stop_{false};      // set under health_mu_
  std::atomic<int64_t> healthy_at_ms_{0};     // monotonic ms of the last good pass
  std::atomic<bool> ready_{false};
  int64_t health_interval_ms_ = 5000;  // set before the health thread starts
  bool loop_running_ = false;
  bool mounted_ = false;
  bool stopped_ = false;
};

}  // namespace strata
