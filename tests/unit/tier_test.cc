// The engine's RAM tier, pins and policy hooks (admission, scorer), over a
// real index and SSD tier with an in-memory store.
#include <catch2/catch.hpp>
#include <chrono>
#include <unordered_map>
#include <random>
#include <thread>

#include "agent/cache/engine.h"
#include "agent/cache/eviction.h"
#include "tests/unit/rig.h"

using namespace strata;
using namespace std::chrono_literals;

namespace {
using testing::RandomBytes;
using testing::Rig;

constexpr uint64_t kBs = 64 * 1024;
constexpr size_t kMem = static_cast<size_t>(cache::Tier::kMem);
constexpr size_t kSsd = static_cast<size_t>(cache::Tier::kSsd);

cache::EngineOptions Opts(uint64_t ssd_blocks, uint64_t mem_blocks) {
  cache::EngineOptions o;
  o.capacity = ssd_blocks * kBs;
  o.mem_capacity = mem_blocks * kBs;
  o.block_size = kBs;
  o.access_gap_ms = 0;  // every read is an access
  return o;
}

// Waits (bounded) for a background change the engine makes after answering.
template <typename F>
bool Eventually(F f) {
  for (int i = 0; i < 400; i++) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return f();
}

class FixedAdmission : public cache::Admission {
 public:
  std::function<std::optional<cache::Tier>(const cache::FileRef&)> rule;
  std::atomic<int> prepared{0};
  void Prepare(const cache::FileRef&, const char*) override { prepared++; }
  std::optional<cache::Tier> Decide(const cache::FileRef& f, cache::Tier, const char*) override { return rule(f); }
};

class FixedScorer : public cache::Scorer {
 public:
  bool fail = false;
  std::atomic<int> calls{0};
  bool Rank(const std::vector<cache::EvictCandidate>& c, std::vector<size_t>* order, std::vector<int8_t>*) override {
    calls++;
    if (fail) return false;
    // LFU: fewest hits first.
    order->resize(c.size());
    for (size_t i = 0; i < c.size(); i++) (*order)[i] = i;
    std::stable_sort(order->begin(), order->end(), [&](size_t a, size_t b) { return c[a].hits < c[b].hits; });
    return true;
  }
};
}  // namespace

TEST_CASE("a block read again moves to RAM and is served from memory; RAM does not survive a restart", "[unit][tier]") {
  Rig rig(Opts(64, 16), nullptr);
  std::string data = RandomBytes(4 * kBs, 1);
  rig.store->Put("f", data);
  auto f = rig.Ref("f");
  CHECK(rig.Read(f, 0, data.size()) == data);  // fetched: SSD
  REQUIRE(Eventually([&] { return rig.engine->Stats().tiers[kSsd].blocks == 4; }));
  const uint64_t gets = rig.store->counters().get_requests;
  CHECK(rig.Read(f, 0, data.size()) == data);  // a hit: promoted in the background
  REQUIRE(Eventually([&] { return rig.engine->Stats().promotions == 4; }));
  auto st = rig.engine->Stats();
  CHECK(st.tiers[kMem].blocks == 4);
  CHECK(st.tiers[kSsd].blocks == 0);
  CHECK(Eventually([&] { return rig.DiskBytes() == 0; }));  // moved, not copied
  uint64_t served = st.tiers[kMem].bytes_served;
  CHECK(rig.Read(f, 1000, 2 * kBs) == data.substr(1000, 2 * kBs));
  CHECK(rig.engine->Stats().tiers[kMem].bytes_served == served + 2 * kBs);
  CHECK(rig.store->counters().get_requests == gets);
  rig.Restart();
  CHECK(rig.engine->Stats().blocks == 0);
  CHECK(rig.Read(rig.Ref("f"), 0, data.size()) == data);
  CHECK(rig.store->counters().get_requests == 2 * gets);
}

