#include "agent/policy/runtime.h"

#include <uv.h>
#include <lua.hpp>
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/base/clock.h"
#include "agent/base/json.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/base/units.h"
#include "agent/policy/cron.h"

namespace strata::policy {

using nlohmann::json;

namespace {

struct HookRef {
  std::string file;
  int line = 0;
  int ref = LUA_NOREF;
  bool failed = false;
  std::string error;
  uint64_t calls = 0;
};

struct JobRef {
  std::string file;
  int line = 0;
  Schedule schedule;
  int ref = LUA_NOREF;
  int64_t next_s = -1;
  int64_t last_run_ms = 0;
  double last_seconds = 0;
  bool last_ok = true;
  std::string last_error;
  uint64_t runs = 0, failures = 0;
};

// An action a file called while loading: run once the reload is in force.
struct Deferred {
  std::string where;  // file:line
  std::string what;   // "pin /ref (recursive)"
  std::function<Status(Host*)> run;
};

std::string Where(lua_State* L) {
  lua_Debug ar;
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
    return std::string(ar.short_src) + ":" + std::to_string(ar.currentline);
  return "?";
}

std::pair<std::string, int> SplitWhere(const std::string& w) {
  size_t colon = w.rfind(':');
  if (colon == std::string::npos) return {w, 0};
  return {w.substr(0, colon), std::atoi(w.c_str() + colon + 1)};
}

bool OptBool(lua_State* L, int opts, const char* key) {
  if (lua_type(L, opts) != LUA_TTABLE) return false;
  lua_getfield(L, opts, key);
  bool v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

std::string OptString(lua_State* L, int opts, const char* key) {
  if (lua_type(L, opts) != LUA_TTABLE) return "";
  lua_getfield(L, opts, key);
  std::string v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
  lua_pop(L, 1);
  return v;
}

// A duration given as seconds (number) or text ("7d", "15m") into *ms; -1
// when absent. False, with *err set, when it is neither.
bool DurationAt(lua_State* L, int idx, const char* what, int64_t* ms, std::string* err) {
  *ms = -1;
  int t = lua_type(L, idx);
  if (t == LUA_TNONE || t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, idx))) return true;
  if (t == LUA_TNUMBER) {
    double secs = lua_tonumber(L, idx);
    if (!(secs >= 0)) return *err = std::string(what) + ": a duration must not be negative", false;
    *ms = static_cast<int64_t>(secs * 1000);
    return true;
  }
  if (t == LUA_TSTRING) {
    Result<uint64_t> d = ParseDurationMs(lua_tostring(L, idx));
    if (!d.ok()) return *err = std::string(what) + ": " + d.status().message(), false;
    *ms = static_cast<int64_t>(*d);
    return true;
  }
  *err = std::string(what) + ": a duration is a number of seconds or text like \"7d\"";
  return false;
}

bool OptDuration(lua_State* L, int opts, const char* key, const char* what, int64_t* ms, std::string* err) {
  *ms = -1;
  if (lua_type(L, opts) != LUA_TTABLE) return true;
  lua_getfield(L, opts, key);
  bool ok = DurationAt(L, -1, what, ms, err);
  lua_pop(L, 1);
  return ok;
}

// Argument `idx` as a string, or false with *err set.
bool ArgString(lua_State* L, int idx, const char* what, std::string* out, std::string* err) {
  if (lua_type(L, idx) != LUA_TSTRING) {
    *err = std::string(what) + ": argument " + std::to_string(idx) + " must be a string, not " + luaL_typename(L, idx);
    return false;
  }
  size_t len = 0;
  const char* p = lua_tolstring(L, idx, &len);
  out->assign(p, len);
  return true;
}

void SetNumber(lua_State* L, const char* k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}
void SetInteger(lua_State* L, const char* k, int64_t v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}
void SetString(lua_State* L, const char* k, const std::string& v) {
  lua_pushlstring(L, v.data(), v.size());
  lua_setfield(L, -2, k);
}

// The file table hooks get.
// Pushes "/" .. path (no C++ temporary: a Lua error may unwind through here).
void PushPath(lua_State* L, const std::string& path) {
  lua_pushliteral(L, "/");
  lua_pushlstring(L, path.data(), path.size());
  lua_concat(L, 2);
}

// Runs inside the sandbox's protected call (see Runtime::Generation::Call).
void PushFile(lua_State* L, const cache::FileRef& f) {
  lua_createtable(L, 0, 4);
  PushPath(L, f.path);
  lua_setfield(L, -2, "path");
  size_t slash = f.path.rfind('/');
  size_t from = slash == std::string::npos ? 0 : slash + 1;
  lua_pushlstring(L, f.path.data() + from, f.path.size() - from);
  lua_setfield(L, -2, "name");
  SetInteger(L, "size", static_cast<int64_t>(f.size));
  SetString(L, "etag", f.etag);
}

// nil, message: the Lua convention for a failed action.
int Fail(lua_State* L, const Status& s) {
  lua_pushnil(L);
  lua_pushstring(L, s.message().c_str());
  return 2;
}

std::string IsoTime(int64_t ms) { return ms <= 0 ? "" : FormatUtc(ms / 1000, "%Y-%m-%dT%H:%M:%SZ"); }

Result<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

struct Runtime::Generation {
  Runtime* rt = nullptr;
  std::unique_ptr<Sandbox> sb;
  std::vector<std::string> files;
  std::vector<HookRef> admit, evict, access;
  std::vector<JobRef> jobs;
  std::vector<Deferred> deferred;
  bool loading = true;  // registrations allowed; actions deferred
  int64_t loaded_ms = 0;
  std::string running;  // the file whose code runs now (for strata.log)

