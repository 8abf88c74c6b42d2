// The policy runtime on a real libuv loop with an injected clock: hooks get
// the documented arguments, reloads are all or nothing, failing hooks hand
// their decision to the built-in default, schedules fire on time.
#include <catch2/catch.hpp>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "agent/policy/runtime.h"
#include "tests/unit/rig.h"

using namespace strata;
using nlohmann::json;

namespace {
using testing::TempDir;

struct FakeHost : policy::Host {
  std::mutex mu;
  std::vector<std::string> calls;
  void Record(const std::string& c) {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(c);
  }
  std::vector<std::string> Calls() {
    std::lock_guard<std::mutex> lock(mu);
    return calls;
  }
  Result<uint64_t> Load(const std::string& path, bool recursive, std::optional<cache::Tier> tier, bool cluster) override {
    Record("load " + path + (recursive ? " -r" : "") + (tier ? std::string(" ") + cache::TierName(*tier) : "") +
           (cluster ? " --cluster" : ""));
    return uint64_t{7};
  }
  Result<cache::EvictResult> Evict(const std::string& path, bool recursive, int64_t idle_ms) override {
    Record("evict " + path + (recursive ? " -r" : "") + " idle " + std::to_string(idle_ms));
    cache::EvictResult r;
    r.blocks = 3;
    r.bytes = 300;
    return r;
  }
  Status Pin(const std::string& path, bool recursive) override {
    Record("pin " + path + (recursive ? " -r" : ""));
    return Status::OK();
  }
  Status Unpin(const std::string& path) override {
    Record("unpin " + path);
    return Status::NotFound(path + " is not pinned");
  }
  Status Ttl(const std::string& path, bool, int64_t ttl_ms) override {
    Record("ttl " + path + " " + std::to_string(ttl_ms));
    return Status::OK();
  }
  Result<std::vector<Entry>> List(const std::string& path) override {
    Record("list " + path);
    Entry e;
    e.name = "a.bin";
    e.path = path + "/a.bin";
    e.size = 10;
    e.cached_percent = 50;
    return std::vector<Entry>{e};
  }
  std::vector<std::pair<std::string, double>> Stat() override { return {{"capacity", 1000}, {"ssd_capacity", 1000}}; }
  void Tick(int64_t) override {}
  std::vector<Member> Members() override {
    return {{"a", "10.0.0.1:7946", "alive", 100, 10, true}, {"b", "10.0.0.2:7946", "suspect", 200, 20, false}};
  }
};

// A policy directory, a loop, a clock, a runtime.
struct PolicyRig {
  TempDir dir;
  ManualClock clock{1'795'000'000'000};  // 2026-11-18 11:06:40 UTC
  FakeHost host;
  loop::Loop loop;
  std::unique_ptr<policy::Runtime> rt;

  explicit PolicyRig(policy::RuntimeOptions o = {}) {
    o.dir = dir.path;
    o.clock = &clock;
    rt = std::make_unique<policy::Runtime>(o, &loop, &host);
    loop.Start();
  }
  ~PolicyRig() { loop.Stop(); }
  void Write(const std::string& name, const std::string& code) { std::ofstream(dir.path + "/" + name) << code; }
  void Remove(const std::string& name) { std::filesystem::remove(dir.path + "/" + name); }
  // Runs fn on the loop thread and waits for it.
  template <typename F>
  auto OnLoop(F fn) {
    std::packaged_task<decltype(fn())()> task(fn);
    auto fut = task.get_future();
    loop.Post([&task] { task(); });
    return fut.get();
  }
  Status Reload() {
    return OnLoop([this] { return rt->Reload(); });
  }
  json StatusJson() {
    return json::parse(OnLoop([this] { return rt->StatusJson(); }));
  }
  void Tick() {
    OnLoop([this] {
      rt->Tick();
      return 0;
    });
  }
  static cache::FileRef File(const std::string& path, uint64_t size, uint64_t id) {
    cache::FileRef f;
    f.file_id = id;
    f.path = path;
    f.size = size;
    f.etag = "etag-" + std::to_string(id);
    return f;
  }
};
}  // namespace

