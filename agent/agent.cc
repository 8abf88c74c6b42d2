#include "agent/agent.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <future>

#include "agent/base/clock.h"
#include "agent/base/fd.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/base/systemd.h"
#include "agent/base/units.h"
#include "agent/cache/metadata.h"
#include "agent/cache/mounts.h"
#include "agent/cache/pins.h"
#include "agent/control/api.h"
#include "agent/control/server.h"
#include "agent/index/index.h"
#include "agent/loop/loop.h"
#include "agent/peer/peer.h"
#include "agent/service/cache_service.h"
#include "agent/tier/ssd_tier.h"

namespace strata {

Agent::Agent(AgentSettings settings) : s_(std::move(settings)) {}

Agent::~Agent() { Stop(); }

Status Agent::Open() {
  mounts_ = std::make_unique<cache::MountTable>();
  for (const AgentSettings::Store& st : s_.stores) {
    Result<std::unique_ptr<ufs::Ufs>> store = ufs::Open(st.uri, s_.s3, s_.azure);
    if (!store.ok()) return store.status();
    Status probe = (*store)->Probe();
    if (!probe.ok()) return Status::InvalidArgument("cannot use store " + st.uri + ": " + probe.message());
    STRATA_RETURN_IF_ERROR(mounts_->Add(st.path, std::move(store).value()));
  }
  const std::string& dir = s_.cache_dir;
  Status made = MakeDirs(dir);
  if (!made.ok()) return Status::InvalidArgument("--cache-dir: " + made.message());
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    return Status::PermissionDenied("cache dir " + dir + " is not writable: " + std::strerror(errno));
  // One agent per cache directory.
  lock_ = std::make_unique<Fd>(::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock_->valid()) return Status::PermissionDenied("cache dir " + dir + " is not writable: " + std::strerror(errno));
  if (::flock(lock_->get(), LOCK_EX | LOCK_NB) != 0)
    return Status::AlreadyExists("cache dir " + dir + " is in use by another strata-agent");
  if (s_.cluster) {
    s_.cluster_opts.membership.meta.capacity = s_.engine.capacity;
    cluster_ = std::make_unique<gossip::Cluster>(s_.cluster_opts);
    STRATA_RETURN_IF_ERROR(cluster_->Open());
  }
  return Status::OK();
}

Status Agent::Start() {
  const std::string& dir = s_.cache_dir;
  STRATA_RETURN_IF_ERROR(MakeDirs(dir + "/index"));
  Result<std::unique_ptr<index::Index>> idx = index::Index::Open(dir + "/index", s_.engine.block_size);
  if (!idx.ok()) return idx.status();
  index_ = std::move(idx).value();
  Result<std::unique_ptr<tier::SsdTier>> ssd = tier::SsdTier::Open(dir + "/blocks");
  if (!ssd.ok()) return ssd.status();
  ssd_ = std::move(ssd).value();

  if (s_.test_clock_s >= 0) test_clock_ = std::make_unique<ManualClock>(s_.test_clock_s * 1000);
  const Clock* clock = test_clock_ ? static_cast<const Clock*>(test_clock_.get()) : SystemClock::Get();

  loop_ = std::make_unique<loop::Loop>();
  s_.policy.clock = clock;
  runtime_ = std::make_unique<policy::Runtime>(s_.policy, loop_.get(), nullptr);

  s_.engine.clock = clock;
  // Misses go to the block's owner in the cluster first, then to the store.
  store_source_ = cache::MakeStoreSource(mounts_.get());
  cache::BlockSource* source = store_source_.get();
  if (cluster_) {
    peer_source_ = std::make_unique<peer::PeerSource>(cluster_.get(), store_source_.get());
    source = peer_source_.get();
  }
  engine_ = std::make_unique<cache::Engine>(s_.engine, mounts_.get(), index_.get(), ssd_.get(), source);
  engine_->SetAdmission(runtime_.get());
  engine_->SetScorer(runtime_.get());
  pins_ = std::make_unique<cache::PinTable>(index_.get(), engine_.get());
  Status s = pins_->Load();
  if (!s.ok()) return s.With("cache dir " + dir);
  STRATA_RETURN_IF_ERROR(engine_->Start());
  meta_ = std::make_unique<cache::Metadata>(mounts_.get(), index_.get(), engine_.get(),
                                            static_cast<int64_t>(s_.metadata_ttl_s * 1000));
  meta_->SetAttrsFromListing(s_.attrs_from_listing);
  s_.writer.staging_dir = dir + "/staging";
  s_.writer.modes.clear();
  for (const AgentSettings::Store& st : s_.stores) s_.writer.modes.push_back(st.mode);
  writer_ = std::make_unique<cache::Writer>(s_.writer, mounts_.get(), index_.get(), engine_.get(), meta_.get());
  meta_->SetStaged(writer_.get());
  STRATA_RETURN_IF_ERROR(writer_->Start());
  for (size_t i = 0; i < mounts_->size(); i++)
    if (s_.writer.modes[i] == cache::WriteMode::kCacheOnly)
      LOG_WARN("/%s (%s) is cache-only: files written there are NEVER uploaded to the store",
               mounts_->at(i).path.c_str(), mounts_->at(i).ufs->uri().c_str());

  if (cluster_) peer_server_ = std::make_unique<peer::PeerServer>(cluster_.get(), mounts_.get(), meta_.get(), engine_.get());

  service_ = std::make_unique<service::CacheService>(service::ServiceContext{
      s_.fuse.mount_point, s_.engine.block_size, meta_.get(), engine_.get(), writer_.get(), pins_.get(), clock,
      peer_source_.get(), cluster_.get()});
  runtime_->SetHost(service_.get());
  api_ = std::make_unique<control::Api>(control::ApiContext{s_.fuse.mount_point, s_.engine.block_size, mounts_.get(),
                                                            meta_.get(), engine_.get(), index_.get(), writer_.get(),
                                                            service_.get(), runtime_.get(), clock, test_clock_.get(),
                                                            cluster_.get(), peer_source_.get(), peer_server_.get(),
                                                            s_.status_paths});
  api_->SetHealth([this] { return Healthy(); }, [this] { return Ready(); });
  // A broken policy does not stop the agent: it serves with the built-in
  // default, and `agentctl policy status` shows why.
  s = runtime_->Reload();
  if (!s.ok())
    LOG_ERROR("policies in %s not loaded, serving with the built-in default: %s", s_.policy.dir.c_str(),
              s.message().c_str());
  control::Api* api = api_.get();
  server_ = std::make_unique<control::Server>(
      loop_.get(), [api](const control::HttpRequest& r, control::Server::Reply reply) { api->Handle(r, std::move(reply)); });
  STRATA_RETURN_IF_ERROR(server_->ListenUnix(s_.socket, s_.control_group));
  if (!s_.metrics_addr.empty()) STRATA_RETURN_IF_ERROR(server_->ListenTcp(s_.metrics_addr));
  loop_->Start();
  loop_running_ = true;
  if (cluster_) STRATA_RETURN_IF_ERROR(cluster_->Start(loop_.get()));

  policy::Runtime* runtime = runtime_.get();
  s_.fuse.on_open = [runtime](const cache::FileRef& f) { runtime->OnAccess(f); };
  frontend_ = std::make_unique<fuse::Frontend>(s_.fuse, meta_.get(), engine_.get(), writer_.get());
  STRATA_RETURN_IF_ERROR(frontend_->Mount());
  mounted_ = true;
  if (!s_.gateway.addr.empty()) {
    s_.gateway.read_ahead_blocks = s_.fuse.max_readahead_blocks;
    s_.gateway.uploads_dir = dir + "/gateway-uploads";
    gateway_ = std::make_unique<gateway::Gateway>(s_.gateway, engine_.get(), meta_.get(), writer_.get(), mounts_.get());
    fuse::Frontend* fe = frontend_.get();
    gateway_->SetOnChange([fe](const std::string& path) { fe->Invalidate(path); });
    STRATA_RETURN_IF_ERROR(gateway_->Start());
    api_->SetGateway(gateway_.get());
  }
  // After Mount: SIGHUP reloads the policies (and the gateway's
  // credentials) instead of ending the FUSE loop.
  auto* hup = new uv_signal_t;
  hup_ = hup;
  loop::Loop* loop = loop_.get();
  loop_->Post([this, loop, runtime, hup] {
    uv_signal_init(loop->uv(), hup);
    hup->data = this;
    uv_signal_start(hup, [](uv_signal_t* h, int) {
      Agent* self = static_cast<Agent*>(h->data);
      LOG_INFO("SIGHUP: reloading the policies%s%s", self->gateway_ ? ", the gateway credentials" : "",
               self->s_.credentials_file.empty() ? "" : ", the store credentials");
      systemd::Notify("RELOADING=1\n" + systemd::MonotonicUsec());
      (void)self->runtime_->Reload();
      if (self->gateway_) (void)self->gateway_->Reload();
      self->ReloadStoreCredentials();
      systemd::Notify("READY=1");
    }, SIGHUP);
    runtime->Start();
  });
  LOG_INFO("serving %s at %s (cache %s in %s, control socket %s)", mounts_->at(0).ufs->uri().c_str(),
           s_.fuse.mount_point.c_str(), FormatSize(s_.engine.capacity).c_str(), dir.c_str(), s_.socket.c_str());
  return Status::OK();
}

void Agent::ReloadStoreCredentials() {
  if (s_.credentials_file.empty()) return;
  Result<std::map<std::string, std::string>> vars = ufs::ReadCredentialsFile(s_.credentials_file);
  if (!vars.ok()) {
    LOG_ERROR("store credentials not reloaded, the ones in use stay: %s", vars.status().message().c_str());
    return;
  }
  int n = 0;
  for (size_t i = 0; i < mounts_->size(); i++) n += mounts_->at(i).ufs->ReloadCredentials(*vars);
  LOG_INFO("store credentials: %d store(s) took new keys from %s", n, s_.credentials_file.c_str());
}

struct Agent::HealthProbe {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false, ok = false;
};

bool Agent::CheckHealth() {
  // statfs is never answered from the kernel's caches: it is a round trip
  // through a FUSE worker. It runs on a thread of its own, so a hung mount
  // costs that thread and not this one (which must stay free to stop); the
  // missing pings then let systemd's watchdog restart the agent.
  if (stuck_probe_) {
    std::lock_guard<std::mutex> l(stuck_probe_->mu);
    if (!stuck_probe_->done) return false;
  }
  auto probe = std::make_shared<HealthProbe>();
  std::thread([probe, path = s_.fuse.mount_point] {
    struct statvfs sv {};
    bool ok = ::statvfs(path.c_str(), &sv) == 0;
    std::lock_guard<std::mutex> l(probe->mu);
    probe->done = true;
    probe->ok = ok;
    probe->cv.notify_all();
  }).detach();
  {
    std::unique_lock<std::mutex> l(probe->mu);
    // Up to 5 s, in steps, so a stop need not wait for a hung statfs.
    for (int i = 0; i < 50 && !probe->done && !health_stop_; i++)
      probe->cv.wait_for(l, std::chrono::milliseconds(100), [&] { return probe->done; });
    if (!probe->done) {
      stuck_probe_ = probe;
      return false;
    }
    if (!probe->ok) return false;
  }
  auto turned = std::make_shared<std::promise<void>>();
  std::future<void> done = turned->get_future();
  loop_->Post([turned] { turned->set_value(); });
  return done.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
}

void Agent::HealthLoop() {
  int64_t watchdog_ms = systemd::WatchdogIntervalMs();
  for (;;) {
    api_->Sample();  // the status page's history
    if (CheckHealth()) {
      healthy_at_ms_ = NowMonoMs();
      if (!ready_.exchange(true) && on_ready_) on_ready_();
      if (watchdog_ms > 0) systemd::Notify("WATCHDOG=1");
    } else if (ready_) {
      LOG_WARN("health check failed: the mount at %s or the event loop does not answer", s_.fuse.mount_point.c_str());
    }
    std::unique_lock<std::mutex> l(health_mu_);
    // Until ready: soon again (the FUSE loop is starting).
    health_cv_.wait_for(l, std::chrono::milliseconds(ready_ ? health_interval_ms_ : 20), [this] { return health_stop_.load(); });
    if (health_stop_) return;
  }
}

bool Agent::Healthy() const {
  int64_t at = healthy_at_ms_.load();
  return at != 0 && NowMonoMs() - at <= std::max<int64_t>(3 * health_interval_ms_, 15000);
}

int Agent::Serve() {
  if (int64_t watchdog_ms = systemd::WatchdogIntervalMs(); watchdog_ms > 0)
    health_interval_ms_ = std::max<int64_t>(watchdog_ms / 3, 50);
  health_ = std::thread([this] { HealthLoop(); });
  int rc = frontend_->Loop();
  // libfuse reports the signal that ended the loop: that is a clean stop.
  return rc == 0 || rc == SIGINT || rc == SIGTERM || rc == SIGHUP ? 0 : 1;
}

void Agent::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (health_.joinable()) {
    {
      std::lock_guard<std::mutex> l(health_mu_);
      health_stop_ = true;
    }
    health_cv_.notify_all();
    health_.join();
  }
  // Leave first: the others stop asking us for blocks before we go.
  if (cluster_ && loop_running_) cluster_->Stop();
  if (mounted_) {
    LOG_INFO("unmounting %s", s_.fuse.mount_point.c_str());
    frontend_->Unmount();
  }
  if (gateway_) gateway_->Stop();
  if (api_) api_->Shutdown();
  if (service_) service_->Shutdown();
  if (loop_running_) {
    control::Server* server = server_.get();
    policy::Runtime* runtime = runtime_.get();
    auto* hup = static_cast<uv_signal_t*>(hup_);
    loop_->Stop([server, runtime, hup] {
      if (hup != nullptr) {
        runtime->Stop();
        uv_close(reinterpret_cast<uv_handle_t*>(hup), [](uv_handle_t* h) { delete reinterpret_cast<uv_signal_t*>(h); });
      }
      server->Close();
    });
  }
  if (writer_) {
    writer_->Stop();
    cache::WriterStats left = writer_->Stats();
    if (left.pending_files > 0)
      LOG_WARN("%llu file(s) (%s) still wait for upload: they are journaled and uploaded at the next start",
               static_cast<unsigned long long>(left.pending_files), FormatSize(left.pending_bytes).c_str());
  }
  if (engine_) engine_->Stop();
  // The members go in the reverse order of their declaration.
}

}  // namespace strata
