#include "agent/service/cache_service.h"

#include <unordered_set>

#include "agent/gossip/cluster.h"
#include "agent/peer/peer.h"

#include <sys/stat.h>

#include <functional>

#include "agent/base/clock.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/base/units.h"
#include "agent/cache/metadata.h"
#include "agent/cache/pins.h"
#include "agent/cache/writer.h"

namespace strata::service {

namespace {

constexpr int kJobFileWorkers = 4;
constexpr int kBlocksPerFile = 4;

// Calls fn for every file at or below `path` (directories only with
// recursive). Stops at the first error it cannot skip.
Status Walk(cache::Metadata* meta, const std::string& path, bool recursive, const std::atomic<bool>& cancel,
            const std::function<void(const index::FileMeta&)>& fn) {
  // Files being written on this host (no store version yet: file_id 0) and
  // symbolic links have no blocks to load, evict or count.
  auto cacheable = [](const index::FileMeta& f) { return !f.is_dir && f.file_id != 0 && (f.mode & S_IFMT) != S_IFLNK; };
  Result<index::FileMeta> m = meta->Stat(path);
  if (!m.ok()) return m.status();
  if (!m->is_dir) {
    if (cacheable(*m)) fn(*m);
    return Status::OK();
  }
  if (!recursive) return Status::IsADirectory("/" + path + " is a directory (use -r)");
  std::vector<std::string> stack = {path};
  while (!stack.empty() && !cancel) {
    std::string dir = stack.back();
    stack.pop_back();
    Result<std::vector<index::DirEntry>> entries = meta->List(dir);
    if (!entries.ok()) return entries.status();
    for (const index::DirEntry& e : *entries) {
      std::string child = JoinPath(dir, e.name);
      if (e.is_dir) {
        stack.push_back(child);
        continue;
      }
      Result<index::FileMeta> fm = meta->Stat(child);
      if (fm.ok() && cacheable(*fm)) fn(*fm);
    }
  }
  return Status::OK();
}

double HitRatio(const cache::EngineStats& st) {
  return st.bytes_read ? static_cast<double>(st.bytes_from_cache) / st.bytes_read : 0.0;
}

}  // namespace

void LoadJob::AddError(const std::string& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (errors_.size() < 20) errors_.push_back(e);
}

std::vector<std::string> LoadJob::Errors() {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

CacheService::CacheService(ServiceContext ctx)
    : ctx_(std::move(ctx)), workers_(std::make_unique<ThreadPool>(2, "strata-svc")) {}

CacheService::~CacheService() { Shutdown(); }

void CacheService::Shutdown() {
  cancel_ = true;
  std::vector<std::pair<std::shared_ptr<LoadJob>, std::thread>> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(job_threads_);
  }
  for (auto& [job, t] : threads) t.join();
  workers_.reset();
}

Result<std::string> CacheService::ResolveUserPath(const std::string& mount_point, const std::string& raw) {
  std::string rel = raw;
  if (!raw.empty() && raw[0] == '/') {
    if (raw == mount_point) rel = "";
    else if (IsUnder(raw, mount_point))
      rel = raw.substr(mount_point.size() + 1);
    else
      return Status::InvalidArgument(raw + " is outside the mount (mount point " + mount_point +
                                     "; give a path under it or relative to the mount root)");
  }
  return cache::NormalizePath(rel);
}

void CacheService::RunLoad(const std::shared_ptr<LoadJob>& job) {
  std::vector<index::FileMeta> files;
  Status s = Walk(ctx_.meta, job->path, job->recursive, cancel_, [&](const index::FileMeta& f) {
    files.push_back(f);
    job->files_total++;
    job->bytes_total += f.size;
  });
  job->walking = false;
  if (!s.ok()) {
    job->AddError(s.message());
    job->files_failed++;
  } else {
    // A few files at a time, a few blocks of each: small files load in
    // parallel, large ones still use several connections.
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t i = next++; i < files.size() && !cancel_; i = next++) {
        cache::FileRef ref = ctx_.meta->RefOf(files[i]);
        auto progress = [&](uint64_t n) { job->bytes_done += n; };
        Status ls;
        if (job->cluster && ctx_.peers != nullptr) {
          // The owners load theirs (asked in the background); this agent
          // its own share, then whatever an owner could not.
          std::vector<uint64_t> failed;
          std::thread others([&] { failed = ctx_.peers->WarmOthers(ref, ctx_.block_size, progress, &cancel_); });
          ls = ctx_.engine->Load(ref, kBlocksPerFile, progress, &cancel_, job->tier.value_or(cache::Tier::kSsd),
                                 ctx_.peers->OwnedHere(ref, ctx_.block_size));
          others.join();
          if (ls.ok() && !failed.empty()) {
            std::unordered_set<uint64_t> left(failed.begin(), failed.end());
            ls = ctx_.engine->Load(ref, kBlocksPerFile, progress, &cancel_, job->tier.value_or(cache::Tier::kSsd),
                                   [&left](uint64_t idx) { return left.count(idx) > 0; });
          }
        } else {
          ls = ctx_.engine->Load(ref, kBlocksPerFile, progress, &cancel_, job->tier.value_or(cache::Tier::kSsd));
        }
        if (!ls.ok()) {
          job->files_failed++;
          job->AddError("/" + files[i].path + ": " + ls.message());
        } else {
          job->files_done++;
        }
      }
    };
    std::vector<std::thread> threads;
    for (int t = 1; t < kJobFileWorkers; t++) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
  }
  job->finished_ms = NowUnixMs();
  job->finished = true;
  LOG_INFO("load /%s (%s): %llu file(s), %llu byte(s), %llu failed", job->path.c_str(), job->origin.c_str(),
           static_cast<unsigned long long>(job->files_done.load()),
           static_cast<unsigned long long>(job->bytes_done.load()),
           static_cast<unsigned long long>(job->files_failed.load()));
}

