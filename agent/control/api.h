// The control API behind the socket (what agentctl and curl talk to):
//
//   GET  /v1/info                          mount point, stores, block size
//   GET  /v1/stat[?path=P]                 cache-wide or per-path statistics
//   POST /v1/load?path=P[&recursive=1]     starts a load job -> {"job": id}
//   GET  /v1/jobs/ID                       a job's progress and result
//   POST /v1/evict?path=P[&recursive=1]    drops cached blocks, waits
//   POST /v1/flush[?path=P&timeout=S]      waits until staged writes below P are uploaded
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
#include "agent/index/index.h"

namespace strata::control {

struct ApiContext {
  std::string mount_point;
  uint64_t block_size = 0;
  cache::MountTable* mounts = nullptr;
  cache::Metadata* meta = nullptr;
  cache::Engine* engine = nullptr;
  index::Index* index = nullptr;
  cache::Writer* writer = nullptr;
};

class Api {
 public:
  explicit Api(ApiContext ctx);
  ~Api();
  void Handle(const HttpRequest& req, Server::Reply reply);
  // Asks running jobs to stop and waits for the workers.
  void Shutdown();

  // Mount-relative path for what a user typed; error text when outside.
  static Result<std::string> ResolveUserPath(const std::string& mount_point, const std::string& raw);

  struct Job;

 private:
  void RunLoad(std::shared_ptr<Job> job);
  std::string StatJson();
  std::string MetricsText();

  ApiContext ctx_;
  std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;  // guarded by mu_
  uint64_t next_job_ = 1;                          // guarded by mu_
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> job_threads_;  // guarded by mu_
  std::atomic<bool> cancel_{false};
  std::unique_ptr<ThreadPool> workers_;
};

}  // namespace strata::control
