#include "agent/control/api.h"
#include "agent/base/paths.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <functional>

#include "agent/base/clock.h"
#include "agent/base/log.h"
#include "agent/base/units.h"

namespace strata::control {

using nlohmann::json;

struct Api::Job {
  uint64_t id = 0;
  std::string path;
  bool recursive = false;
  std::optional<cache::Tier> tier;
  std::string origin;
  std::atomic<bool> walking{true};
  std::atomic<bool> finished{false};
  std::atomic<uint64_t> files_total{0}, files_done{0}, bytes_total{0}, bytes_done{0};
  std::atomic<uint64_t> files_failed{0};
  int64_t started_ms = NowUnixMs();
  std::atomic<int64_t> finished_ms{0};
  std::mutex mu;
  std::vector<std::string> errors;  // guarded by mu (first few only)

  void AddError(const std::string& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (errors.size() < 20) errors.push_back(e);
  }
  json ToJson() {
    json j;
    j["id"] = id;
    j["path"] = "/" + path;
    j["recursive"] = recursive;
    j["origin"] = origin;
    j["tier"] = tier ? cache::TierName(*tier) : "ssd";
    j["state"] = !finished ? (walking ? "listing" : "loading") : (files_failed ? "failed" : "done");
    j["files_total"] = files_total.load();
    j["files_done"] = files_done.load();
    j["files_failed"] = files_failed.load();
    j["bytes_total"] = bytes_total.load();
    j["bytes_done"] = bytes_done.load();
    int64_t end = finished ? finished_ms.load() : NowUnixMs();
    double secs = std::max<int64_t>(1, end - started_ms) / 1000.0;
    j["elapsed_seconds"] = secs;
    j["bytes_per_second"] = bytes_done.load() / secs;
    std::lock_guard<std::mutex> lock(mu);
    j["errors"] = errors;
    return j;
  }
};

namespace {

constexpr int kJobFileWorkers = 4;
constexpr int kBlocksPerFile = 4;

void ReplyJson(const Server::Reply& reply, int code, const json& j) {
  reply(code, "application/json", j.dump() + "\n");
}
void ReplyError(const Server::Reply& reply, int code, const std::string& msg) {
  ReplyJson(reply, code, json{{"error", msg}});
}
int HttpCodeOf(const Status& s) {
  switch (s.code()) {
    case Status::Code::kNotFound: return 404;
    case Status::Code::kInvalidArgument:
    case Status::Code::kIsADirectory:
    case Status::Code::kNotADirectory: return 400;
    case Status::Code::kNoSpace: return 507;
    case Status::Code::kUnavailable:
    case Status::Code::kTimeout: return 503;
    default: return 500;
  }
}

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

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

Api::Api(ApiContext ctx)
    : ctx_(std::move(ctx)), workers_(std::make_unique<ThreadPool>(4, "strata-ctl")) {}

Api::~Api() { Shutdown(); }

void Api::Shutdown() {
  cancel_ = true;
  std::vector<std::pair<std::shared_ptr<Job>, std::thread>> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(job_threads_);
  }
  for (auto& [job, t] : threads) t.join();
  workers_.reset();
}

Result<std::string> Api::ResolveUserPath(const std::string& mount_point, const std::string& raw) {
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

void Api::Handle(const HttpRequest& req, Server::Reply reply) {
  const std::string& p = req.path;
  auto path_param = [&](std::string* out) -> bool {
    auto it = req.query.find("path");
    Result<std::string> r = ResolveUserPath(ctx_.mount_point, it == req.query.end() ? "" : it->second);
    if (!r.ok()) {
      ReplyError(reply, 400, r.status().message());
      return false;
    }
    *out = *r;
    return true;
  };
  bool recursive = req.query.count("recursive") && req.query.at("recursive") != "0";

  if (p == "/metrics" && req.method == "GET") {
    reply(200, "text/plain; version=0.0.4", MetricsText());
  } else if (p == "/v1/info" && req.method == "GET") {
    json mounts = json::array();
    for (size_t i = 0; i < ctx_.mounts->size(); i++)
      mounts.push_back({{"path", "/" + ctx_.mounts->at(i).path}, {"uri", ctx_.mounts->at(i).ufs->uri()}});
    ReplyJson(reply, 200, {{"mount_point", ctx_.mount_point}, {"block_size", ctx_.block_size}, {"mounts", mounts}});
  } else if (p == "/v1/stat" && req.method == "GET") {
    if (!req.query.count("path")) {
      reply(200, "application/json", StatJson());
      return;
    }
    std::string path;
    if (!path_param(&path)) return;
    workers_->Submit([this, path, reply] {
      Result<index::FileMeta> m = ctx_.meta->Stat(path);
      if (!m.ok()) return ReplyError(reply, HttpCodeOf(m.status()), m.status().message());
      auto file_row = [this](const index::FileMeta& f) {
        cache::Engine::FileCache fc = ctx_.engine->CachedOf(f.file_id);
        uint64_t nblocks = (f.size + ctx_.block_size - 1) / ctx_.block_size;
        return json{{"path", "/" + f.path}, {"type", "file"}, {"size", f.size}, {"etag", f.etag},
                    {"mtime_ns", f.mtime_ns}, {"cached_bytes", fc.bytes},
                    {"cached_percent", f.size ? 100.0 * fc.bytes / f.size : 100.0},
                    {"blocks_cached", fc.blocks}, {"blocks_total", nblocks}};
      };
      if (!m->is_dir) return ReplyJson(reply, 200, file_row(*m));
      Result<std::vector<index::DirEntry>> entries = ctx_.meta->List(path);
      if (!entries.ok()) return ReplyError(reply, HttpCodeOf(entries.status()), entries.status().message());
      json files = json::array();
      uint64_t size = 0, cached = 0, dirs = 0;
      for (const index::DirEntry& e : *entries) {
        if (e.is_dir) {
          dirs++;
          continue;
        }
        Result<index::FileMeta> fm = ctx_.meta->Stat(JoinPath(path, e.name));
        if (!fm.ok() || fm->is_dir) continue;
        json row = file_row(*fm);
        size += fm->size;
        cached += row["cached_bytes"].get<uint64_t>();
        files.push_back(std::move(row));
      }
      ReplyJson(reply, 200, {{"path", "/" + path}, {"type", "directory"}, {"directories", dirs},
                             {"size", size}, {"cached_bytes", cached},
                             {"cached_percent", size ? 100.0 * cached / size : 100.0}, {"files", files}});
    });
  } else if (p == "/v1/load" && req.method == "POST") {
    std::string path;
    if (!path_param(&path)) return;
    std::optional<cache::Tier> tier;
    if (auto it = req.query.find("tier"); it != req.query.end()) {
      tier = cache::ParseTier(it->second);
      if (!tier) return ReplyError(reply, 400, "bad tier '" + it->second + "': mem or ssd");
      if (*tier == cache::Tier::kMem && !ctx_.engine->has_mem_tier())
        return ReplyError(reply, 400, "there is no RAM tier (start the agent with --mem-size)");
    }
    ReplyJson(reply, 202, {{"job", StartLoad(path, recursive, tier, "agentctl")}});
  } else if (p.rfind("/v1/jobs/", 0) == 0 && req.method == "GET") {
    uint64_t id = std::strtoull(p.c_str() + 9, nullptr, 10);
    std::shared_ptr<Job> job;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = jobs_.find(id);
      if (it != jobs_.end()) job = it->second;
    }
    if (!job) return ReplyError(reply, 404, "no job " + p.substr(9));
    ReplyJson(reply, 200, job->ToJson());
  } else if (p == "/v1/evict" && req.method == "POST") {
    std::string path;
    if (!path_param(&path)) return;
    workers_->Submit([this, path, recursive, reply] {
      Result<index::FileMeta> m = ctx_.meta->Stat(path);
      if (!m.ok()) return ReplyError(reply, HttpCodeOf(m.status()), m.status().message());
      if (m->is_dir && !recursive) return ReplyError(reply, 400, "/" + path + " is a directory (use -r)");
      // By what is cached, not by listing the store; pinned blocks stay.
      cache::EvictResult r = ctx_.engine->EvictMatching({path, recursive}, 0);
      ReplyJson(reply, 200, {{"path", "/" + path}, {"files", r.files}, {"blocks", r.blocks}, {"bytes", r.bytes},
                             {"pinned_blocks", r.pinned_blocks}});
    });
  } else if (p == "/v1/pin" && req.method == "POST") {
    std::string path;
    if (!path_param(&path)) return;
    workers_->Submit([this, path, recursive, reply] {
      uint64_t bytes = 0;
      Result<uint64_t> job = PinAndLoad(path, recursive, &bytes);
      if (!job.ok()) return ReplyError(reply, HttpCodeOf(job.status()), job.status().message());
      ReplyJson(reply, 200, {{"path", "/" + path}, {"recursive", recursive}, {"bytes", bytes}, {"job", *job}});
    });
  } else if (p == "/v1/unpin" && req.method == "POST") {
    std::string path;
    if (!path_param(&path)) return;
    Status s = ctx_.pins->Unpin(path);
    if (!s.ok()) return ReplyError(reply, HttpCodeOf(s), s.message());
    ReplyJson(reply, 200, {{"path", "/" + path}});
  } else if (p == "/v1/ttl" && req.method == "POST") {
    std::string path;
    if (!path_param(&path)) return;
    std::string ttl = req.query.count("ttl") ? req.query.at("ttl") : "";
    int64_t ms = 0;
    if (ttl != "off" && ttl != "0") {
      Result<uint64_t> d = ParseDurationMs(ttl);
      if (!d.ok()) return ReplyError(reply, 400, "bad ttl '" + ttl + "': " + d.status().message() + " (or off)");
      ms = static_cast<int64_t>(*d);
    }
    Status s = Ttl("/" + path, recursive, ms);
    if (!s.ok()) return ReplyError(reply, HttpCodeOf(s), s.message());
    ReplyJson(reply, 200, {{"path", "/" + path}, {"expires", ms ? ctx_.clock->NowMs() + ms : 0}});
  } else if (p == "/v1/policy/reload" && req.method == "POST") {
    if (runtime_ == nullptr) return ReplyError(reply, 503, "the policy runtime is not running");
    Status s = runtime_->Reload();
    if (!s.ok()) return ReplyError(reply, 422, "reload refused, the policies in force stay in force: " + s.message());
    reply(200, "application/json", runtime_->StatusJson() + "\n");
  } else if (p == "/v1/policy/status" && req.method == "GET") {
    if (runtime_ == nullptr) return ReplyError(reply, 503, "the policy runtime is not running");
    reply(200, "application/json", runtime_->StatusJson() + "\n");
  } else if (p == "/v1/clock" && req.method == "POST") {
    if (ctx_.test_clock == nullptr) return ReplyError(reply, 403, "the clock can only be moved when the agent runs with --test-clock");
    std::string adv = req.query.count("advance") ? req.query.at("advance") : "";
    Result<uint64_t> d = ParseDurationMs(adv);
    if (!d.ok()) return ReplyError(reply, 400, "bad advance '" + adv + "': " + d.status().message());
    ctx_.test_clock->Advance(static_cast<int64_t>(*d));
    if (runtime_ != nullptr) runtime_->Tick();
    ReplyJson(reply, 200, {{"now_ms", ctx_.test_clock->NowMs()}});
  } else if (p == "/v1/flush" && req.method == "POST") {
    std::string path;
    if (!path_param(&path)) return;
    double timeout_s = 300;
    if (auto it = req.query.find("timeout"); it != req.query.end()) {
      char* end = nullptr;
      timeout_s = std::strtod(it->second.c_str(), &end);
      if (end == it->second.c_str() || *end != '\0' || timeout_s < 0 || timeout_s > 86400)
        return ReplyError(reply, 400, "bad timeout '" + it->second + "': seconds, 0 to 86400");
    }
    workers_->Submit([this, path, timeout_s, reply] {
      uint64_t files = 0;
      Status s = ctx_.writer->Flush(path, static_cast<int64_t>(timeout_s * 1000), &files);
      if (!s.ok()) return ReplyError(reply, HttpCodeOf(s), "flush /" + path + ": " + s.message());
      ReplyJson(reply, 200, {{"path", "/" + path}, {"files", files}});
    });
  } else if (p == "/metrics" || p == "/v1/info" || p == "/v1/stat" || p == "/v1/load" || p == "/v1/evict" ||
             p == "/v1/flush" || p == "/v1/pin" || p == "/v1/unpin" || p == "/v1/ttl" || p == "/v1/clock" ||
             p.rfind("/v1/policy/", 0) == 0) {
    ReplyError(reply, 405, "method " + req.method + " not allowed on " + p);
  } else {
    ReplyError(reply, 404, "no such endpoint: " + p);
  }
}

void Api::RunLoad(std::shared_ptr<Job> job) {
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
        Status ls = ctx_.engine->Load(ctx_.meta->RefOf(files[i]), kBlocksPerFile,
                                      [&](uint64_t n) { job->bytes_done += n; }, &cancel_,
                                      job->tier.value_or(cache::Tier::kSsd));
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

uint64_t Api::StartLoad(const std::string& path, bool recursive, std::optional<cache::Tier> tier,
                       const std::string& origin) {
  auto job = std::make_shared<Job>();
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

Result<uint64_t> Api::PinAndLoad(const std::string& path, bool recursive, uint64_t* bytes) {
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

Result<std::string> Api::PolicyPath(const std::string& raw) {
  const std::string& mp = ctx_.mount_point;
  if (IsUnder(raw, mp)) return ResolveUserPath(mp, raw);
  return cache::NormalizePath(raw);
}

Result<uint64_t> Api::Load(const std::string& raw, bool recursive, std::optional<cache::Tier> tier) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  if (tier == cache::Tier::kMem && !ctx_.engine->has_mem_tier())
    return Status::InvalidArgument("there is no RAM tier (start the agent with --mem-size)");
  return StartLoad(*path, recursive, tier, "policy");
}

Result<cache::EvictResult> Api::Evict(const std::string& raw, bool recursive, int64_t idle_ms) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  int64_t before = idle_ms > 0 ? ctx_.clock->NowMs() - idle_ms : 0;
  return ctx_.engine->EvictMatching({*path, recursive}, before);
}

Status Api::Pin(const std::string& raw, bool recursive) {
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

Status Api::Unpin(const std::string& raw) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  return ctx_.pins->Unpin(*path);
}

Status Api::Ttl(const std::string& raw, bool recursive, int64_t ttl_ms) {
  Result<std::string> path = PolicyPath(raw);
  if (!path.ok()) return path.status();
  return ctx_.pins->SetTtl(*path, recursive, ttl_ms > 0 ? ctx_.clock->NowMs() + ttl_ms : 0);
}

Result<std::vector<policy::Host::Entry>> Api::List(const std::string& raw) {
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

std::vector<std::pair<std::string, double>> Api::Stat() {
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

void Api::Tick(int64_t now_ms) {
  for (const cache::TtlRule& t : ctx_.pins->TakeExpired(now_ms)) {
    cache::EvictResult r = ctx_.engine->EvictMatching(t.target, 0);
    LOG_INFO("ttl: /%s expired: %llu block(s), %s evicted%s", t.target.path.c_str(),
             static_cast<unsigned long long>(r.blocks), FormatSize(r.bytes).c_str(),
             r.pinned_blocks ? (", " + std::to_string(r.pinned_blocks) + " pinned block(s) kept").c_str() : "");
  }
}

namespace {
json WritesJson(const cache::WriterStats& w) {
  return {{"pending_files", w.pending_files},        {"pending_bytes", w.pending_bytes},
          {"oldest_pending_ms", w.oldest_pending_ms}, {"failing_files", w.failing_files},
          {"last_error", w.last_error},              {"cache_only_files", w.cache_only_files},
          {"cache_only_bytes", w.cache_only_bytes},  {"open_files", w.open_files},
          {"staged_bytes", w.staged_bytes},          {"staging_limit", w.staging_limit},
          {"uploads", w.uploads},                    {"uploaded_bytes", w.uploaded_bytes},
          {"upload_failures", w.upload_failures},    {"streamed_uploads", w.streamed_uploads}};
}
}  // namespace

std::string Api::StatJson() {
  cache::EngineStats st = ctx_.engine->Stats();
  index::Index::Stats is = ctx_.index->GetStats();
  json mounts = json::array();
  for (size_t i = 0; i < ctx_.mounts->size(); i++) {
    cache::Mount& m = ctx_.mounts->at(i);
    ufs::Counters& c = m.ufs->counters();
    mounts.push_back({{"path", "/" + m.path}, {"uri", m.ufs->uri()},
                      {"used_bytes", i < st.mount_used_bytes.size() ? st.mount_used_bytes[i] : 0},
                      {"bytes_fetched", c.bytes_read.load()}, {"get_requests", c.get_requests.load()},
                      {"head_requests", c.head_requests.load()}, {"list_requests", c.list_requests.load()},
                      {"write_requests", c.put_requests.load()}, {"bytes_written", c.bytes_written.load()},
                      {"part_copies", c.part_copies.load()},
                      {"streamed_parts", c.streamed_parts.load()},
                      {"retries", c.retries.load()}, {"errors", c.errors.load()},
                      {"write_mode", cache::WriteModeName(ctx_.writer->ModeOf(i))},
                      {"online", m.offline_until_ms.load() <= NowUnixMs()}});
  }
  json jobs = json::array();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, job] : jobs_)
      if (!job->finished) jobs.push_back(job->ToJson());
  }
  json j = {
      {"mount_point", ctx_.mount_point},
      {"capacity_bytes", st.capacity},
      {"used_bytes", st.used_bytes},
      {"reserved_bytes", st.reserved_bytes},
      {"blocks", st.blocks},
      {"block_size", ctx_.block_size},
      {"bytes_read", st.bytes_read},
      {"bytes_from_cache", st.bytes_from_cache},
      {"hit_ratio", HitRatio(st)},
      {"inflight_fetches", st.inflight_fetches},
      {"fetched_blocks", st.fetched_blocks},
      {"fetch_errors", st.fetch_errors},
      {"uncached_fetches", st.uncached_fetches},
      {"evicted_blocks", st.evicted_blocks},
      {"evicted_bytes", st.evicted_bytes},
      {"checksum_failures", st.checksum_failures},
      {"verified_blocks", st.verified_blocks},
      {"scrubbed_blocks", st.scrubbed_blocks},
      {"index", {{"map_bytes", is.map_size}, {"used_bytes", is.used_bytes}, {"meta_rows", is.meta_rows}}},
      {"mounts", mounts},
      {"jobs", jobs},
      {"writes", WritesJson(ctx_.writer->Stats())},
      {"pinned_bytes", st.pinned_bytes},
      {"promotions", st.promotions},
      {"demotions", st.demotions},
      {"not_admitted", st.not_admitted},
  };
  json tiers = json::array();
  for (int i = 0; i < cache::kTierCount; i++) {
    const cache::TierStats& t = st.tiers[i];
    if (t.capacity == 0) continue;
    tiers.push_back({{"tier", cache::TierName(static_cast<cache::Tier>(i))}, {"capacity_bytes", t.capacity},
                     {"used_bytes", t.used_bytes}, {"pinned_bytes", t.pinned_bytes}, {"blocks", t.blocks},
                     {"bytes_served", t.bytes_served}, {"evicted_blocks", t.evicted_blocks}});
  }
  j["tiers"] = tiers;
  json sources = json::object();
  for (const auto& [name, bytes] : st.fetched_bytes_by_source) sources[name] = bytes;
  j["fetched_bytes_by_source"] = sources;
  json pins = json::array(), ttls = json::array();
  for (const cache::PinRule& r : ctx_.pins->pins()) pins.push_back({{"path", "/" + r.path}, {"recursive", r.recursive}});
  for (const cache::TtlRule& t : ctx_.pins->ttls())
    ttls.push_back({{"path", "/" + t.target.path}, {"recursive", t.target.recursive}, {"expires_ms", t.expire_ms}});
  j["pins"] = pins;
  j["ttls"] = ttls;
  if (runtime_ != nullptr) {
    json ps = json::parse(runtime_->StatusJson(), nullptr, false);
    size_t failed = 0;
    for (const json& h : ps.value("hooks", json::array())) failed += h.value("state", "") == "failed";
    j["policy"] = {{"files", ps.value("files", json::array()).size()}, {"failed_hooks", failed},
                   {"last_reload", ps.value("last_reload", json::object())}};
  }
  return j.dump() + "\n";
}

std::string Api::MetricsText() {
  cache::EngineStats st = ctx_.engine->Stats();
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name +
           " " + std::to_string(v) + "\n";
  };
  metric("strata_cache_capacity_bytes", "gauge", "Configured cache size.", st.capacity);
  metric("strata_cache_used_bytes", "gauge", "Bytes of cached blocks on the SSD tier.", st.used_bytes);
  metric("strata_cache_reserved_bytes", "gauge", "Bytes reserved by fetches in flight.", st.reserved_bytes);
  metric("strata_cache_blocks", "gauge", "Cached blocks.", st.blocks);
  metric("strata_inflight_fetches", "gauge", "Block fetches in flight.", st.inflight_fetches);
  metric("strata_read_bytes_total", "counter", "Bytes returned to readers.", st.bytes_read);
  metric("strata_read_cache_bytes_total", "counter", "Bytes returned from the cache.", st.bytes_from_cache);
  metric("strata_fetched_blocks_total", "counter", "Blocks fetched from stores.", st.fetched_blocks);
  metric("strata_fetch_errors_total", "counter", "Block fetches that failed.", st.fetch_errors);
  metric("strata_uncached_fetches_total", "counter", "Blocks served but not kept.", st.uncached_fetches);
  metric("strata_evicted_blocks_total", "counter", "Blocks evicted.", st.evicted_blocks);
  metric("strata_evicted_bytes_total", "counter", "Bytes evicted.", st.evicted_bytes);
  metric("strata_checksum_failures_total", "counter", "Cached blocks that failed verification.",
         st.checksum_failures);
  metric("strata_verified_blocks_total", "counter", "Blocks found at start and checked on their first read.",
         st.verified_blocks);
  metric("strata_scrubbed_blocks_total", "counter", "Blocks checked by the background scrub.", st.scrubbed_blocks);
  out += "# HELP strata_fetched_bytes_total Bytes fetched, by the source that answered.\n"
         "# TYPE strata_fetched_bytes_total counter\n";
  for (const auto& [name, bytes] : st.fetched_bytes_by_source)
    out += "strata_fetched_bytes_total{source=\"" + name + "\"} " + std::to_string(bytes) + "\n";
  metric("strata_cache_pinned_bytes", "gauge", "Bytes of pinned blocks.", st.pinned_bytes);
  metric("strata_promotions_total", "counter", "Blocks moved from the SSD tier to RAM.", st.promotions);
  metric("strata_demotions_total", "counter", "Blocks moved from RAM to the SSD tier.", st.demotions);
  metric("strata_not_admitted_blocks_total", "counter", "Blocks the admission policy kept out.", st.not_admitted);
  out += "# HELP strata_tier_used_bytes Bytes of cached blocks per tier.\n# TYPE strata_tier_used_bytes gauge\n";
  for (int i = 0; i < cache::kTierCount; i++)
    out += std::string("strata_tier_used_bytes{tier=\"") + cache::TierName(static_cast<cache::Tier>(i)) + "\"} " +
           std::to_string(st.tiers[i].used_bytes) + "\n";
  out += "# HELP strata_tier_served_bytes_total Bytes read from each tier.\n# TYPE strata_tier_served_bytes_total counter\n";
  for (int i = 0; i < cache::kTierCount; i++)
    out += std::string("strata_tier_served_bytes_total{tier=\"") + cache::TierName(static_cast<cache::Tier>(i)) + "\"} " +
           std::to_string(st.tiers[i].bytes_served) + "\n";
  cache::WriterStats ws = ctx_.writer->Stats();
  metric("strata_write_pending_files", "gauge", "Committed files waiting for upload.", ws.pending_files);
  metric("strata_write_pending_bytes", "gauge", "Bytes of committed files waiting for upload.", ws.pending_bytes);
  metric("strata_write_oldest_pending_seconds", "gauge", "Age of the oldest change waiting for upload.",
         static_cast<uint64_t>(ws.oldest_pending_ms / 1000));
  metric("strata_write_cache_only_bytes", "gauge", "Bytes written to cache-only mounts (never uploaded).",
         ws.cache_only_bytes);
  metric("strata_write_staged_bytes", "gauge", "Bytes in the staging area.", ws.staged_bytes);
  metric("strata_uploads_total", "counter", "Files uploaded.", ws.uploads);
  metric("strata_uploaded_bytes_total", "counter", "Bytes uploaded.", ws.uploaded_bytes);
  metric("strata_upload_failures_total", "counter", "Upload attempts that failed.", ws.upload_failures);
  metric("strata_streamed_uploads_total", "counter", "Through-mode uploads whose parts were sent while the file was written.",
         ws.streamed_uploads);
  struct Per {
    const char* name;
    const char* help;
    std::function<uint64_t(ufs::Counters&)> get;
  };
  const Per per[] = {
      {"strata_ufs_fetched_bytes_total", "Bytes read from each store.", [](ufs::Counters& c) { return c.bytes_read.load(); }},
      {"strata_ufs_get_requests_total", "Data reads sent to each store.", [](ufs::Counters& c) { return c.get_requests.load(); }},
      {"strata_ufs_head_requests_total", "Attribute requests sent to each store.", [](ufs::Counters& c) { return c.head_requests.load(); }},
      {"strata_ufs_list_requests_total", "Listing requests sent to each store.", [](ufs::Counters& c) { return c.list_requests.load(); }},
      {"strata_ufs_write_requests_total", "Requests that change each store.", [](ufs::Counters& c) { return c.put_requests.load(); }},
      {"strata_ufs_written_bytes_total", "Bytes written to each store.", [](ufs::Counters& c) { return c.bytes_written.load(); }},
      {"strata_ufs_part_copies_total", "Multipart parts copied inside each store (unchanged ranges).", [](ufs::Counters& c) { return c.part_copies.load(); }},
      {"strata_ufs_streamed_parts_total", "Multipart parts sent while their file was still being written.", [](ufs::Counters& c) { return c.streamed_parts.load(); }},
      {"strata_ufs_retries_total", "Requests retried.", [](ufs::Counters& c) { return c.retries.load(); }},
      {"strata_ufs_errors_total", "Requests that failed.", [](ufs::Counters& c) { return c.errors.load(); }},
  };
  for (const Per& p : per) {
    out += std::string("# HELP ") + p.name + " " + p.help + "\n# TYPE " + p.name + " counter\n";
    for (size_t i = 0; i < ctx_.mounts->size(); i++) {
      cache::Mount& m = ctx_.mounts->at(i);
      out += std::string(p.name) + "{mount=\"/" + EscapeLabel(m.path) + "\",uri=\"" +
             EscapeLabel(m.ufs->uri()) + "\"} " + std::to_string(p.get(m.ufs->counters())) + "\n";
    }
  }
  return out;
}

}  // namespace strata::control