TEST_CASE("blocks leaving RAM go down to the SSD tier when read again there, else are dropped", "[unit][tier]") {
  FixedAdmission adm;
  adm.rule = [](const cache::FileRef&) { return std::optional<cache::Tier>(cache::Tier::kMem); };
  cache::EngineOptions o = Opts(64, 4);
  o.high_watermark = 1.0;
  o.low_watermark = 0.5;
  Rig rig(o, [&](cache::Engine& e) { e.SetAdmission(&adm); });
  std::string a = RandomBytes(2 * kBs, 2), b = RandomBytes(2 * kBs, 3), c = RandomBytes(2 * kBs, 4);
  rig.store->Put("a", a);
  rig.store->Put("b", b);
  rig.store->Put("c", c);
  auto fa = rig.Ref("a"), fb = rig.Ref("b"), fc = rig.Ref("c");
  CHECK(rig.Read(fa, 0, a.size()) == a);
  REQUIRE(Eventually([&] { return rig.engine->Stats().tiers[kMem].blocks == 2; }));
  CHECK(rig.Read(fb, 0, b.size()) == b);
  REQUIRE(Eventually([&] { return rig.engine->Stats().tiers[kMem].blocks == 4; }));
  CHECK(rig.Read(fa, 0, a.size()) == a);  // a is read again in RAM: worth keeping
  CHECK(adm.prepared > 0);
  CHECK(rig.Read(fc, 0, c.size()) == c);  // needs room in RAM
  REQUIRE(Eventually([&] { return rig.engine->CachedOf(fc.file_id).blocks == 2; }));
  auto st = rig.engine->Stats();
  CHECK(st.demotions >= 1);
  CHECK(st.tiers[kSsd].blocks == st.demotions);
  CHECK(rig.engine->CachedOf(fb.file_id).blocks == 0);  // never read again: dropped
  uint64_t gets = rig.store->counters().get_requests;
  CHECK(rig.Read(fa, 0, a.size()) == a);  // from RAM and SSD: no store read
  CHECK(rig.store->counters().get_requests == gets);
}

TEST_CASE("pinned blocks are never evicted; unpinned they are again", "[unit][tier]") {
  Rig rig(Opts(8, 0), [](cache::Engine& e) { e.SetPins({{"keep", true}}); });
  std::string k = RandomBytes(3 * kBs, 5);
  rig.store->Put("keep/k", k);
  auto fk = rig.Ref("keep/k");
  CHECK(rig.Read(fk, 0, k.size()) == k);
  REQUIRE(Eventually([&] { return rig.engine->CachedOf(fk.file_id).blocks == 3; }));
  CHECK(rig.engine->Stats().pinned_bytes == 3 * kBs);
  for (int i = 0; i < 20; i++) {  // 20 blocks through an 8-block cache
    std::string name = "scan/" + std::to_string(i), d = RandomBytes(kBs, 100 + i);
    rig.store->Put(name, d);
    CHECK(rig.Read(rig.Ref(name), 0, kBs) == d);
  }
  CHECK(Eventually([&] { return rig.engine->Stats().inflight_fetches == 0; }));
  CHECK(rig.engine->CachedOf(fk.file_id).blocks == 3);
  cache::EvictResult r = rig.engine->EvictMatching({"", true}, 0);
  CHECK(r.pinned_blocks == 3);
  CHECK(rig.engine->CachedOf(fk.file_id).blocks == 3);
  rig.engine->SetPins({});
  CHECK(rig.engine->Stats().pinned_bytes == 0);
  for (int i = 0; i < 10; i++) (void)rig.Read(rig.Ref("scan/" + std::to_string(i)), 0, kBs);
  CHECK(Eventually([&] { return rig.engine->CachedOf(fk.file_id).blocks < 3; }));
  // Pin rules: a path, recursively or not.
  cache::PinRule dir{"a/b", true}, file{"a/b", false}, all{"", true};
  CHECK(dir.Matches("a/b/c"));
  CHECK_FALSE(dir.Matches("a/bc"));
  CHECK_FALSE(file.Matches("a/b/c"));
  CHECK(file.Matches("a/b"));
  CHECK(all.Matches("x/y"));
}

