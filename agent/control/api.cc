#include "agent/control/api.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <set>

#include "agent/base/clock.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/base/units.h"
#include "agent/cache/engine.h"
#include "agent/cache/metadata.h"
#include "agent/cache/mounts.h"
#include "agent/cache/pins.h"
#include "agent/cache/writer.h"
#include "agent/gossip/cluster.h"
#include "agent/index/index.h"
#include "agent/peer/peer.h"
#include "agent/policy/runtime.h"
#include "agent/service/cache_service.h"

namespace strata::control {

using nlohmann::json;

namespace {
// One Prometheus metric with its HELP and TYPE lines.
void AppendMetric(std::string* out, const char* name, const char* type, const char* help, uint64_t v) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " +
          std::to_string(v) + "\n";
}

void ReplyJson(const Server::Reply& reply, int code, const json& j) {
  reply(code, "application/json", strata::JsonText(j) + "\n");
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
void ReplyStatus(const Server::Reply& reply, const Status& s, const std::string& prefix = "") {
  ReplyError(reply, HttpCodeOf(s), prefix + s.message());
}

json JobJson(service::LoadJob& job) {
  json j;
  j["id"] = job.id;
  j["path"] = "/" + job.path;
  j["recursive"] = job.recursive;
  j["origin"] = job.origin;
  j["tier"] = job.tier ? cache::TierName(*job.tier) : "ssd";
  j["state"] = !job.finished ? (job.walking ? "listing" : "loading") : (job.files_failed ? "failed" : "done");
  j["files_total"] = job.files_total.load();
  j["files_done"] = job.files_done.load();
  j["files_failed"] = job.files_failed.load();
  j["bytes_total"] = job.bytes_total.load();
  j["bytes_done"] = job.bytes_done.load();
  int64_t end = job.finished ? job.finished_ms.load() : NowUnixMs();
  double secs = std::max<int64_t>(1, end - job.started_ms) / 1000.0;
  j["elapsed_seconds"] = secs;
  j["bytes_per_second"] = job.bytes_done.load() / secs;
  j["errors"] = job.Errors();
  return j;
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

bool Recursive(const HttpRequest& req) { return req.query.count("recursive") && req.query.at("recursive") != "0"; }

}  // namespace

const Api::Route Api::kRoutes[] = {
    {"GET", "/metrics", &Api::Metrics},
    {"GET", "/healthz", &Api::Health},
    {"GET", "/readyz", &Api::Readiness},
    {"GET", "/status", &Api::StatusPage},
    {"GET", "/status.json", &Api::StatusPageData},
    {"GET", "/v1/info", &Api::Info},
    {"GET", "/v1/stat", &Api::Stat},
    {"POST", "/v1/load", &Api::Load},
    {"GET", "/v1/jobs/", &Api::JobStatus},
    {"POST", "/v1/evict", &Api::Evict},
    {"POST", "/v1/flush", &Api::Flush},
    {"POST", "/v1/pin", &Api::Pin},
    {"POST", "/v1/unpin", &Api::Unpin},
    {"POST", "/v1/ttl", &Api::Ttl},
    {"POST", "/v1/policy/reload", &Api::PolicyReload},
    {"GET", "/v1/policy/status", &Api::PolicyStatus},
    {"POST", "/v1/clock", &Api::MoveClock},
    {"GET", "/v1/members", &Api::Members},
    {"GET", "/v1/keys", &Api::Keys},
    {"POST", "/v1/keys", &Api::KeyOp},
    {"GET", "/v1/owner", &Api::Owner},
};

Api::Api(ApiContext ctx) : ctx_(std::move(ctx)), workers_(std::make_unique<ThreadPool>(4, "strata-ctl")) {}

Api::~Api() { Shutdown(); }

void Api::Shutdown() { workers_.reset(); }

void Api::Handle(const HttpRequest& req, Server::Reply reply) {
  bool known_path = false;
  for (const Route& r : kRoutes) {
    size_t n = std::strlen(r.path);
    bool match = r.path[n - 1] == '/' ? req.path.compare(0, n, r.path) == 0 && req.path.size() > n : req.path == r.path;
    if (!match) continue;
    known_path = true;
    if (req.method == r.method) return (this->*r.handler)(req, reply);
  }
  if (known_path) return ReplyError(reply, 405, "method " + req.method + " not allowed on " + req.path);
  ReplyError(reply, 404, "no such endpoint: " + req.path);
}

bool Api::PathParam(const HttpRequest& req, const Server::Reply& reply, std::string* out) {
  auto it = req.query.find("path");
  Result<std::string> r =
      service::CacheService::ResolveUserPath(ctx_.mount_point, it == req.query.end() ? "" : it->second);
  if (!r.ok()) {
    ReplyError(reply, 400, r.status().message());
    return false;
  }
  *out = *r;
  return true;
}

void Api::Metrics(const HttpRequest&, const Server::Reply& reply) {
  reply(200, "text/plain; version=0.0.4", MetricsText());
}

// Liveness (Kubernetes' livenessProbe, load balancers): the mount and the
// event loop answered recently. Readiness: besides, the first check passed.
void Api::Health(const HttpRequest&, const Server::Reply& reply) {
  if (!healthy_ || healthy_()) return reply(200, "text/plain", "ok\n");
  reply(503, "text/plain", "unhealthy: the mount or the event loop has not answered the last health checks\n");
}

void Api::Readiness(const HttpRequest&, const Server::Reply& reply) {
  if (ready_ && !ready_()) return reply(503, "text/plain", "not ready: the mount does not answer yet\n");
  Health(HttpRequest{}, reply);
}

namespace {
// The status page's figures of one moment.
StatusHistory::Sample SampleOf(const cache::EngineStats& st, int64_t unix_ms) {
  StatusHistory::Sample s{unix_ms, st.bytes_read, st.bytes_from_cache, 0, 0};
  for (const auto& [name, bytes] : st.fetched_bytes_by_source) (name == "peer" ? s.bytes_from_peers : s.bytes_from_store) += bytes;
  return s;
}
}  // namespace

void Api::Sample() { history_.Add(SampleOf(ctx_.engine->Stats(), NowUnixMs())); }

void Api::StatusPage(const HttpRequest&, const Server::Reply& reply) {
  reply(200, "text/html; charset=utf-8", StatusPageHtml());
}

// What the status page shows: figures, no file names (log lines are
// shortened unless --status-show-paths).
void Api::StatusPageData(const HttpRequest&, const Server::Reply& reply) {
  cache::EngineStats st = ctx_.engine->Stats();
  json tiers = json::array();
  for (int i = 0; i < cache::kTierCount; i++) {
    const cache::TierStats& t = st.tiers[i];
    if (t.capacity == 0) continue;
    tiers.push_back({{"tier", cache::TierName(static_cast<cache::Tier>(i))}, {"capacity_bytes", t.capacity},
                     {"used_bytes", t.used_bytes}, {"hits", t.hits}});
  }
  json sources = json::array({{{"source", "cache"}, {"bytes", st.bytes_from_cache}}});
  for (const auto& [name, bytes] : st.fetched_bytes_by_source) sources.push_back({{"source", name}, {"bytes", bytes}});
  cache::WriterStats ws = ctx_.writer->Stats();
  json members = json::array();
  if (ctx_.cluster != nullptr)
    for (const gossip::Member& m : ctx_.cluster->membership().Members())
      members.push_back({{"name", m.name}, {"address", m.addr}, {"state", gossip::StateName(m.state)},
                         {"self", m.name == ctx_.cluster->name()}});
  json schedules = json::array();
  if (ctx_.runtime != nullptr) {
    json ps = json::parse(ctx_.runtime->StatusJson(), nullptr, false);
    for (const json& j : ps.value("schedules", json::array()))
      schedules.push_back({{"file", j.value("file", "")}, {"spec", j.value("spec", "")},
                           {"next_run", j.value("next_run", "")}, {"last_result", j.value("last_result", "")}});
  }
  json stores = json::array();
  for (size_t i = 0; i < ctx_.mounts->size(); i++) {
    cache::Mount& m = ctx_.mounts->at(i);
    stores.push_back({{"path", "/" + m.path}, {"uri", m.ufs->uri()}, {"online", m.offline_until_ms.load() <= NowUnixMs()},
                      {"retries", m.ufs->counters().retries.load()}, {"errors", m.ufs->counters().errors.load()}});
  }
  json errors = json::array();
  for (const log::Entry& e : log::RecentProblems())
    errors.push_back({{"unix_ms", e.unix_ms}, {"level", e.level == log::Level::kError ? "error" : "warn"},
                      {"text", ctx_.status_paths ? e.text : RedactPaths(e.text)}});
  json history = json::array();
  std::vector<StatusHistory::Sample> samples = history_.Samples();
  // The chart ends now, not at the last stored sample.
  StatusHistory::Sample now = SampleOf(st, NowUnixMs());
  if (samples.empty() || now.unix_ms > samples.back().unix_ms) samples.push_back(now);
  for (const StatusHistory::Sample& s : samples)
    history.push_back({{"unix_ms", s.unix_ms}, {"bytes_read", s.bytes_read}, {"bytes_from_cache", s.bytes_from_cache},
                       {"bytes_from_store", s.bytes_from_store}, {"bytes_from_peers", s.bytes_from_peers}});
  json j = {{"version", STRATA_VERSION},
            {"mount_point", ctx_.mount_point},
            {"healthy", !healthy_ || healthy_()},
            {"hit_ratio", HitRatio(st)},
            {"bytes_read", st.bytes_read},
            {"tiers", tiers},
            {"sources", sources},
            {"uploads", {{"pending_files", ws.pending_files}, {"pending_bytes", ws.pending_bytes},
                         {"oldest_pending_s", ws.oldest_pending_ms / 1000}, {"failing_files", ws.failing_files},
                         {"uploaded_bytes", ws.uploaded_bytes}}},
            {"cluster", ctx_.cluster != nullptr},
            {"members", members},
            {"schedules", schedules},
            {"stores", stores},
            {"recent_errors", errors},
            {"history", history}};
  ReplyJson(reply, 200, j);
}

void Api::Info(const HttpRequest&, const Server::Reply& reply) {
  json mounts = json::array();
  for (size_t i = 0; i < ctx_.mounts->size(); i++)
    mounts.push_back({{"path", "/" + ctx_.mounts->at(i).path}, {"uri", ctx_.mounts->at(i).ufs->uri()}});
  ReplyJson(reply, 200, {{"mount_point", ctx_.mount_point}, {"block_size", ctx_.block_size}, {"mounts", mounts}});
}

void Api::Stat(const HttpRequest& req, const Server::Reply& reply) {
  if (!req.query.count("path")) return reply(200, "application/json", StatJson());
  std::string path;
  if (!PathParam(req, reply, &path)) return;
  bool req_cluster = req.query.count("cluster") > 0;
  if (req_cluster && !InCluster(reply)) return;
  workers_->Submit([this, path, reply, req_cluster] {
    Result<index::FileMeta> m = ctx_.meta->Stat(path);
    if (!m.ok()) return ReplyStatus(reply, m.status());
    auto file_row = [this](const index::FileMeta& f) {
      cache::Engine::FileCache fc = ctx_.engine->CachedOf(f.file_id);
      uint64_t nblocks = (f.size + ctx_.block_size - 1) / ctx_.block_size;
      return json{{"path", "/" + f.path}, {"type", "file"}, {"size", f.size}, {"etag", f.etag},
                  {"mtime_ns", f.mtime_ns}, {"cached_bytes", fc.bytes},
                  {"cached_percent", f.size ? 100.0 * fc.bytes / f.size : 100.0},
                  {"blocks_cached", fc.blocks}, {"blocks_total", nblocks}};
    };
    if (!m->is_dir && req_cluster) {
      json row = file_row(*m);
      row["members"] = ClusterCached(*m, false);
      return ReplyJson(reply, 200, row);
    }
    if (!m->is_dir) return ReplyJson(reply, 200, file_row(*m));
    Result<std::vector<index::DirEntry>> entries = ctx_.meta->List(path);
    if (!entries.ok()) return ReplyStatus(reply, entries.status());
    json files = json::array();
    uint64_t size = 0, cached = 0, dirs = 0;
    std::map<std::string, json> by_member;  // --cluster: the directory's files summed per member
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
      if (req_cluster) {
        for (const json& mr : ClusterCached(*fm, false)) {
          json& sum = by_member[mr["name"].get<std::string>()];
          if (sum.is_null()) sum = {{"name", mr["name"]}, {"state", mr["state"]}, {"cached_bytes", 0}, {"blocks_cached", 0}};
          if (mr.contains("error")) {
            sum["error"] = mr["error"];
            continue;
          }
          sum["cached_bytes"] = sum["cached_bytes"].get<uint64_t>() + mr["cached_bytes"].get<uint64_t>();
          sum["blocks_cached"] = sum["blocks_cached"].get<uint64_t>() + mr["blocks_cached"].get<uint64_t>();
        }
      }
      files.push_back(std::move(row));
    }
    json out = {{"path", "/" + path}, {"type", "directory"}, {"directories", dirs},
                {"size", size}, {"cached_bytes", cached},
                {"cached_percent", size ? 100.0 * cached / size : 100.0}, {"files", files}};
    if (req_cluster) {
      json members = json::array();
      for (auto& [name, sum] : by_member) {
        if (!sum.contains("error"))
          sum["cached_percent"] = size ? 100.0 * sum["cached_bytes"].get<uint64_t>() / size : 100.0;
        members.push_back(sum);
      }
      out["members"] = members;
    }
    ReplyJson(reply, 200, out);
  });
}

void Api::Load(const HttpRequest& req, const Server::Reply& reply) {
  std::string path;
  if (!PathParam(req, reply, &path)) return;
  std::optional<cache::Tier> tier;
  if (auto it = req.query.find("tier"); it != req.query.end()) {
    tier = cache::ParseTier(it->second);
    if (!tier) return ReplyError(reply, 400, "bad tier '" + it->second + "': mem or ssd");
    if (*tier == cache::Tier::kMem && !ctx_.engine->has_mem_tier())
      return ReplyError(reply, 400, "there is no RAM tier (start the agent with --mem-size)");
  }
  bool cluster = req.query.count("cluster") > 0;
  if (cluster && !InCluster(reply)) return;
  ReplyJson(reply, 202, {{"job", ctx_.service->StartLoad(path, Recursive(req), tier, "agentctl", cluster)}});
}

void Api::JobStatus(const HttpRequest& req, const Server::Reply& reply) {
  std::string id = req.path.substr(std::strlen("/v1/jobs/"));
  std::shared_ptr<service::LoadJob> job = ctx_.service->Job(std::strtoull(id.c_str(), nullptr, 10));
  if (!job) return ReplyError(reply, 404, "no job " + id);
  ReplyJson(reply, 200, JobJson(*job));
}

void Api::Evict(const HttpRequest& req, const Server::Reply& reply) {
  std::string path;
  if (!PathParam(req, reply, &path)) return;
  workers_->Submit([this, path, recursive = Recursive(req), reply] {
    Result<cache::EvictResult> r = ctx_.service->EvictPath(path, recursive);
    if (!r.ok()) return ReplyStatus(reply, r.status());
    ReplyJson(reply, 200, {{"path", "/" + path}, {"files", r->files}, {"blocks", r->blocks}, {"bytes", r->bytes},
                           {"pinned_blocks", r->pinned_blocks}});
  });
}

void Api::Flush(const HttpRequest& req, const Server::Reply& reply) {
  std::string path;
  if (!PathParam(req, reply, &path)) return;
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
    if (!s.ok()) return ReplyStatus(reply, s, "flush /" + path + ": ");
    ReplyJson(reply, 200, {{"path", "/" + path}, {"files", files}});
  });
}

