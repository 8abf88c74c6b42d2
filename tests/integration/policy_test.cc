// Lua policies on a real mount, with the agent's test clock (--test-clock)
// moved by hand: scheduled preload, cleanup and pins, admission rules, LFU
// against a scan, reloads refused as a whole, run-time failures, TTLs, and
// the RAM tier.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/harness.h"

using namespace strata::it;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// 2026-11-18 11:06:40 UTC.
constexpr int64_t kStart = 1'795'000'000;

// A store with files (a directory unless another kind is asked for), a
// policy directory, an agent on a test clock.
struct PolicySetup {
  explicit PolicySetup(const std::string& kind = "file") : store(MakeStore(kind)) {}
  std::unique_ptr<Store> store;
  TempDir src, pol;  // src: what was put in the store
  Agent agent;

  void File(const std::string& rel, uint64_t size, uint32_t seed) {
    fs::create_directories(fs::path(src.path + "/" + rel).parent_path());
    WriteRandomFile(src.path + "/" + rel, size, seed);
    store->Put(rel, src.path + "/" + rel);
  }
  // A shipped policy, with `from` replaced by `to` (its configuration).
  void Ship(const std::string& name, const std::string& from = "", const std::string& to = "") {
    std::string code = ReadFile("policies/" + name);
    if (!from.empty()) {
      size_t at = code.find(from);
      REQUIRE(at != std::string::npos);
      code.replace(at, from.size(), to);
    }
    Policy(name, code);
  }
  void Policy(const std::string& name, const std::string& code) { std::ofstream(pol.path + "/" + name) << code; }
  void Start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--policy-dir", pol.path, "--test-clock", std::to_string(kStart),
                                     "--block-size", "64KiB"};
    for (const std::string& a : store->agent_args()) args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    agent.Start(store->uri(), args);
  }
  void Advance(const std::string& d) {
    std::string out = RawUnixRequest(agent.socket(), "POST /v1/clock?advance=" + d + " HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(out.find("200 OK") != std::string::npos);
  }
  double Cached(const std::string& rel) { return agent.CtlJson("stat --json " + agent.mnt(rel))["cached_percent"].get<double>(); }
  bool WaitCached(const std::string& rel, double pct) {
    for (int i = 0; i < 200; i++) {
      if (Cached(rel) == pct) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  bool Same(const std::string& rel) { return Sha256File(agent.mnt(rel)) == Sha256File(src.path + "/" + rel); }
};

}  // namespace

TEST_CASE("a scheduled preload fires at its time; the files are then read with zero GETs", "[fuse][policy][s3]") {
  PolicySetup p(GENERATE(from_range(StoreKinds())));
  p.File("data/a.bin", 1 << 20, 1);
  p.File("data/sub/b.bin", 300'000, 2);
  p.File("other.bin", 100'000, 3);
  // preload.lua as shipped, configured for /data at 02:00 UTC.
  p.Ship("preload.lua", "local PRELOAD = {", "local PRELOAD = {\n  { path = \"/data\", at = \"0 2 * * *\", tz = \"UTC\" },");
  p.Start();
  json st = p.agent.CtlJson("policy status --json");
  REQUIRE(st["schedules"].size() == 1);
  CHECK(st["schedules"][0]["next_run"] == "2026-11-19T02:00:00Z");
  p.Advance("53400s");  // 01:56:40: not yet
  std::this_thread::sleep_for(300ms);
  CHECK(p.Cached("data") == 0);
  p.Advance("5m");  // 02:01:40
  REQUIRE(p.WaitCached("data", 100));
  CHECK(p.Cached("other.bin") == 0);
  st = p.agent.CtlJson("policy status --json");
  CHECK(st["schedules"][0]["runs"] == 1);
  CHECK(st["schedules"][0]["last_result"] == "ok");
  CHECK(st["schedules"][0]["next_run"] == "2026-11-20T02:00:00Z");
  CHECK(p.agent.log().find("preloading /data") != std::string::npos);
  uint64_t gets = p.agent.Gets();
  CHECK(p.Same("data/a.bin"));
  CHECK(p.Same("data/sub/b.bin"));
  CHECK(p.agent.Gets() == gets);
}

TEST_CASE("cleanup evicts what is idle and keeps what is pinned", "[fuse][policy]") {
  PolicySetup p;
  p.File("a.bin", 256 * 1024, 4);
  p.File("b.bin", 256 * 1024, 5);
  p.File("c.bin", 256 * 1024, 6);
  p.Ship("cleanup.lua");
  p.Start();
  CHECK(p.Same("a.bin"));
  CHECK(p.Same("b.bin"));
  REQUIRE(p.WaitCached("a.bin", 100));
  REQUIRE(p.WaitCached("b.bin", 100));
  CmdResult pin = p.agent.Ctl("pin " + p.agent.mnt("b.bin"));
  REQUIRE(pin.code == 0);
  CHECK(pin.out.find("pinned /b.bin") != std::string::npos);
  p.Advance("6d");  // hourly cleanups run: nothing is a week idle yet
  std::this_thread::sleep_for(300ms);
  CHECK(p.Cached("a.bin") == 100);
  CHECK(p.Same("c.bin"));  // read now: idle for only two days below
  REQUIRE(p.WaitCached("c.bin", 100));
  p.Advance("2d");
  REQUIRE(p.WaitCached("a.bin", 0));
  CHECK(p.Cached("b.bin") == 100);
  CHECK(p.Cached("c.bin") == 100);
  json st = p.agent.Stat();
  CHECK(st["pinned_bytes"] == 256 * 1024);
  CHECK(st["pins"][0]["path"] == "/b.bin");
  CHECK(p.agent.log().find("1 pinned block(s) kept") == std::string::npos);  // b is 4 blocks
  CHECK(p.agent.log().find("4 pinned block(s) kept") != std::string::npos);
  // Pins survive a restart; an unpin then lets cleanup take it too.
  p.agent.Stop();
  p.Start();
  CHECK(p.agent.Stat()["pinned_bytes"] == 256 * 1024);
  REQUIRE(p.agent.Ctl("unpin b.bin").code == 0);
  CmdResult again = p.agent.Ctl("unpin b.bin");
  CHECK(again.code != 0);
  CHECK(again.out.find("not pinned") != std::string::npos);
}

TEST_CASE("an admission rule keeps *.tmp out of the cache", "[fuse][policy]") {
  PolicySetup p;
  p.File("scratch/x.tmp", 200'000, 7);
  p.File("scratch/y.bin", 200'000, 8);
  p.Ship("admission.lua");
  p.Start();
  CHECK(p.Same("scratch/x.tmp"));
  CHECK(p.Same("scratch/y.bin"));
  REQUIRE(p.WaitCached("scratch/y.bin", 100));
  CHECK(p.Cached("scratch/x.tmp") == 0);
  CHECK(p.agent.Stat()["not_admitted"].get<uint64_t>() >= 4);
  DropPageCache();
  uint64_t gets = p.agent.Gets();
  CHECK(p.Same("scratch/x.tmp"));
  CHECK(p.Same("scratch/y.bin"));
  CHECK(p.agent.Gets() > gets);  // x.tmp again from the store, y.bin not
  json hooks = p.agent.CtlJson("policy status --json")["hooks"];
  REQUIRE(hooks.size() == 1);
  CHECK(hooks[0]["file"] == "admission.lua");
  CHECK(hooks[0]["calls"].get<uint64_t>() >= 2);
}

TEST_CASE("default.lua serves files over half the SSD tier without keeping them", "[fuse][policy]") {
  PolicySetup p;
  p.File("big.bin", 600 * 1024, 40);
  p.File("small.bin", 100 * 1024, 41);
  p.Ship("default.lua");
  p.Start({"--cache-size", "1MiB"});
  CHECK(p.Same("big.bin"));
  CHECK(p.Same("small.bin"));
  REQUIRE(p.WaitCached("small.bin", 100));
  CHECK(p.Cached("big.bin") == 0);
  // An explicit load is not asked.
  REQUIRE(p.agent.Ctl("load big.bin").code == 0);
  CHECK(p.Cached("big.bin") == 100);
}

TEST_CASE("an LFU policy changes which blocks survive a scan", "[fuse][policy]") {
  // Four hot files read twice, then a one-pass scan of 24 through a
  // 16-block cache: LRU loses the hot set, LFU keeps it.
  for (bool lfu : {false, true}) {
    INFO((lfu ? "lfu.lua" : "built-in LRU"));
    PolicySetup p;
    for (int i = 0; i < 4; i++) p.File("hot/" + std::to_string(i), 64 * 1024, 10 + i);
    for (int i = 0; i < 24; i++) p.File("scan/" + std::to_string(i), 64 * 1024, 100 + i);
    if (lfu) p.Ship("lfu.lua");
    p.Start({"--cache-size", "1MiB"});
    for (int pass = 0; pass < 2; pass++) {
      for (int i = 0; i < 4; i++) CHECK(p.Same("hot/" + std::to_string(i)));
      DropPageCache();
      std::this_thread::sleep_for(1100ms);  // reads a second apart are separate accesses
    }
    for (int i = 0; i < 24; i++) CHECK(p.Same("scan/" + std::to_string(i)));
    double hot = 0;
    for (int i = 0; i < 4; i++) hot += p.Cached("hot/" + std::to_string(i));
    json st = p.agent.Stat();
    CHECK(st["evicted_blocks"].get<uint64_t>() >= 12);
    if (lfu) CHECK(hot == 400);
    else CHECK(hot == 0);
  }
}

TEST_CASE("a reload with a broken file is refused as a whole, by agentctl and by SIGHUP", "[fuse][policy]") {
  PolicySetup p;
  p.File("x.tmp", 100'000, 20);
  p.Ship("admission.lua");
  p.Start();
  p.Policy("zz-broken.lua", "strata.on_evict(function(c)\n  return c\n");  // no `end)`
  CmdResult r = p.agent.Ctl("policy reload");
  CHECK(r.code != 0);
  CHECK(r.out.find("refused") != std::string::npos);
  CHECK(r.out.find("zz-broken.lua:3:") != std::string::npos);
  CmdResult st = p.agent.Ctl("policy status");
  CHECK(st.out.find("LAST RELOAD REFUSED") != std::string::npos);
  CHECK(st.out.find("zz-broken.lua:3:") != std::string::npos);
  CHECK(st.out.find("admission.lua:") != std::string::npos);  // still in force
  CHECK(p.Same("x.tmp"));
  std::this_thread::sleep_for(200ms);
  CHECK(p.Cached("x.tmp") == 0);
  CmdResult check = Run("build/agentctl policy check " + p.pol.path + "/zz-broken.lua");
  CHECK(check.code != 0);
  CHECK(check.out.find("zz-broken.lua:3:") != std::string::npos);
  // SIGHUP: same rule, and the agent keeps serving.
  ::kill(p.agent.pid(), SIGHUP);
  std::this_thread::sleep_for(500ms);
  CHECK(IsMounted(p.agent.mnt()));
  CHECK(p.agent.log().find("SIGHUP: reloading") != std::string::npos);
  fs::remove(p.pol.path + "/zz-broken.lua");
  ::kill(p.agent.pid(), SIGHUP);
  std::this_thread::sleep_for(500ms);
  json ok = p.agent.CtlJson("policy status --json");
  CHECK(ok["last_reload"]["ok"] == true);
  CHECK(ok["reloads"].get<uint64_t>() >= 2);
  CHECK(p.Same("x.tmp"));
}

TEST_CASE("a policy failing at run time hands its decision to the built-in default", "[fuse][policy]") {
  PolicySetup p;
  p.File("f.bin", 200'000, 21);
  p.Policy("bad.lua", "strata.on_admit(function(f)\n  return f.no_such_field.x\nend)\n");
  p.Ship("cleanup.lua");
  p.Start();
  CHECK(p.Same("f.bin"));
  REQUIRE(p.WaitCached("f.bin", 100));  // the default kept it
  json st = p.agent.CtlJson("policy status --json");
  json bad;
  for (const json& h : st["hooks"])
    if (h["file"] == "bad.lua") bad = h;
  REQUIRE(bad.is_object());
  CHECK(bad["state"] == "failed");
  CHECK(bad["error"].get<std::string>().find("bad.lua:2:") == 0);
  CHECK(st["default"]["on_admit"].get<std::string>().find("built-in") == 0);
  CHECK(p.agent.log().find("bad.lua:2:") != std::string::npos);
  // The other policy still runs.
  p.Advance("2h");
  std::this_thread::sleep_for(300ms);
  CHECK(p.agent.CtlJson("policy status --json")["schedules"][0]["runs"].get<uint64_t>() >= 1);
}

TEST_CASE("pin refuses what cannot fit; a TTL evicts on time", "[fuse][policy][agentctl]") {
  PolicySetup p;
  p.File("big.bin", 3 << 20, 22);
  p.File("small.bin", 256 * 1024, 23);
  p.File("t/x.bin", 128 * 1024, 24);
  p.Start({"--cache-size", "2MiB"});
  CmdResult big = p.agent.Ctl("pin big.bin");
  CHECK(big.code != 0);
  CHECK(big.out.find("cannot pin /big.bin") != std::string::npos);
  CHECK(p.agent.Stat()["pins"].empty());
  CmdResult small = p.agent.Ctl("pin small.bin");
  CHECK(small.code == 0);
  CHECK(p.Cached("small.bin") == 100);  // pinning loads
  CHECK(p.Same("t/x.bin"));
  REQUIRE(p.WaitCached("t/x.bin", 100));
  REQUIRE(p.agent.Ctl("ttl -r t 1h").code == 0);
  CHECK(p.agent.Stat()["ttls"][0]["path"] == "/t");
  p.Advance("30m");
  std::this_thread::sleep_for(300ms);
  CHECK(p.Cached("t/x.bin") == 100);
  p.Advance("31m");
  REQUIRE(p.WaitCached("t/x.bin", 0));
  CHECK(p.agent.Stat()["ttls"].empty());
  CHECK(p.Cached("small.bin") == 100);
  CHECK(p.agent.Ctl("ttl t soon").code != 0);
}

TEST_CASE("the RAM tier: hot blocks move up and are served from memory", "[fuse][policy][tier]") {
  PolicySetup p;
  p.File("hot.bin", 1 << 20, 30);
  p.Start({"--mem-size", "4MiB"});
  CHECK(p.Same("hot.bin"));
  DropPageCache();
  std::this_thread::sleep_for(1100ms);
  CHECK(p.Same("hot.bin"));  // a second access: promoted in the background
  json st;
  for (int i = 0; i < 100; i++) {
    st = p.agent.Stat();
    if (st["promotions"].get<uint64_t>() == 16) break;
    std::this_thread::sleep_for(50ms);
  }
  REQUIRE(st["promotions"] == 16);
  uint64_t gets = p.agent.Gets();
  DropPageCache();
  CHECK(p.Same("hot.bin"));
  st = p.agent.Stat();
  json mem;
  for (const json& t : st["tiers"])
    if (t["tier"] == "mem") mem = t;
  REQUIRE(mem.is_object());
  CHECK(mem["bytes_served"].get<uint64_t>() >= (1u << 20));
  CHECK(mem["blocks"] == 16);
  CHECK(p.agent.Gets() == gets);
  CmdResult human = p.agent.Ctl("stat");
  CHECK(human.out.find("Tiers") != std::string::npos);
  CHECK(human.out.find("promoted 16 block(s) to RAM") != std::string::npos);
  // agentctl load --tier mem puts a file straight into RAM.
  p.File("direct.bin", 256 * 1024, 31);
  REQUIRE(p.agent.Ctl("load --tier mem direct.bin").code == 0);
  for (const json& t : p.agent.Stat()["tiers"])
    if (t["tier"] == "mem") CHECK(t["blocks"] == 20);
}