TEST_CASE("evict by idle age drops only what nobody read since", "[unit][tier]") {
  ManualClock clock(1'800'000'000'000);
  cache::EngineOptions o = Opts(64, 0);
  o.clock = &clock;
  Rig rig(o, nullptr);
  rig.store->Put("old", RandomBytes(kBs, 6));
  rig.store->Put("new", RandomBytes(kBs, 7));
  auto fo = rig.Ref("old"), fn = rig.Ref("new");
  (void)rig.Read(fo, 0, kBs);
  REQUIRE(Eventually([&] { return rig.engine->CachedOf(fo.file_id).blocks == 1; }));
  clock.Advance(8LL * 86400 * 1000);
  (void)rig.Read(fn, 0, kBs);
  REQUIRE(Eventually([&] { return rig.engine->CachedOf(fn.file_id).blocks == 1; }));
  cache::EvictResult r = rig.engine->EvictMatching({"", true}, clock.NowMs() - 7LL * 86400 * 1000);
  CHECK(r.blocks == 1);
  CHECK(rig.engine->CachedOf(fo.file_id).blocks == 0);
  CHECK(rig.engine->CachedOf(fn.file_id).blocks == 1);
}

TEST_CASE("an admission answer of 'not kept' serves the bytes without caching them", "[unit][tier]") {
  FixedAdmission adm;
  adm.rule = [](const cache::FileRef& f) -> std::optional<cache::Tier> {
    if (f.path.size() > 4 && f.path.compare(f.path.size() - 4, 4, ".tmp") == 0) return std::nullopt;
    return cache::Tier::kSsd;
  };
  Rig rig(Opts(64, 0), [&](cache::Engine& e) { e.SetAdmission(&adm); });
  std::string t = RandomBytes(2 * kBs, 8), k = RandomBytes(2 * kBs, 9);
  rig.store->Put("x.tmp", t);
  rig.store->Put("x.bin", k);
  auto ft = rig.Ref("x.tmp"), fk = rig.Ref("x.bin");
  CHECK(rig.Read(ft, 0, t.size()) == t);
  CHECK(rig.Read(fk, 0, k.size()) == k);
  REQUIRE(Eventually([&] { return rig.engine->CachedOf(fk.file_id).blocks == 2; }));
  CHECK(rig.engine->CachedOf(ft.file_id).blocks == 0);
  CHECK(rig.engine->Stats().not_admitted == 2);
  // An explicit load is not asked.
  REQUIRE(rig.engine->Load(ft, 2, [](uint64_t) {}, nullptr, cache::Tier::kSsd).ok());
  CHECK(rig.engine->CachedOf(ft.file_id).blocks == 2);
}

TEST_CASE("a readahead's blocks are held for the reads that follow, kept or not, and fetched once", "[unit][tier]") {
  FixedAdmission adm;
  adm.rule = [](const cache::FileRef& f) -> std::optional<cache::Tier> {
    if (f.path.size() > 4 && f.path.compare(f.path.size() - 4, 4, ".tmp") == 0) return std::nullopt;
    return cache::Tier::kSsd;
  };
  Rig rig(Opts(64, 0), [&](cache::Engine& e) { e.SetAdmission(&adm); });
  std::string t = RandomBytes(4 * kBs, 10), k = RandomBytes(4 * kBs, 11);
  rig.store->Put("s.tmp", t);
  rig.store->Put("s.bin", k);
  auto ft = rig.Ref("s.tmp"), fk = rig.Ref("s.bin");
  // Not kept: the prefetched blocks serve the reads after them, in pieces.
  rig.engine->Prefetch(ft, 0, 4);
  REQUIRE(Eventually([&] { return rig.engine->Stats().not_admitted == 4; }));
  const uint64_t gets = rig.store->counters().get_requests;
  for (uint64_t off = 0; off < t.size(); off += kBs / 2) CHECK(rig.Read(ft, off, kBs / 2) == t.substr(off, kBs / 2));
  CHECK(rig.store->counters().get_requests == gets);
  CHECK(rig.engine->CachedOf(ft.file_id).blocks == 0);
  // Read to their end, they are gone: the next read fetches.
  CHECK(rig.Read(ft, 0, 100) == t.substr(0, 100));
  CHECK(rig.store->counters().get_requests > gets);
  // Kept: served from memory, not read back from the block file just
  // written; counted as the SSD tier's hits.
  rig.engine->Prefetch(fk, 0, 4);
  REQUIRE(Eventually([&] { return rig.engine->CachedOf(fk.file_id).blocks == 4; }));
  const uint64_t ssd_served = rig.engine->Stats().tiers[kSsd].bytes_served;
  Result<std::vector<cache::Slice>> held = rig.engine->ReadIfCached(fk, kBs, 100);
  REQUIRE(held.ok());
  REQUIRE(held->size() == 1);
  CHECK((*held)[0].data != nullptr);
  CHECK(rig.engine->Stats().tiers[kSsd].bytes_served == ssd_served + 100);
  // Evicted: nothing held survives it.
  rig.engine->EvictFile(fk.file_id, nullptr);
  CHECK(rig.engine->ReadIfCached(fk, kBs, 100).status().IsNotFound());
}