void Api::Pin(const HttpRequest& req, const Server::Reply& reply) {
  std::string path;
  if (!PathParam(req, reply, &path)) return;
  workers_->Submit([this, path, recursive = Recursive(req), reply] {
    uint64_t bytes = 0;
    Result<uint64_t> job = ctx_.service->PinAndLoad(path, recursive, &bytes);
    if (!job.ok()) return ReplyStatus(reply, job.status());
    ReplyJson(reply, 200, {{"path", "/" + path}, {"recursive", recursive}, {"bytes", bytes}, {"job", *job}});
  });
}

void Api::Unpin(const HttpRequest& req, const Server::Reply& reply) {
  std::string path;
  if (!PathParam(req, reply, &path)) return;
  Status s = ctx_.service->UnpinPath(path);
  if (!s.ok()) return ReplyStatus(reply, s);
  ReplyJson(reply, 200, {{"path", "/" + path}});
}

void Api::Ttl(const HttpRequest& req, const Server::Reply& reply) {
  std::string path;
  if (!PathParam(req, reply, &path)) return;
  std::string ttl = req.query.count("ttl") ? req.query.at("ttl") : "";
  int64_t ms = 0;
  if (ttl != "off" && ttl != "0") {
    Result<uint64_t> d = ParseDurationMs(ttl);
    if (!d.ok()) return ReplyError(reply, 400, "bad ttl '" + ttl + "': " + d.status().message() + " (or off)");
    ms = static_cast<int64_t>(*d);
  }
  Status s = ctx_.service->SetTtl(path, Recursive(req), ms);
  if (!s.ok()) return ReplyStatus(reply, s);
  ReplyJson(reply, 200, {{"path", "/" + path}, {"expires", ms ? ctx_.clock->NowMs() + ms : 0}});
}