  // Runs `body(L, ud)` in protected mode with the sandbox's budget: the
  // body pushes the hook (lua_rawgeti of h.ref) and its arguments, calls
  // it and reads the results into `ud`, so running out of memory while
  // building arguments is an error of the hook, not a panic of the agent.
  // On failure the hook is switched off.
  Status Call(HookRef& h, const char* kind, lua_CFunction body, void* ud) {
    running = h.file;
    h.calls++;
    Status s = sb->CallFunction(body, ud);
    if (!s.ok()) Fail(h, kind, s.message());
    return s;
  }
  void Fail(HookRef& h, const char* kind, const std::string& error) {
    h.failed = true;
    h.error = error;
    LOG_WARN("policy: the %s hook of %s:%d failed and is off until the next reload (the built-in default "
             "takes its place): %s", kind, h.file.c_str(), h.line, error.c_str());
    rt->UpdateFlags();
  }
};

Runtime::Runtime(RuntimeOptions opts, loop::Loop* loop, Host* host)
    : opts_(std::move(opts)), clock_(opts_.clock != nullptr ? opts_.clock : SystemClock::Get()), loop_(loop), host_(host) {}

Runtime::~Runtime() = default;

void Runtime::UpdateFlags() {
  auto any = [](const std::vector<HookRef>& v) {
    return std::any_of(v.begin(), v.end(), [](const HookRef& h) { return !h.failed; });
  };
  has_admit_ = live_ && any(live_->admit);
  has_evict_ = live_ && any(live_->evict);
  has_access_ = live_ && any(live_->access);
}

namespace {

// Lua raises errors with longjmp, which skips C++ destructors. So an API
// function's body works with C++ objects and returns its error as text;
// Dispatch raises it only after they are gone.
using ApiBody = int (*)(lua_State* L, Runtime::Generation* g, std::string* err);

int Dispatch(lua_State* L) {
  auto* g = static_cast<Runtime::Generation*>(lua_touserdata(L, lua_upvalueindex(1)));
  auto body = reinterpret_cast<ApiBody>(lua_touserdata(L, lua_upvalueindex(2)));
  char msg[512];
  {
    // Out of memory inside the body is raised here, after its objects are gone.
    Sandbox::Grace grace(L);
    std::string err;
    int n = body(L, g, &err);
    if (err.empty() && !grace.Over()) return n;
    std::snprintf(msg, sizeof(msg), "%s", grace.Over() ? grace.Message().c_str() : err.c_str());
  }
  return luaL_error(L, "%s", msg);
}

bool Registration(Runtime::Generation* g, const char* name, std::string* err);

}  // namespace

// The pieces of Generation the API bodies need, without exposing it.
struct ApiAccess {
  static bool Loading(Runtime::Generation* g) { return g->loading; }
  static Host* HostOf(Runtime::Generation* g) { return g->rt->host_; }
  static const Clock* ClockOf(Runtime::Generation* g) { return g->rt->clock_; }
  static const std::string& Running(Runtime::Generation* g) { return g->running; }
  static void AddHook(Runtime::Generation* g, int which, HookRef h) {
    (which == 0 ? g->admit : which == 1 ? g->evict : g->access).push_back(std::move(h));
  }
  static void AddJob(Runtime::Generation* g, JobRef j) { g->jobs.push_back(std::move(j)); }
  static void Defer(Runtime::Generation* g, Deferred d) { g->deferred.push_back(std::move(d)); }
};

namespace {

bool Registration(Runtime::Generation* g, const char* name, std::string* err) {
  if (ApiAccess::Loading(g)) return true;
  *err = std::string("strata.") + name + " may only be called while the policy file loads";
  return false;
}

template <int kWhich>
int HookBody(lua_State* L, Runtime::Generation* g, std::string* err) {
  static const char* const names[] = {"on_admit", "on_evict", "on_access"};
  if (!Registration(g, names[kWhich], err)) return 0;
  if (lua_type(L, 1) != LUA_TFUNCTION) return *err = std::string("strata.") + names[kWhich] + " needs a function", 0;
  auto [file, line] = SplitWhere(Where(L));
  lua_pushvalue(L, 1);
  HookRef h;
  h.file = file;
  h.line = line;
  h.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  ApiAccess::AddHook(g, kWhich, std::move(h));
  return 0;
}

// An action now, or (while loading, or checking) once the reload is in force.
int Act(lua_State* L, Runtime::Generation* g, std::string what, std::function<Status(Host*)> fn) {
  Host* host = ApiAccess::HostOf(g);
  if (ApiAccess::Loading(g) || host == nullptr) {
    ApiAccess::Defer(g, {Where(L), std::move(what), std::move(fn)});
    lua_pushboolean(L, 1);
    return 1;
  }
  Status s = fn(host);
  if (!s.ok()) return Fail(L, s);
  lua_pushboolean(L, 1);
  return 1;
}

int ScheduleBody(lua_State* L, Runtime::Generation* g, std::string* err) {
  std::string spec;
  if (!Registration(g, "schedule", err) || !ArgString(L, 1, "strata.schedule", &spec, err)) return 0;
  if (lua_type(L, 2) != LUA_TFUNCTION) return *err = "strata.schedule: argument 2 must be a function", 0;
  std::string tz = OptString(L, 3, "tz");
  Result<Schedule> sched = Schedule::Parse(spec, tz.empty() ? "UTC" : tz);
  if (!sched.ok()) return *err = "strata.schedule: " + sched.status().message(), 0;
  auto [file, line] = SplitWhere(Where(L));
  lua_pushvalue(L, 2);
  JobRef j;
  j.file = file;
  j.line = line;
  j.schedule = *sched;
  j.ref = luaL_ref(L, LUA_REGISTRYINDEX);
  j.next_s = sched->Next(ApiAccess::ClockOf(g)->NowMs() / 1000);
  ApiAccess::AddJob(g, std::move(j));
  return 0;
}

int LoadBody(lua_State* L, Runtime::Generation* g, std::string* err) {
  std::string path;
  if (!ArgString(L, 1, "strata.load", &path, err)) return 0;
  bool recursive = OptBool(L, 2, "recursive");
  bool cluster = OptBool(L, 2, "cluster");
  std::string tier_name = OptString(L, 2, "tier");
  std::optional<cache::Tier> tier;
  if (!tier_name.empty()) {
    tier = cache::ParseTier(tier_name);
    if (!tier) return *err = "strata.load: tier must be \"mem\" or \"ssd\", not \"" + tier_name + "\"", 0;
  }
  Host* host = ApiAccess::HostOf(g);
  if (!ApiAccess::Loading(g) && host != nullptr) {
    Result<uint64_t> job = host->Load(path, recursive, tier, cluster);
    if (!job.ok()) return Fail(L, job.status());
    lua_pushinteger(L, static_cast<lua_Integer>(*job));
    return 1;
  }
  return Act(L, g, "load " + path + (recursive ? " (recursive)" : "") + (cluster ? " (cluster)" : ""),
             [=](Host* h) { return h->Load(path, recursive, tier, cluster).status(); });
}

int EvictBody(lua_State* L, Runtime::Generation* g, std::string* err) {
  std::string path;
  int64_t idle = -1;
  if (!ArgString(L, 1, "strata.evict", &path, err) || !OptDuration(L, 2, "idle", "strata.evict", &idle, err)) return 0;
  bool recursive = OptBool(L, 2, "recursive");
  idle = std::max<int64_t>(0, idle);
  Host* host = ApiAccess::HostOf(g);
  if (!ApiAccess::Loading(g) && host != nullptr) {
    Result<cache::EvictResult> r = host->Evict(path, recursive, idle);
    if (!r.ok()) return Fail(L, r.status());
    lua_createtable(L, 0, 3);
    SetInteger(L, "blocks", static_cast<int64_t>(r->blocks));
    SetInteger(L, "bytes", static_cast<int64_t>(r->bytes));
    SetInteger(L, "pinned", static_cast<int64_t>(r->pinned_blocks));
    return 1;
  }
  return Act(L, g, "evict " + path, [=](Host* h) { return h->Evict(path, recursive, idle).status(); });
}

int PinBody(lua_State* L, Runtime::Generation* g, std::string* err) {
  std::string path;
  if (!ArgString(L, 1, "strata.pin", &path, err)) return 0;
  bool recursive = OptBool(L, 2, "recursive");
  return Act(L, g, "pin " + path + (recursive ? " (recursive)" : ""), [=](Host* h) { return h->Pin(path, recursive); });
}

int UnpinBody(lua_State* L, Runtime::Generation* g, std::string* err) {
  std::string path;
  if (!ArgString(L, 1, "strata.unpin", &path, err)) return 0;
  return Act(L, g, "unpin " + path, [=](Host* h) { return h->Unpin(path); });
}

int TtlBody(lua_State* L, Runtime::Generation* g, std::string* err) {
  std::string path;
  int64_t ms = -1;
  if (!ArgString(L, 1, "strata.ttl", &path, err) || !DurationAt(L, 2, "strata.ttl", &ms, err)) return 0;
  if (ms == 0) return *err = "strata.ttl: a TTL must be longer than 0 (nil removes it)", 0;
  bool recursive = OptBool(L, 3, "recursive");
  return Act(L, g, "ttl " + path + " " + (ms < 0 ? "off" : std::to_string(ms / 1000) + "s"),
             [=](Host* h) { return h->Ttl(path, recursive, std::max<int64_t>(0, ms)); });
}

int ListBody(lua_State* L, Runtime::Generation* g, std::string* err) {
  std::string path;
  if (!ArgString(L, 1, "strata.list", &path, err)) return 0;
  Host* host = ApiAccess::HostOf(g);
  if (host == nullptr) {
    lua_newtable(L);
    return 1;
  }
  Result<std::vector<Host::Entry>> r = host->List(path);
  if (!r.ok()) return Fail(L, r.status());
  lua_createtable(L, static_cast<int>(r->size()), 0);
  for (size_t i = 0; i < r->size(); i++) {
    const Host::Entry& e = (*r)[i];
    lua_createtable(L, 0, 7);
    SetString(L, "name", e.name);
    SetString(L, "path", e.path);
    SetString(L, "etag", e.etag);
    lua_pushboolean(L, e.is_dir);
    lua_setfield(L, -2, "is_dir");
    SetInteger(L, "size", static_cast<int64_t>(e.size));
    SetNumber(L, "mtime", e.mtime_ns / 1e9);
    SetNumber(L, "cached", e.cached_percent);
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int MembersBody(lua_State* L, Runtime::Generation* g, std::string*) {
  Host* host = ApiAccess::HostOf(g);
  std::vector<Host::Member> members;
  if (host != nullptr) members = host->Members();
  lua_createtable(L, static_cast<int>(members.size()), 0);
  for (size_t i = 0; i < members.size(); i++) {
    const Host::Member& m = members[i];
    lua_createtable(L, 0, 6);
    SetString(L, "name", m.name);
    SetString(L, "address", m.address);
    SetString(L, "state", m.state);
    SetInteger(L, "capacity", static_cast<int64_t>(m.capacity));
    SetInteger(L, "used", static_cast<int64_t>(m.used));
    lua_pushboolean(L, m.self);
    lua_setfield(L, -2, "self");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

int StatBody(lua_State* L, Runtime::Generation* g, std::string*) {
  lua_newtable(L);
  Host* host = ApiAccess::HostOf(g);
  if (host == nullptr) return 1;
  for (const auto& [k, v] : host->Stat()) SetNumber(L, k.c_str(), v);
  return 1;
}

int NowBody(lua_State* L, Runtime::Generation* g, std::string*) {
  lua_pushnumber(L, ApiAccess::ClockOf(g)->NowMs() / 1000.0);
  return 1;
}

int LogBody(lua_State* L, Runtime::Generation* g, std::string*) {
  const int n = lua_gettop(L);
  for (int i = 1; i <= n; i++) {
    luaL_tolstring(L, i, nullptr);
    if (i > 1) {
      lua_pushliteral(L, " ");
      lua_insert(L, -2);
      lua_concat(L, 3);
    }
  }
  const char* msg = n > 0 ? lua_tostring(L, -1) : "";
  LOG_INFO("policy %s: %s", ApiAccess::Running(g).c_str(), msg);
  return 0;
}

}  // namespace

void Runtime::InstallApi(Generation& g) {
  lua_State* L = g.sb->L();
  const std::pair<const char*, ApiBody> fns[] = {
      {"schedule", ScheduleBody}, {"on_admit", HookBody<0>}, {"on_evict", HookBody<1>}, {"on_access", HookBody<2>},
      {"load", LoadBody},         {"evict", EvictBody},      {"pin", PinBody},          {"unpin", UnpinBody},
      {"ttl", TtlBody},           {"list", ListBody},        {"stat", StatBody},        {"now", NowBody},
      {"members", MembersBody},
      {"log", LogBody},
  };
  lua_createtable(L, 0, static_cast<int>(std::size(fns)));
  for (const auto& [name, body] : fns) {
    lua_pushlightuserdata(L, &g);
    lua_pushlightuserdata(L, reinterpret_cast<void*>(body));
    lua_pushcclosure(L, Dispatch, 2);
    lua_setfield(L, -2, name);
  }
  lua_setglobal(L, "strata");
}

Status Runtime::LoadInto(Generation& g, const std::vector<std::string>& files) {
  g.rt = this;
  g.sb = std::make_unique<Sandbox>(opts_.limits);
  InstallApi(g);
  g.loading = true;
  for (const std::string& path : files) {
    Result<std::string> code = ReadText(path);
    if (!code.ok()) return code.status();
    std::string name = SplitPath(path).second;
    g.running = name;
    g.files.push_back(name);
    Status s = g.sb->Run(*code, name);
    if (!s.ok()) return s;
  }
  g.loading = false;
  g.loaded_ms = clock_->NowMs();
  return Status::OK();
}

Status Runtime::Reload() {
  std::vector<std::string> files;
  if (!opts_.dir.empty()) {
    DIR* d = ::opendir(opts_.dir.c_str());
    if (d == nullptr && errno != ENOENT) {
      Status s = Status::IOError("cannot read the policy directory " + opts_.dir + ": " + std::strerror(errno));
      last_reload_error_ = s.message();
      failed_reloads_++;
      return s;
    }
    if (d != nullptr) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 4 && n.compare(n.size() - 4, 4, ".lua") == 0 && n[0] != '.') files.push_back(JoinPath(opts_.dir, n));
      }
      ::closedir(d);
    }
    std::sort(files.begin(), files.end());
  }
  auto g = std::make_unique<Generation>();
  Status s = LoadInto(*g, files);
  last_reload_ms_ = clock_->NowMs();
  if (!s.ok()) {
    failed_reloads_++;
    last_reload_error_ = s.message();
    LOG_ERROR("policy: reload refused, the policies in force stay in force: %s", s.message().c_str());
    return s;
  }
  last_reload_error_.clear();
  reloads_++;
  live_ = std::move(g);
  {
    std::lock_guard<std::mutex> lock(mu_);
    decisions_.clear();
    generation_++;
  }
  UpdateFlags();
  LOG_INFO("policy: %zu file(s) loaded from %s: %zu schedule(s), on_admit %zu, on_evict %zu, on_access %zu",
           live_->files.size(), opts_.dir.c_str(), live_->jobs.size(), live_->admit.size(), live_->evict.size(),
           live_->access.size());
  for (Deferred& d : live_->deferred) {
    Status r = d.run(host_);
    if (!r.ok()) LOG_WARN("policy %s: %s: %s", d.where.c_str(), d.what.c_str(), r.message().c_str());
  }
  return Status::OK();
}

Result<std::string> Runtime::Check(const std::string& file) {
  Generation g;
  Status s = LoadInto(g, {file});
  if (!s.ok()) return s;
  std::ostringstream out;
  std::string name = SplitPath(file).second;
  out << name << ": OK (" << g.sb->memory_used() / 1024 << " KiB of Lua memory after loading)\n";
  for (const auto& [list, kind] : {std::pair{&g.admit, "on_admit"}, {&g.evict, "on_evict"}, {&g.access, "on_access"}})
    for (const HookRef& h : *list) out << "  hook     " << kind << " (line " << h.line << ")\n";
  for (const JobRef& j : g.jobs)
    out << "  schedule \"" << j.schedule.spec() << "\"" << (j.schedule.is_interval() ? "" : " " + j.schedule.tz())
        << " (line " << j.line << "), next run " << (j.next_s < 0 ? "never" : IsoTime(j.next_s * 1000)) << "\n";
  for (const Deferred& d : g.deferred) out << "  at load  " << d.what << " (" << d.where << ")\n";
  if (g.admit.empty() && g.evict.empty() && g.access.empty() && g.jobs.empty() && g.deferred.empty())
    out << "  (registers nothing)\n";
  return out.str();
}

void Runtime::Start() {
  if (loop_ == nullptr) return;
  timer_ = new uv_timer_t;
  uv_timer_init(loop_->uv(), timer_);
  timer_->data = this;
  uv_timer_start(timer_, [](uv_timer_t* t) { static_cast<Runtime*>(t->data)->Tick(); }, 1000, 1000);
}

void Runtime::Stop() {
  stopping_ = true;
  cv_.notify_all();  // a fetch waiting for on_admit takes the default now
  if (timer_ == nullptr) return;
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer_ = nullptr;
}

void Runtime::Tick() {
  int64_t now_ms = clock_->NowMs();
  if (live_) {
    for (JobRef& j : live_->jobs) {
      if (j.next_s < 0 || j.next_s * 1000 > now_ms) continue;
      // Late (a busy loop, a moved clock): runs once, then the next time after now.
      live_->running = j.file;
      int64_t t0 = NowMonoMs();
      int ref = j.ref;
      Status s = live_->sb->CallFunction(
          [](lua_State* L) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, static_cast<int>(reinterpret_cast<intptr_t>(lua_touserdata(L, 1))));
            lua_call(L, 0, 0);
            return 0;
          },
          reinterpret_cast<void*>(static_cast<intptr_t>(ref)));
      j.last_seconds = (NowMonoMs() - t0) / 1000.0;
      j.runs++;
      j.last_run_ms = now_ms;
      j.last_ok = s.ok();
      j.last_error = s.ok() ? "" : s.message();
      if (!s.ok()) {
        j.failures++;
        LOG_WARN("policy: the job scheduled at %s:%d (\"%s\") failed: %s", j.file.c_str(), j.line,
                 j.schedule.spec().c_str(), s.message().c_str());
      }
      j.next_s = j.schedule.Next(now_ms / 1000);
    }
  }
  if (host_ != nullptr) host_->Tick(now_ms);
}