TEST_CASE("the scorer's order decides which blocks go; a failed scorer falls back to LRU", "[unit][tier]") {
  for (bool fail : {false, true}) {
    FixedScorer scorer;
    scorer.fail = fail;
    cache::EngineOptions o = Opts(10, 0);
    Rig rig(o, [&](cache::Engine& e) { e.SetScorer(&scorer); });
    // Four hot blocks read three times, then a scan of twelve read once.
    std::vector<cache::FileRef> hot;
    for (int i = 0; i < 4; i++) {
      std::string name = "hot" + std::to_string(i);
      rig.store->Put(name, RandomBytes(kBs, 200 + i));
      hot.push_back(rig.Ref(name));
    }
    for (int pass = 0; pass < 3; pass++)
      for (auto& h : hot) {
        (void)rig.Read(h, 0, kBs);
        REQUIRE(Eventually([&] { return rig.engine->CachedOf(h.file_id).blocks == 1; }));
      }
    for (int i = 0; i < 12; i++) {
      std::string name = "scan" + std::to_string(i);
      rig.store->Put(name, RandomBytes(kBs, 300 + i));
      (void)rig.Read(rig.Ref(name), 0, kBs);
      REQUIRE(Eventually([&] { return rig.engine->Stats().inflight_fetches == 0; }));
    }
    uint64_t hot_cached = 0;
    for (auto& h : hot) hot_cached += rig.engine->CachedOf(h.file_id).blocks;
    INFO("scorer " << (fail ? "failing" : "LFU"));
    CHECK(scorer.calls > 0);
    if (!fail) {
      CHECK(hot_cached == 4);
      CHECK(rig.engine->Stats().scorer_rankings > 0);
    } else {
      CHECK(hot_cached == 0);  // plain LRU: the scan pushed them out
      CHECK(rig.engine->Stats().scorer_failures > 0);
    }
  }
}

TEST_CASE("the LRU order holds whatever order blocks arrive in", "[unit][tier]") {
  cache::LruPolicy lru;
  std::mt19937 rng(3);
  std::unordered_map<BlockKey, int64_t, BlockKeyHash> atime;
  for (uint64_t i = 0; i < 5000; i++) {
    int64_t t = static_cast<int64_t>(rng() % 100000);
    lru.OnInsert({i, 0}, 1, t);
    atime[{i, 0}] = t;
  }
  for (uint64_t i = 0; i < 500; i++) {  // touches move blocks to the front
    lru.OnAccess({i * 7, 0}, 200000 + static_cast<int64_t>(i));
    atime[{i * 7, 0}] = 200000 + static_cast<int64_t>(i);
  }
  std::vector<BlockKey> v;
  lru.Select(UINT64_MAX, &v);
  REQUIRE(v.size() == 5000);
  for (size_t i = 1; i < v.size(); i++) REQUIRE(atime[v[i - 1]] <= atime[v[i]]);
}