void Api::PolicyReload(const HttpRequest&, const Server::Reply& reply) {
  if (ctx_.runtime == nullptr) return ReplyError(reply, 503, "the policy runtime is not running");
  Status s = ctx_.runtime->Reload();
  if (!s.ok()) return ReplyError(reply, 422, "reload refused, the policies in force stay in force: " + s.message());
  reply(200, "application/json", ctx_.runtime->StatusJson() + "\n");
}

void Api::PolicyStatus(const HttpRequest&, const Server::Reply& reply) {
  if (ctx_.runtime == nullptr) return ReplyError(reply, 503, "the policy runtime is not running");
  reply(200, "application/json", ctx_.runtime->StatusJson() + "\n");
}

void Api::MoveClock(const HttpRequest& req, const Server::Reply& reply) {
  if (ctx_.test_clock == nullptr)
    return ReplyError(reply, 403, "the clock can only be moved when the agent runs with --test-clock");
  std::string adv = req.query.count("advance") ? req.query.at("advance") : "";
  Result<uint64_t> d = ParseDurationMs(adv);
  if (!d.ok()) return ReplyError(reply, 400, "bad advance '" + adv + "': " + d.status().message());
  ctx_.test_clock->Advance(static_cast<int64_t>(*d));
  if (ctx_.runtime != nullptr) ctx_.runtime->Tick();
  ReplyJson(reply, 200, {{"now_ms", ctx_.test_clock->NowMs()}});
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
    for (const auto& job : ctx_.service->RunningJobs()) jobs.push_back(JobJson(*job));
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
      {"misses", st.misses},
      {"fetch_errors", st.fetch_errors},
      {"uncached_fetches", st.uncached_fetches},
      {"evicted_blocks", st.evicted_blocks},
      {"evicted_bytes", st.evicted_bytes},
      {"checksum_failures", st.checksum_failures},
      {"block_file_errors", st.block_file_errors},
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
                     {"bytes_served", t.bytes_served}, {"evicted_blocks", t.evicted_blocks}, {"hits", t.hits}});
  }
  j["tiers"] = tiers;
  json sources = json::object();
  for (const auto& [name, bytes] : st.fetched_bytes_by_source) sources[name] = bytes;
  j["fetched_bytes_by_source"] = sources;
  json pins = json::array(), ttls = json::array();
  for (const cache::PinRule& r : ctx_.service->pins()->pins()) pins.push_back({{"path", "/" + r.path}, {"recursive", r.recursive}});
  for (const cache::TtlRule& t : ctx_.service->pins()->ttls())
    ttls.push_back({{"path", "/" + t.target.path}, {"recursive", t.target.recursive}, {"expires_ms", t.expire_ms}});
  j["pins"] = pins;
  j["ttls"] = ttls;
  if (gateway::Gateway* gw = gateway_.load(); gw != nullptr) {
    gateway::GatewayStats gs = gw->Stats();
    json ops = json::object();
    for (const auto& [name, o] : gs.ops)
      ops[name] = {{"requests", o.requests}, {"errors", o.errors}, {"bytes_in", o.bytes_in}, {"bytes_out", o.bytes_out},
                   {"seconds", o.latency.sum_s}};
    json codes = json::object();
    for (const auto& [code, n] : gs.errors_by_code) codes[code] = n;
    j["gateway"] = {{"port", gw->port()}, {"operations", ops}, {"errors_by_code", codes}};
  }
  if (ctx_.runtime != nullptr) {
    json ps = json::parse(ctx_.runtime->StatusJson(), nullptr, false);
    size_t failed = 0;
    for (const json& h : ps.value("hooks", json::array())) failed += h.value("state", "") == "failed";
    j["policy"] = {{"files", ps.value("files", json::array()).size()}, {"failed_hooks", failed},
                   {"last_reload", ps.value("last_reload", json::object())}};
  }
  return strata::JsonText(j) + "\n";
}