uint64_t Runtime::DecisionKey(const cache::FileRef& f, const char* source) {
  return f.file_id * 2 + (std::strcmp(source, "peer") == 0 ? 1 : 0);
}

void Runtime::Prepare(const cache::FileRef& f, const char* source) {
  if (!has_admit_ || stopping_ || loop_ == nullptr) return;
  uint64_t gen;
  const uint64_t key = DecisionKey(f, source);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (decisions_.count(key)) return;
    // Bounded: a long scan of distinct files starts over rather than grow.
    if (decisions_.size() >= 65536) decisions_.clear();
    decisions_[key] = Decision{};
    gen = generation_;
  }
  loop_->Post([this, f, gen, src = std::string(source)] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (gen != generation_) return;
    }
    RunAdmit(f, src);
  });
}

namespace {
// Arguments and results of one hook call, for the protected trampolines.
struct FileCall {
  const cache::FileRef* file;
  int ref;
  const char* source = nullptr;  // on_admit: who answers the fetch
  int type = LUA_TNIL;  // of the result
  bool truthy = false;
  std::string text;     // a string result
};

int CallWithFile(lua_State* L) {
  auto* c = static_cast<FileCall*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  PushFile(L, *c->file);
  if (c->source != nullptr) {
    lua_pushstring(L, c->source);
    lua_setfield(L, -2, "source");
  }
  lua_call(L, 1, 1);
  c->type = lua_type(L, -1);
  c->truthy = lua_toboolean(L, -1);
  if (c->type == LUA_TSTRING) c->text = lua_tostring(L, -1);
  return 0;
}
}  // namespace