TEST_CASE("on_admit gets the file; its answer places the blocks", "[unit][policy]") {
  PolicyRig r;
  r.Write("a.lua", R"(
    strata.on_admit(function(f)
      assert(f.path == "/d/x.bin" or f.path == "/d/y.tmp" or f.path == "/d/z", "path " .. tostring(f.path))
      assert(f.name == "x.bin" or f.name == "y.tmp" or f.name == "z")
      assert(math.type(f.size) == "integer" and f.etag:sub(1, 5) == "etag-")
      assert(f.source == "store" or f.source == "peer")
      if f.source == "peer" and f.path == "/d/z" then return false end  -- a peer keeps it: no local copy
      if f.path:find("%.tmp$") then return false end
      if f.size > 1000 then return "mem" end
      return nil
    end)
  )");
  REQUIRE(r.Reload().ok());
  CHECK(r.rt->Decide(PolicyRig::File("d/x.bin", 5000, 1), cache::Tier::kSsd) == cache::Tier::kMem);
  CHECK(r.rt->Decide(PolicyRig::File("d/y.tmp", 10, 2), cache::Tier::kSsd) == std::nullopt);
  CHECK(r.rt->Decide(PolicyRig::File("d/z", 10, 3), cache::Tier::kSsd) == cache::Tier::kSsd);  // no opinion
  CHECK(r.rt->Decide(PolicyRig::File("d/z", 10, 3), cache::Tier::kSsd, "peer") == std::nullopt);  // asked again: another source
  json st = r.StatusJson();
  REQUIRE(st["hooks"].size() == 1);
  CHECK(st["hooks"][0]["calls"] == 4);
  CHECK(st["hooks"][0]["state"] == "active");
}