std::string Api::MetricsText() {
  cache::EngineStats st = ctx_.engine->Stats();
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help, uint64_t v) {
    AppendMetric(&out, name, type, help, v);
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
  out += "# HELP strata_evicted_blocks_total Blocks evicted, by reason: space (to make room), requested (agentctl "
         "evict, TTLs, policies).\n# TYPE strata_evicted_blocks_total counter\n";
  out += "strata_evicted_blocks_total{reason=\"space\"} " + std::to_string(st.evicted_for_space) + "\n";
  out += "strata_evicted_blocks_total{reason=\"requested\"} " + std::to_string(st.evicted_blocks - st.evicted_for_space) +
         "\n";
  metric("strata_evicted_bytes_total", "counter", "Bytes evicted.", st.evicted_bytes);
  metric("strata_checksum_failures_total", "counter", "Cached blocks that failed verification.",
         st.checksum_failures);
  metric("strata_block_file_errors_total", "counter",
         "Cached block files that could not be read (disk errors, cut short): dropped and fetched again.",
         st.block_file_errors);
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
  out += "# HELP strata_cache_hits_total Block reads answered from each tier.\n# TYPE strata_cache_hits_total counter\n";
  for (int i = 0; i < cache::kTierCount; i++)
    out += std::string("strata_cache_hits_total{tier=\"") + cache::TierName(static_cast<cache::Tier>(i)) + "\"} " +
           std::to_string(st.tiers[i].hits) + "\n";
  metric("strata_cache_misses_total", "counter", "Block reads that waited for a fetch (from a peer or the store).",
         st.misses);
  out += "# HELP strata_fetch_seconds Block fetch latency (request to last byte), by the source that answered.\n"
         "# TYPE strata_fetch_seconds histogram\n";
  for (const auto& [name, h] : st.fetch_latency_by_source)
    h.AppendPrometheus(&out, "strata_fetch_seconds", "source=\"" + name + "\"");
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
  out += PolicyMetrics();
  out += ClusterMetrics();
  out += GatewayMetrics();
  out += "# HELP strata_healthy Whether the last health checks passed (the mount and the event loop answered).\n"
         "# TYPE strata_healthy gauge\nstrata_healthy " + std::string(!healthy_ || healthy_() ? "1" : "0") + "\n";
  out += "# HELP strata_build_info The agent's version.\n# TYPE strata_build_info gauge\n"
         "strata_build_info{version=\"" STRATA_VERSION "\"} 1\n";
  return out;
}