void Runtime::RunAdmit(const cache::FileRef& f, const std::string& source) {
  Decision d;
  d.ready = true;
  if (live_) {
    for (HookRef& h : live_->admit) {
      if (h.failed) continue;
      FileCall c{&f, h.ref, source.c_str()};
      if (!live_->Call(h, "on_admit", CallWithFile, &c).ok()) continue;
      if (c.type == LUA_TSTRING) {
        std::optional<cache::Tier> tier = cache::ParseTier(c.text);
        if (!tier) {
          live_->Fail(h, "on_admit", h.file + ":" + std::to_string(h.line) + ": on_admit returned \"" + c.text +
                                         "\" (a tier is \"mem\" or \"ssd\"; false keeps the file out; nil has no opinion)");
          continue;
        }
        d.has_answer = true;
        d.tier = tier;
      } else if (c.type == LUA_TBOOLEAN) {
        d.has_answer = true;  // false: not kept; true: the default tier
        if (c.truthy) d.tier = cache::Tier::kSsd;
      }
      if (d.has_answer) break;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    decisions_[DecisionKey(f, source.c_str())] = d;
  }
  cv_.notify_all();
}

std::optional<cache::Tier> Runtime::Decide(const cache::FileRef& f, cache::Tier fallback, const char* source) {
  if (!has_admit_ || stopping_) return fallback;
  Prepare(f, source);  // a no-op when already asked
  const uint64_t key = DecisionKey(f, source);
  std::unique_lock<std::mutex> lock(mu_);
  bool ready = cv_.wait_for(lock, std::chrono::milliseconds(opts_.admit_wait_ms), [&] {
    auto it = decisions_.find(key);
    return stopping_ || it == decisions_.end() || it->second.ready;
  });
  auto it = decisions_.find(key);
  if (stopping_) return fallback;
  if (!ready || it == decisions_.end() || !it->second.ready) {
    admit_timeouts_++;
    return fallback;
  }
  if (!it->second.has_answer) return fallback;
  return it->second.tier;
}

void Runtime::OnAccess(const cache::FileRef& f) {
  if (!has_access_ || stopping_ || loop_ == nullptr) return;
  loop_->Post([this, f] { RunAccess(f); });
}

void Runtime::RunAccess(const cache::FileRef& f) {
  if (!live_) return;
  for (HookRef& h : live_->access) {
    if (h.failed) continue;
    FileCall c{&f, h.ref};
    (void)live_->Call(h, "on_access", CallWithFile, &c);
  }
}

namespace {
// One on_evict call over candidates [start, start + n).
struct EvictCall {
  const std::vector<cache::EvictCandidate>* c;
  size_t start, n;
  int ref;
  std::vector<double>* scores;
  std::vector<int8_t>* demote;
  std::string bad;  // what was wrong with the answer
};

int CallEvict(lua_State* L) {
  auto* e = static_cast<EvictCall*>(lua_touserdata(L, 1));
  const size_t n = e->n;
  lua_createtable(L, static_cast<int>(n), 0);
  const int batch = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    const cache::EvictCandidate& x = (*e->c)[e->start + i];
    lua_createtable(L, 0, 9);
    SetInteger(L, "id", static_cast<int64_t>(i + 1));
    PushPath(L, x.path);
    lua_setfield(L, -2, "path");
    SetInteger(L, "block", static_cast<int64_t>(x.key.index));
    SetInteger(L, "size", x.length);
    SetInteger(L, "file_size", static_cast<int64_t>(x.file_size));
    SetNumber(L, "atime", x.atime_ms / 1000.0);
    SetInteger(L, "hits", x.hits);
    lua_pushstring(L, cache::TierName(x.tier));
    lua_setfield(L, -2, "tier");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);
  lua_pushvalue(L, batch);
  lua_call(L, 1, 1);
  double* scores = e->scores->data() + e->start;
  if (lua_type(L, -1) != LUA_TTABLE) {
    e->bad = "must return a table of scores or the candidates in eviction order";
    return 0;
  }
  lua_rawgeti(L, -1, 1);
  bool ordering = lua_type(L, -1) == LUA_TTABLE;
  lua_pop(L, 1);
  size_t len = lua_rawlen(L, -1);
  if (ordering) {
    // Candidate tables, first to go first: the position is the score;
    // unlisted ones come after the listed ones.
    for (size_t i = 0; i < n; i++) scores[i] = 2.0;
    for (size_t p = 1; p <= len; p++) {
      lua_rawgeti(L, -1, static_cast<lua_Integer>(p));
      if (lua_type(L, -1) == LUA_TTABLE) {
        lua_getfield(L, -1, "id");
        lua_Integer id = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (id >= 1 && static_cast<size_t>(id) <= n)
          scores[id - 1] = std::min(scores[id - 1], static_cast<double>(p) / static_cast<double>(len + 1));
      }
      lua_pop(L, 1);
    }
  } else if (len == n) {
    for (size_t i = 0; i < n; i++) {
      lua_rawgeti(L, -1, static_cast<lua_Integer>(i + 1));
      int isnum = 0;
      double v = lua_tonumberx(L, -1, &isnum);
      lua_pop(L, 1);
      if (!isnum || std::isnan(v)) {
        e->bad = "score " + std::to_string(i + 1) + " is not a number";
        return 0;
      }
      scores[i] = v;
    }
  } else {
    e->bad = "returned " + std::to_string(len) + " scores for " + std::to_string(n) + " candidates";
    return 0;
  }
  // demote = true / false, set by the script on RAM-tier candidates. The
  // script may have reordered (or emptied) the table: go by `id`.
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, batch, static_cast<lua_Integer>(i + 1));
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_getfield(L, -1, "id");
      lua_Integer id = lua_tointeger(L, -1);
      lua_getfield(L, -2, "demote");
      if (id >= 1 && static_cast<size_t>(id) <= n && lua_type(L, -1) == LUA_TBOOLEAN)
        (*e->demote)[e->start + static_cast<size_t>(id) - 1] = lua_toboolean(L, -1) ? 1 : 0;
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  return 0;
}
}  // namespace