uint64_t CacheService::StartLoad(const std::string& path, bool recursive, std::optional<cache::Tier> tier,
                                  const std::string& origin, bool cluster) {
  auto job = std::make_shared<LoadJob>();
  job->cluster = cluster;
  job->started_ms = NowUnixMs();
  job->path = path;
  job->recursive = recursive;
  job->tier = tier;
  job->origin = origin;
  std::lock_guard<std::mutex> lock(mu_);
  job->id = next_job_++;
  jobs_[job->id] = job;
  // Keep the last 100 jobs.
  while (jobs_.size() > 100 && jobs_.begin()->second->finished) jobs_.erase(jobs_.begin());
  // A job has its own thread: a long load must not hold up stat or evict.
  // Threads of finished jobs are reaped here.
  for (auto it = job_threads_.begin(); it != job_threads_.end();) {
    if (it->first->finished) {
      it->second.join();
      it = job_threads_.erase(it);
    } else {
      ++it;
    }
  }
  job_threads_.emplace_back(job, std::thread([this, job] { RunLoad(job); }));
  return job->id;
}

std::shared_ptr<LoadJob> CacheService::Job(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<LoadJob>> CacheService::RunningJobs() {
  std::vector<std::shared_ptr<LoadJob>> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, job] : jobs_)
    if (!job->finished) out.push_back(job);
  return out;
}

Result<cache::EvictResult> CacheService::EvictPath(const std::string& path, bool recursive) {
  Result<index::FileMeta> m = ctx_.meta->Stat(path);
  if (!m.ok()) return m.status();
  if (m->is_dir && !recursive) return Status::InvalidArgument("/" + path + " is a directory (use -r)");
  // By what is cached, not by listing the store; pinned blocks stay.
  return ctx_.engine->EvictMatching({path, recursive}, 0);
}

Status CacheService::UnpinPath(const std::string& path) { return ctx_.pins->Unpin(path); }

Status CacheService::SetTtl(const std::string& path, bool recursive, int64_t ttl_ms) {
  return ctx_.pins->SetTtl(path, recursive, ttl_ms > 0 ? ctx_.clock->NowMs() + ttl_ms : 0);
}

Result<uint64_t> CacheService::PinAndLoad(const std::string& path, bool recursive, uint64_t* bytes) {
  uint64_t total = 0;
  Status s = Walk(ctx_.meta, path, recursive, cancel_, [&](const index::FileMeta& f) { total += f.size; });
  if (!s.ok()) return s;
  cache::EngineStats st = ctx_.engine->Stats();
  const cache::TierStats& ssd = st.tiers[static_cast<int>(cache::Tier::kSsd)];
  // Pinned data must fit below the eviction threshold, with room to spare
  // for everything else; overlapping pins are counted twice (conservative).
  uint64_t limit = ssd.capacity / 100 * 90;
  if (st.pinned_bytes + total > limit)
    return Status::NoSpace("cannot pin /" + path + ": its " + FormatSize(total) + " do not fit: " +
                           FormatSize(st.pinned_bytes) + " are pinned already and pinned data may use at most " +
                           FormatSize(limit) + " (90% of the " + FormatSize(ssd.capacity) +
                           " SSD tier); unpin something or raise --cache-size");
  STRATA_RETURN_IF_ERROR(ctx_.pins->Pin(path, recursive));
  *bytes = total;
  LOG_INFO("pinned /%s%s (%s)", path.c_str(), recursive ? " (recursive)" : "", FormatSize(total).c_str());
  return StartLoad(path, recursive, cache::Tier::kSsd, "pin");
}