// --- cluster ---

bool Api::InCluster(const Server::Reply& reply) {
  if (ctx_.cluster != nullptr) return true;
  ReplyError(reply, 409, "this agent is not in a cluster (start it with --cluster-key-file and --join)");
  return false;
}

void Api::Members(const HttpRequest&, const Server::Reply& reply) {
  if (!InCluster(reply)) return;
  gossip::Membership& m = ctx_.cluster->membership();
  gossip::MembershipStats st = m.Stats();
  json members = json::array();
  for (const gossip::Member& mm : m.Members()) {
    bool self = mm.name == ctx_.cluster->name();
    members.push_back({{"name", mm.name},
                       {"address", mm.addr},
                       {"state", gossip::StateName(mm.state)},
                       {"incarnation", mm.incarnation},
                       {"health", self ? st.awareness : 0},
                       {"capacity", mm.meta.capacity},
                       {"used", mm.meta.used},
                       {"serves", mm.meta.serves != 0},
                       {"self", self},
                       {"rtt_ms", mm.rtt_ms}});
  }
  ReplyJson(reply, 200, {{"members", members}});
}

void Api::Keys(const HttpRequest&, const Server::Reply& reply) {
  if (!InCluster(reply)) return;
  std::vector<std::string> keys = ctx_.cluster->keyring().List();
  ReplyJson(reply, 200, {{"primary", keys.empty() ? "" : keys[0]}, {"keys", keys}});
}