TEST_CASE("on_evict gets candidates in batches and returns scores or an ordering", "[unit][policy]") {
  policy::RuntimeOptions o;
  o.evict_batch = 3;
  PolicyRig r(o);
  std::vector<cache::EvictCandidate> c(7);
  for (size_t i = 0; i < c.size(); i++) {
    c[i].key = {100 + i, i};
    c[i].path = "d/f" + std::to_string(i);
    c[i].length = 4096;
    c[i].file_size = 8192;
    c[i].atime_ms = 1'795'000'000'000 + static_cast<int64_t>(i) * 1000;
    c[i].hits = static_cast<uint32_t>((i * 5) % 7);
    c[i].tier = i == 0 ? cache::Tier::kMem : cache::Tier::kSsd;
  }
  std::vector<size_t> order;
  std::vector<int8_t> demote;
  auto rank = [&] {
    REQUIRE(r.Reload().ok());
    REQUIRE(r.rt->Rank(c, &order, &demote));
  };
  SECTION("scores") {
    r.Write("lfu.lua", R"(
      batches = 0
      strata.on_evict(function(cands)
        batches = batches + 1
        assert(#cands <= 3, "batch of " .. #cands)
        local s = {}
        for i, c in ipairs(cands) do
          assert(c.path:sub(1, 3) == "/d/" and c.size == 4096 and c.file_size == 8192)
          assert(c.atime > 1.7e9 and (c.tier == "mem" or c.tier == "ssd") and math.type(c.block) == "integer")
          s[i] = c.hits
          if c.tier == "mem" then c.demote = false end
        end
        return s
      end)
    )");
    rank();
    REQUIRE(order.size() == c.size());
    for (size_t i = 1; i < order.size(); i++) CHECK(c[order[i - 1]].hits <= c[order[i]].hits);
    CHECK(demote[0] == 0);
    CHECK(demote[1] == -1);
    CHECK(r.StatusJson()["hooks"][0]["calls"] == 3);  // 7 candidates in batches of 3
  }
  SECTION("ordering") {
    r.Write("order.lua", R"(
      strata.on_evict(function(cands)
        table.sort(cands, function(a, b) return a.block > b.block end)
        for _, c in ipairs(cands) do if c.tier == "mem" then c.demote = true end end
        return cands
      end)
    )");
    rank();
    // Highest block first within each batch of 3: 2,1,0 | 5,4,3 | 6.
    CHECK(order[0] == 2);
    CHECK(order[1] == 5);
    CHECK(demote[0] == 1);  // candidate 0 (RAM), wherever the sort put it
    CHECK(demote[2] == -1);
  }
}

TEST_CASE("a stopped runtime answers with the defaults without waiting", "[unit][policy]") {
  PolicyRig r;
  r.Write("a.lua", "strata.on_admit(function(f) return 'mem' end)\n"
                   "strata.on_evict(function(c) local s = {} for i = 1, #c do s[i] = 0 end return s end)\n");
  REQUIRE(r.Reload().ok());
  CHECK(r.rt->Active());
  r.OnLoop([&] {
    r.rt->Stop();
    return 0;
  });
  CHECK(r.rt->Decide(PolicyRig::File("x", 1, 1), cache::Tier::kSsd) == cache::Tier::kSsd);
  CHECK_FALSE(r.rt->Active());
  std::vector<cache::EvictCandidate> c(3);
  std::vector<size_t> order;
  std::vector<int8_t> demote;
  CHECK_FALSE(r.rt->Rank(c, &order, &demote));
  json st = r.StatusJson();
  CHECK(st["admit_timeouts"] == 0);  // answered at once, not after the deadline
  CHECK(st["evict_timeouts"] == 0);
  CHECK(st["hooks"][0]["calls"] == 0);
}

TEST_CASE("on_access runs in the background and may act", "[unit][policy]") {
  PolicyRig r;
  r.Write("prefetch.lua", R"(
    strata.on_access(function(f)
      if f.path:find("part%-1$") then strata.load(f.path:gsub("1$", "2")) end
    end)
  )");
  REQUIRE(r.Reload().ok());
  r.rt->OnAccess(PolicyRig::File("data/part-1", 10, 1));
  r.OnLoop([] { return 0; });  // the access hook ran before this
  CHECK(r.host.Calls() == std::vector<std::string>{"load /data/part-2"});
}

TEST_CASE("a reload with a broken file is refused as a whole", "[unit][policy]") {
  PolicyRig r;
  r.Write("10-good.lua", "strata.on_admit(function(f) return 'mem' end)\n");
  REQUIRE(r.Reload().ok());
  r.Write("10-good.lua", "strata.pin('/ref', {recursive = true})\nstrata.on_admit(function(f) return false end)\n");
  r.Write("20-broken.lua", "strata.schedule('0 2 * * *', function() end)\nlocal x = = 1\n");
  Status s = r.Reload();
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("20-broken.lua:2:"));
  // The old policy is still the one deciding; the new file's pin never ran.
  CHECK(r.rt->Decide(PolicyRig::File("a", 1, 1), cache::Tier::kSsd) == cache::Tier::kMem);
  CHECK(r.host.Calls().empty());
  json st = r.StatusJson();
  CHECK(st["last_reload"]["ok"] == false);
  CHECK_THAT(st["last_reload"]["error"].get<std::string>(), Catch::Contains("20-broken.lua:2:"));
  CHECK(st["files"] == json::array({"10-good.lua"}));
  // A bad schedule is an error at load, with its line.
  r.Write("20-broken.lua", "\nstrata.schedule('61 * * * *', function() end)\n");
  CHECK_THAT(r.Reload().message(), Catch::Contains("20-broken.lua:2: strata.schedule"));
  r.Remove("20-broken.lua");
  REQUIRE(r.Reload().ok());
  CHECK(r.host.Calls() == std::vector<std::string>{"pin /ref -r"});  // now, once in force
  CHECK(r.rt->Decide(PolicyRig::File("b", 1, 2), cache::Tier::kSsd) == std::nullopt);
}