Result<std::string> CacheService::PolicyPath(const std::string& raw) {
  const std::string& mp = ctx_.mount_point;
  if (IsUnder(raw, mp)) return ResolveUserPath(mp, raw);
  return cache::NormalizePath(raw);
}

Result<uint64_t> CacheService::Load(const std::string& raw, bool recursive, std::optional<cache::Tier> tier,
                                    bool cluster) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  if (tier == cache::Tier::kMem && !ctx_.engine->has_mem_tier())
    return Status::InvalidArgument("there is no RAM tier (start the agent with --mem-size)");
  if (cluster && ctx_.peers == nullptr) return Status::InvalidArgument("this agent is not in a cluster");
  return StartLoad(*path, recursive, tier, "policy", cluster);
}

std::vector<policy::Host::Member> CacheService::Members() {
  std::vector<Member> out;
  if (ctx_.cluster == nullptr) return out;
  for (const gossip::Member& m : ctx_.cluster->membership().Members())
    out.push_back({m.name, m.addr, gossip::StateName(m.state), m.meta.capacity, m.meta.used,
                   m.name == ctx_.cluster->name()});
  return out;
}

Result<cache::EvictResult> CacheService::Evict(const std::string& raw, bool recursive, int64_t idle_ms) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  int64_t before = idle_ms > 0 ? ctx_.clock->NowMs() - idle_ms : 0;
  return ctx_.engine->EvictMatching({*path, recursive}, before);
}

Status CacheService::Pin(const std::string& raw, bool recursive) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  // Checking the fit lists the store: not on the loop thread.
  workers_->Submit([this, p = *path, recursive] {
    uint64_t bytes = 0;
    Result<uint64_t> job = PinAndLoad(p, recursive, &bytes);
    if (!job.ok()) LOG_WARN("policy: pin /%s: %s", p.c_str(), job.status().message().c_str());
  });
  return Status::OK();
}

Status CacheService::Unpin(const std::string& raw) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  return UnpinPath(*path);
}

Status CacheService::Ttl(const std::string& raw, bool recursive, int64_t ttl_ms) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  return SetTtl(*path, recursive, ttl_ms);
}

Result<std::vector<policy::Host::Entry>> CacheService::List(const std::string& raw) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  Result<std::vector<index::DirEntry>> entries = ctx_.meta->List(*path);
  if (!entries.ok()) return entries.status();
  std::vector<Entry> out;
  for (const index::DirEntry& e : *entries) {
    Entry x;
    x.name = e.name;
    x.path = "/" + JoinPath(*path, e.name);
    x.etag = e.etag;
    x.is_dir = e.is_dir;
    x.size = e.size;
    x.mtime_ns = e.mtime_ns;
    if (!e.is_dir) {
      Result<index::FileMeta> fm = ctx_.meta->Stat(JoinPath(*path, e.name));
      if (fm.ok() && fm->file_id != 0)
        x.cached_percent = fm->size ? 100.0 * ctx_.engine->CachedOf(fm->file_id).bytes / fm->size : 100.0;
    }
    out.push_back(std::move(x));
  }
  return out;
}

std::vector<std::pair<std::string, double>> CacheService::Stat() {
  cache::EngineStats st = ctx_.engine->Stats();
  const cache::TierStats& mem = st.tiers[static_cast<int>(cache::Tier::kMem)];
  const cache::TierStats& ssd = st.tiers[static_cast<int>(cache::Tier::kSsd)];
  return {{"capacity", st.capacity},
          {"used", st.used_bytes},
          {"blocks", st.blocks},
          {"pinned", st.pinned_bytes},
          {"mem_capacity", mem.capacity},
          {"mem_used", mem.used_bytes},
          {"ssd_capacity", ssd.capacity},
          {"ssd_used", ssd.used_bytes},
          {"bytes_read", st.bytes_read},
          {"hit_ratio", HitRatio(st)},
          {"evicted_blocks", st.evicted_blocks},
          {"pending_uploads", ctx_.writer->Stats().pending_files}};
}

void CacheService::Tick(int64_t now_ms) {
  for (const cache::TtlRule& t : ctx_.pins->TakeExpired(now_ms)) {
    cache::EvictResult r = ctx_.engine->EvictMatching(t.target, 0);
    LOG_INFO("ttl: /%s expired: %llu block(s), %s evicted%s", t.target.path.c_str(),
             static_cast<unsigned long long>(r.blocks), FormatSize(r.bytes).c_str(),
             r.pinned_blocks ? (", " + std::to_string(r.pinned_blocks) + " pinned block(s) kept").c_str() : "");
  }
}

}  // namespace strata::service