void Api::KeyOp(const HttpRequest& req, const Server::Reply& reply) {
  if (!InCluster(reply)) return;
  auto op = req.query.find("op"), key = req.query.find("key");
  if (op == req.query.end() || key == req.query.end()) return ReplyError(reply, 400, "need ?op=install|use|remove&key=");
  bool local = req.query.count("local") > 0;
  gossip::Cluster* cluster = ctx_.cluster;
  std::string o = op->second, k = key->second;
  workers_->Submit([cluster, o, k, local, reply] {
    std::map<std::string, std::string> results = cluster->KeyOp(o, k, !local);
    json members = json::object();
    size_t failed = 0;
    for (auto& [name, err] : results) {
      members[name] = err.empty() ? "ok" : err;
      if (!err.empty()) failed++;
    }
    ReplyJson(reply, failed ? 500 : 200, {{"op", o}, {"members", members}, {"failed", failed},
                                          {"error", failed ? std::to_string(failed) + " member(s) refused or did not answer" : ""}});
  });
}

void Api::Owner(const HttpRequest& req, const Server::Reply& reply) {
  if (!InCluster(reply)) return;
  std::string path;
  if (!PathParam(req, reply, &path)) return;
  workers_->Submit([this, path, reply] {
    Result<index::FileMeta> m = ctx_.meta->Stat(path);
    if (!m.ok()) return ReplyError(reply, 404, m.status().message());
    if (m->is_dir) return ReplyError(reply, 400, "/" + path + " is a directory: owners are per block of a file");
    cache::FileRef ref = ctx_.meta->RefOf(*m);
    std::vector<peer::Candidate> cands = peer::OwnerCandidates(ctx_.cluster->membership());
    const uint64_t bs = ctx_.block_size, blocks = (m->size + bs - 1) / bs;
    // What each member holds: does the owner have its blocks?
    std::map<std::string, std::set<uint64_t>> held;
    json members = ClusterCached(*m, true, &held);
    json ranges = json::array();
    std::string cur;
    uint64_t from = 0;
    auto flush = [&](uint64_t to) {
      if (to <= from) return;
      uint64_t have = 0;
      for (uint64_t b = from; b < to; b++) have += held[cur].count(b);
      ranges.push_back({{"first_block", from}, {"last_block", to - 1}, {"owner", cur}, {"owner_has", have},
                        {"blocks", to - from}});
    };
    for (uint64_t b = 0; b < blocks; b++) {
      cache::ContentKey key{ref.store_uri, ref.ufs_path, ref.etag, ref.size, static_cast<uint32_t>(bs), b};
      std::vector<const peer::Candidate*> ranked = peer::RankOwners(key.Hash(), cands);
      std::string owner = ranked.empty() ? ctx_.cluster->name() : ranked[0]->name;
      if (owner != cur) {
        flush(b);
        cur = owner;
        from = b;
      }
    }
    flush(blocks);
    ReplyJson(reply, 200, {{"path", "/" + path}, {"etag", m->etag}, {"blocks", blocks}, {"ranges", ranges},
                           {"self", ctx_.cluster->name()}, {"members", members}});
  });
}