bool Runtime::Score(const std::vector<cache::EvictCandidate>& c, std::vector<double>* scores,
                    std::vector<int8_t>* demote) {
  if (!live_) return false;
  HookRef* h = nullptr;
  // The last registered scorer wins (a later file overrides an earlier one).
  for (HookRef& x : live_->evict)
    if (!x.failed) h = &x;
  if (h == nullptr) return false;
  scores->assign(c.size(), 0);
  demote->assign(c.size(), -1);
  const size_t batch = std::max<size_t>(1, opts_.evict_batch);
  for (size_t start = 0; start < c.size(); start += batch) {
    EvictCall e{&c, start, std::min(batch, c.size() - start), h->ref, scores, demote, ""};
    if (!live_->Call(*h, "on_evict", CallEvict, &e).ok()) return false;
    if (!e.bad.empty()) {
      live_->Fail(*h, "on_evict", h->file + ":" + std::to_string(h->line) + ": on_evict " + e.bad);
      return false;
    }
  }
  return true;
}

bool Runtime::Rank(const std::vector<cache::EvictCandidate>& candidates, std::vector<size_t>* order,
                   std::vector<int8_t>* demote) {
  if (!Active()) return false;
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false, ok = false;
    std::vector<double> scores;
    std::vector<int8_t> demote;
  };
  auto w = std::make_shared<Wait>();
  // The candidates are copied: a late answer must not touch the caller's.
  auto copy = std::make_shared<std::vector<cache::EvictCandidate>>(candidates);
  auto run = [this, w, copy] {
    std::vector<double> scores;
    std::vector<int8_t> dem;
    bool ok = Score(*copy, &scores, &dem);
    std::lock_guard<std::mutex> lock(w->mu);
    w->ok = ok;
    w->scores = std::move(scores);
    w->demote = std::move(dem);
    w->done = true;
    w->cv.notify_all();
  };
  if (loop_ == nullptr) run();
  else loop_->Post(std::move(run));
  std::unique_lock<std::mutex> lock(w->mu);
  if (!w->cv.wait_for(lock, std::chrono::milliseconds(opts_.evict_wait_ms), [&] { return w->done; })) {
    evict_timeouts_++;
    return false;
  }
  if (!w->ok) return false;
  order->resize(candidates.size());
  for (size_t i = 0; i < order->size(); i++) (*order)[i] = i;
  std::stable_sort(order->begin(), order->end(), [&](size_t a, size_t b) { return w->scores[a] < w->scores[b]; });
  *demote = std::move(w->demote);
  return true;
}