TEST_CASE("a hook that fails, loops or runs out of memory hands its decision to the default", "[unit][policy]") {
  policy::RuntimeOptions o;
  o.limits.instructions = 200'000;
  o.limits.memory_bytes = 8u << 20;
  PolicyRig r(o);
  r.Write("a.lua", R"(
    strata.on_admit(function(f)
      if f.path == "/boom" then error("no such rule") end
      if f.path == "/loop" then while true do end end
      if f.path == "/pcall" then while true do pcall(function() while true do end end) end end
      if f.path == "/bomb" then local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 1e5) .. i end end
      return "mem"
    end)
  )");
  r.Write("b.lua", R"(
    runs = 0
    strata.schedule("1m", function() runs = runs + 1; strata.load("/b" .. runs) end)
  )");
  for (const char* path : {"boom", "loop", "pcall", "bomb"}) {
    REQUIRE(r.Reload().ok());
    INFO(path);
    CHECK(r.rt->Decide(PolicyRig::File(path, 1, 1), cache::Tier::kSsd) == cache::Tier::kSsd);
    json h = r.StatusJson()["hooks"][0];
    CHECK(h["state"] == "failed");
    CHECK_THAT(h["error"].get<std::string>(), Catch::StartsWith("a.lua:"));
    // Off until the next reload: the default decides without asking.
    CHECK(r.rt->Decide(PolicyRig::File("fine", 1, 2), cache::Tier::kSsd) == cache::Tier::kSsd);
    // The other policy keeps working.
    size_t before = r.host.Calls().size();
    r.clock.Advance(61'000);
    r.Tick();
    CHECK(r.host.Calls().size() == before + 1);
  }
  json st = r.StatusJson();
  CHECK_THAT(st["hooks"][0]["error"].get<std::string>(), Catch::Contains("memory"));
  REQUIRE(r.Reload().ok());
  CHECK(r.rt->Decide(PolicyRig::File("fine", 1, 3), cache::Tier::kSsd) == cache::Tier::kMem);
}

TEST_CASE("an on_evict hook that errors or answers nonsense falls back to LRU", "[unit][policy]") {
  PolicyRig r;
  std::vector<cache::EvictCandidate> c(4);
  std::vector<size_t> order;
  std::vector<int8_t> demote;
  for (const char* body : {"error('x')", "return 5", "return {1, 2}", "return {1, 2, 'x', 4}",
                           "while true do end"}) {
    INFO(body);
    r.Write("e.lua", std::string("strata.on_evict(function(c) ") + body + " end)\n");
    REQUIRE(r.Reload().ok());
    CHECK(r.rt->Active());
    CHECK_FALSE(r.rt->Rank(c, &order, &demote));
    CHECK_FALSE(r.rt->Active());
    CHECK(r.StatusJson()["hooks"][0]["state"] == "failed");
  }
}