json Api::ClusterCached(const index::FileMeta& m, bool list, std::map<std::string, std::set<uint64_t>>* held) {
  cache::FileRef ref = ctx_.meta->RefOf(m);
  peer::CachedQuery q{ref.store_uri, ref.ufs_path, ref.etag, ref.size};
  json out = json::array();
  std::vector<gossip::Member> members = ctx_.cluster->membership().Members();
  std::vector<std::future<Result<peer::CachedAnswer>>> answers;
  for (const gossip::Member& mm : members) {
    if (mm.name == ctx_.cluster->name()) {
      std::promise<Result<peer::CachedAnswer>> p;
      cache::Engine::FileCache fc = ctx_.engine->CachedOf(m.file_id, list);
      peer::CachedAnswer a;
      a.blocks = fc.blocks;
      a.bytes = fc.bytes;
      a.indexes = std::move(fc.indexes);
      p.set_value(std::move(a));
      answers.push_back(p.get_future());
    } else if (mm.state == gossip::State::kAlive && ctx_.peers != nullptr) {
      answers.push_back(std::async(std::launch::async, [this, addr = mm.addr, q] { return ctx_.peers->QueryCached(addr, q); }));
    } else {
      std::promise<Result<peer::CachedAnswer>> p;
      p.set_value(Status::Unavailable(std::string("member is ") + gossip::StateName(mm.state)));
      answers.push_back(p.get_future());
    }
  }
  for (size_t i = 0; i < members.size(); i++) {
    Result<peer::CachedAnswer> a = answers[i].get();
    json row = {{"name", members[i].name}, {"state", gossip::StateName(members[i].state)}};
    if (!a.ok()) {
      row["error"] = a.status().message();
    } else if (a->code != peer::ReplyCode::kOk) {
      row["error"] = a->code == peer::ReplyCode::kStale ? "holds another version" : "does not mount that store";
    } else {
      row["cached_bytes"] = a->bytes;
      row["blocks_cached"] = a->blocks;
      row["cached_percent"] = m.size ? 100.0 * a->bytes / m.size : 100.0;
      if (held != nullptr) (*held)[members[i].name].insert(a->indexes.begin(), a->indexes.end());
    }
    out.push_back(row);
  }
  return out;
}

std::string Api::PolicyMetrics() {
  if (ctx_.runtime == nullptr) return "";
  json ps = json::parse(ctx_.runtime->StatusJson(), nullptr, false);
  if (ps.is_discarded()) return "";
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help, uint64_t v) {
    AppendMetric(&out, name, type, help, v);
  };
  uint64_t runs = 0, failures = 0, failed_hooks = 0;
  std::map<std::string, uint64_t> calls = {{"on_admit", 0}, {"on_evict", 0}, {"on_access", 0}};
  for (const json& s : ps.value("schedules", json::array())) {
    runs += s.value("runs", uint64_t{0});
    failures += s.value("failures", uint64_t{0});
  }
  for (const json& h : ps.value("hooks", json::array())) {
    calls[h.value("hook", "")] += h.value("calls", uint64_t{0});
    failed_hooks += h.value("state", "") == "failed";
  }
  metric("strata_policy_reloads_total", "counter", "Policy reloads (SIGHUP, agentctl policy reload).",
         ps.value("reloads", uint64_t{0}));
  metric("strata_policy_failed_reloads_total", "counter", "Reloads refused (the policies in force stayed).",
         ps.value("failed_reloads", uint64_t{0}));
  metric("strata_policy_schedule_runs_total", "counter", "Scheduled policy jobs run (since the last reload).", runs);
  metric("strata_policy_schedule_failures_total", "counter", "Scheduled policy jobs that failed (since the last reload).",
         failures);
  out += "# HELP strata_policy_hook_calls_total Policy hook calls, by hook (since the last reload).\n"
         "# TYPE strata_policy_hook_calls_total counter\n";
  for (const auto& [hook, n] : calls)
    out += "strata_policy_hook_calls_total{hook=\"" + hook + "\"} " + std::to_string(n) + "\n";
  metric("strata_policy_failed_hooks", "gauge", "Hooks turned off after an error (the built-in rule serves).",
         failed_hooks);
  metric("strata_policy_hook_timeouts_total", "counter", "Admission and eviction decisions that ran out of time.",
         ps.value("admit_timeouts", uint64_t{0}) + ps.value("evict_timeouts", uint64_t{0}));
  return out;
}