std::string Runtime::StatusJson() {
  json j;
  j["dir"] = opts_.dir;
  j["reloads"] = reloads_;
  j["failed_reloads"] = failed_reloads_;
  j["last_reload"] = {{"at", IsoTime(last_reload_ms_)}, {"ok", last_reload_error_.empty()}, {"error", last_reload_error_}};
  j["now"] = IsoTime(clock_->NowMs());
  j["admit_timeouts"] = admit_timeouts_.load();
  j["evict_timeouts"] = evict_timeouts_.load();
  json files = json::array(), hooks = json::array(), schedules = json::array();
  if (live_) {
    j["loaded_at"] = IsoTime(live_->loaded_ms);
    j["memory_bytes"] = live_->sb->memory_used();
    files = live_->files;
    for (const auto& [list, kind] :
         {std::pair{&live_->admit, "on_admit"}, {&live_->evict, "on_evict"}, {&live_->access, "on_access"}})
      for (const HookRef& h : *list)
        hooks.push_back({{"hook", kind}, {"file", h.file}, {"line", h.line}, {"calls", h.calls},
                         {"state", h.failed ? "failed" : "active"}, {"error", h.error}});
    for (const JobRef& jr : live_->jobs)
      schedules.push_back({{"file", jr.file}, {"line", jr.line}, {"spec", jr.schedule.spec()},
                           {"tz", jr.schedule.is_interval() ? "" : jr.schedule.tz()},
                           {"next_run", jr.next_s < 0 ? "never" : IsoTime(jr.next_s * 1000)},
                           {"last_run", IsoTime(jr.last_run_ms)}, {"last_seconds", jr.last_seconds},
                           {"last_result", jr.runs == 0 ? "" : jr.last_ok ? "ok" : "error"},
                           {"error", jr.last_error}, {"runs", jr.runs}, {"failures", jr.failures}});
  }
  j["files"] = files;
  j["hooks"] = hooks;
  j["schedules"] = schedules;
  j["default"] = {{"on_admit", has_admit_ ? "policy" : "built-in (everything to the SSD tier)"},
                  {"on_evict", has_evict_ ? "policy" : "built-in (LRU)"}};
  return strata::JsonText(j);
}

}  // namespace strata::policy