TEST_CASE("a scheduled job fires at its time on the injected clock, once", "[unit][policy]") {
  PolicyRig r;
  // 2026-11-18 11:06:40 UTC now; the job runs at 02:00 UTC.
  r.Write("preload.lua", R"(
    strata.schedule("0 2 * * *", function()
      local job = strata.load("/datasets/train", { recursive = true, tier = "ssd" })
      assert(job == 7)
      local r = strata.evict("/tmp", { recursive = true, idle = "7d" })
      assert(r.blocks == 3 and r.bytes == 300)
      local l = strata.list("/datasets")
      assert(#l == 1 and l[1].name == "a.bin" and l[1].cached == 50)
      local ok, err = strata.unpin("/nothing")
      assert(ok == nil and err:find("not pinned"))
      assert(strata.stat().capacity == 1000)
      assert(math.abs(strata.now() - 1795053600) < 1)
      strata.ttl("/scratch", "1h")
      local m = strata.members()
      assert(#m == 2 and m[1].name == "a" and m[1].self and m[2].state == "suspect" and m[2].capacity == 200)
      strata.load("/datasets/shared", { recursive = true, cluster = true })
    end)
  )");
  REQUIRE(r.Reload().ok());
  CHECK(r.StatusJson()["schedules"][0]["next_run"] == "2026-11-19T02:00:00Z");
  r.clock.Set(1'795'053'599'000);  // 01:59:59
  r.Tick();
  CHECK(r.host.Calls().empty());
  r.clock.Set(1'795'053'600'000);  // 02:00:00
  r.Tick();
  r.Tick();
  CHECK(r.host.Calls() == std::vector<std::string>{"load /datasets/train -r ssd", "evict /tmp -r idle 604800000",
                                                   "list /datasets", "unpin /nothing", "ttl /scratch 3600000",
                                                   "load /datasets/shared -r --cluster"});
  json s = r.StatusJson()["schedules"][0];
  CHECK(s["runs"] == 1);
  CHECK(s["last_result"] == "ok");
  CHECK(s["next_run"] == "2026-11-20T02:00:00Z");
}

TEST_CASE("check describes a policy without applying it", "[unit][policy]") {
  PolicyRig r;
  r.Write("p.lua", "strata.pin('/ref')\nstrata.schedule('@daily', function() end, {tz = 'Europe/Berlin'})\n"
                   "strata.on_evict(function(c) return {} end)\n");
  Result<std::string> out = r.rt->Check(r.dir.path + "/p.lua");
  REQUIRE(out.ok());
  CHECK_THAT(*out, Catch::Contains("on_evict (line 3)"));
  CHECK_THAT(*out, Catch::Contains("\"@daily\" Europe/Berlin (line 2)"));
  CHECK_THAT(*out, Catch::Contains("pin /ref (p.lua:1)"));
  CHECK(r.host.Calls().empty());
  r.Write("q.lua", "strata.schedule('@daily', function() end, {tz = 'Mars/Olympus'})\n");
  Result<std::string> bad = r.rt->Check(r.dir.path + "/q.lua");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("q.lua:1:"));
  CHECK_THAT(bad.status().message(), Catch::Contains("Mars/Olympus"));
}

TEST_CASE("every shipped policy loads", "[unit][policy]") {
  PolicyRig r;
  for (const char* f : {"default.lua", "preload.lua", "cleanup.lua", "lfu.lua", "admission.lua"}) {
    INFO(f);
    Result<std::string> out = r.rt->Check(std::string("policies/") + f);
    CHECK(out.ok());
  }
}

TEST_CASE("running out of Lua memory while building a hook's arguments fails the hook, not the agent", "[unit][policy]") {
  policy::RuntimeOptions o;
  o.limits.memory_bytes = 1u << 20;
  o.evict_batch = 100000;  // one batch far larger than 1 MiB of Lua tables
  PolicyRig r(o);
  r.Write("e.lua", "strata.on_evict(function(c) local s = {} for i = 1, #c do s[i] = 0 end return s end)\n");
  REQUIRE(r.Reload().ok());
  std::vector<cache::EvictCandidate> c(50000);
  for (size_t i = 0; i < c.size(); i++) c[i].path = "some/rather/long/path/to/a/file-" + std::to_string(i);
  std::vector<size_t> order;
  std::vector<int8_t> demote;
  CHECK_FALSE(r.rt->Rank(c, &order, &demote));
  json h = r.StatusJson()["hooks"][0];
  CHECK(h["state"] == "failed");
  CHECK_THAT(h["error"].get<std::string>(), Catch::Contains("out of memory"));
  // The state is usable: a reload and a small ranking work.
  r.Write("e.lua", "strata.on_evict(function(c) local s = {} for i = 1, #c do s[i] = -i end return s end)\n");
  REQUIRE(r.Reload().ok());
  c.resize(10);
  REQUIRE(r.rt->Rank(c, &order, &demote));
  CHECK(order[0] == 9);
}