std::string Api::GatewayMetrics() {
  gateway::Gateway* gw = gateway_.load();
  if (gw == nullptr) return "";
  gateway::GatewayStats gs = gw->Stats();
  std::string out;
  auto family = [&out](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto labelled = [&](const char* name, const char* type, const char* help, auto value) {
    family(name, type, help);
    for (const auto& [op, o] : gs.ops) out += std::string(name) + "{op=\"" + op + "\"} " + std::to_string(value(o)) + "\n";
  };
  labelled("strata_gateway_requests_total", "counter", "Gateway requests, by operation.",
           [](const gateway::OpStats& o) { return o.requests; });
  labelled("strata_gateway_request_errors_total", "counter", "Gateway requests answered with an error, by operation.",
           [](const gateway::OpStats& o) { return o.errors; });
  labelled("strata_gateway_received_bytes_total", "counter", "Object bytes received by the gateway, by operation.",
           [](const gateway::OpStats& o) { return o.bytes_in; });
  labelled("strata_gateway_sent_bytes_total", "counter", "Body bytes sent by the gateway, by operation.",
           [](const gateway::OpStats& o) { return o.bytes_out; });
  family("strata_gateway_errors_total", "counter", "Gateway error answers, by S3 error code.");
  for (const auto& [code, n] : gs.errors_by_code)
    out += "strata_gateway_errors_total{code=\"" + code + "\"} " + std::to_string(n) + "\n";
  family("strata_gateway_request_seconds", "histogram", "Gateway request latency, by operation.");
  for (const auto& [op, o] : gs.ops) o.latency.AppendPrometheus(&out, "strata_gateway_request_seconds", "op=\"" + op + "\"");
  return out;
}

std::string Api::ClusterMetrics() {
  if (ctx_.cluster == nullptr) return "";
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help, uint64_t v) {
    AppendMetric(&out, name, type, help, v);
  };
  gossip::Membership& m = ctx_.cluster->membership();
  uint64_t by_state[4] = {};
  for (const gossip::Member& mm : m.Members()) by_state[static_cast<int>(mm.state)]++;
  out += "# HELP strata_cluster_members Members known, by state.\n# TYPE strata_cluster_members gauge\n";
  for (int i = 0; i < 4; i++)
    out += std::string("strata_cluster_members{state=\"") + gossip::StateName(static_cast<gossip::State>(i)) + "\"} " +
           std::to_string(by_state[i]) + "\n";
  gossip::MembershipStats st = m.Stats();
  gossip::ClusterStats cs = ctx_.cluster->Stats();
  metric("strata_cluster_probes_total", "counter", "Direct probes sent.", st.probes);
  metric("strata_cluster_probe_failures_total", "counter", "Probes that got no ack, direct or indirect.", st.probe_failures);
  metric("strata_cluster_indirect_probes_total", "counter", "Indirect probe requests sent.", st.indirect_probes);
  metric("strata_cluster_suspicions_total", "counter", "Members this agent marked suspect.", st.suspicions);
  metric("strata_cluster_refutations_total", "counter", "Suspicions of this agent it refuted.", st.refutations);
  metric("strata_cluster_deaths_total", "counter", "Members marked dead.", st.deaths);
  metric("strata_cluster_health_score", "gauge", "Local health (Lifeguard awareness; 0 is healthy).",
         static_cast<uint64_t>(st.awareness));
  metric("strata_cluster_gossip_packets_received_total", "counter", "Gossip packets received.", st.packets_in);
  metric("strata_cluster_gossip_packets_sent_total", "counter", "Gossip packets sent.", st.packets_out);
  metric("strata_cluster_gossip_received_bytes_total", "counter", "Gossip bytes received (plaintext).", st.bytes_in);
  metric("strata_cluster_gossip_sent_bytes_total", "counter", "Gossip bytes sent (plaintext).", st.bytes_out);
  metric("strata_cluster_malformed_packets_total", "counter", "Packets that opened but did not decode.", st.malformed);
  metric("strata_cluster_rejected_packets_total", "counter", "Packets no installed key opens.", cs.rejected_packets);
  metric("strata_cluster_rejected_streams_total", "counter", "Streams refused (no key, bad frame).", cs.rejected_streams);
  metric("strata_cluster_push_pulls_total", "counter", "State exchanges over TCP.", cs.push_pulls);
  if (ctx_.peers != nullptr) {
    peer::PeerStats ps = ctx_.peers->Stats();
    metric("strata_peer_hits_total", "counter", "Blocks a peer served.", ps.hits);
    metric("strata_peer_misses_total", "counter", "Blocks the owner could not serve (error, timeout).", ps.misses);
    metric("strata_peer_stale_total", "counter", "Blocks the owner held in another version.", ps.stale);
    metric("strata_peer_timeouts_total", "counter", "Peer requests that timed out.", ps.timeouts);
    metric("strata_peer_local_owner_blocks_total", "counter", "Missed blocks this agent owns (to the store).", ps.local_owner);
    metric("strata_peer_fetched_bytes_total", "counter", "Bytes fetched from peers.", ps.bytes_from_peers);
    out += "# HELP strata_peer_fetch_seconds Peer block fetch latency.\n# TYPE strata_peer_fetch_seconds histogram\n";
    ps.latency.AppendPrometheus(&out, "strata_peer_fetch_seconds", "");
  }
  if (ctx_.peer_server != nullptr) {
    peer::PeerStats ss = ctx_.peer_server->Stats();
    metric("strata_peer_served_bytes_total", "counter", "Bytes served to other agents.", ss.bytes_served);
    metric("strata_peer_served_requests_total", "counter", "Block requests answered for other agents.", ss.requests_served);
  }
  return out;
}

}  // namespace strata::control
