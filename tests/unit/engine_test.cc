// The cache engine over a real LMDB index and real block files, with an
// in-memory store: block arithmetic, single-flight, eviction, capacity under
// concurrency, checksums, restart.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "agent/cache/engine.h"
#include "agent/cache/eviction.h"
#include "agent/cache/metadata.h"
#include "tests/unit/fake_ufs.h"
#include "tests/unit/rig.h"

using namespace strata;
namespace fs = std::filesystem;

namespace {
using testing::RandomBytes;
using testing::Rig;
using testing::TempDir;
}  // namespace

TEST_CASE("reads at every block boundary return the store's bytes", "[unit]") {
  const uint64_t bs = 64 * 1024;
  Rig rig(64 << 20, bs);
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, bs - 1, bs, bs + 1, 5 * bs + 17}) {
    std::string name = "f" + std::to_string(size);
    std::string data = RandomBytes(size, static_cast<uint32_t>(size));
    rig.store->Put(name, data);
    auto f = rig.Ref(name);
    CHECK(rig.Read(f, 0, size + 100) == data);  // past the end is clamped
    // Ranges that start and end on, just before and just after block edges.
    for (uint64_t off : {uint64_t{0}, bs - 1, bs, bs + 1}) {
      for (uint64_t len : {uint64_t{1}, bs - 1, bs, bs + 2, 3 * bs}) {
        std::string want = off >= size ? "" : data.substr(off, len);
        INFO("size " << size << " off " << off << " len " << len);
        CHECK(rig.Read(f, off, len) == want);
      }
    }
  }
}

TEST_CASE("random ranges match, cold and warm", "[unit]") {
  Rig rig(64 << 20, 64 * 1024);
  std::string data = RandomBytes(3 << 20, 7);
  rig.store->Put("big", data);
  auto f = rig.Ref("big");
  std::mt19937 rng(1);
  for (int i = 0; i < 300; i++) {
    uint64_t off = rng() % data.size();
    size_t len = 1 + rng() % (300 * 1024);
    REQUIRE(rig.Read(f, off, len) == data.substr(off, len));
  }
  // Readers are answered before blocks are stored: let the last ones land.
  for (int i = 0; i < 500 && rig.engine->Stats().blocks < 48; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  auto st = rig.engine->Stats();
  CHECK(st.bytes_from_cache > 0);
  CHECK(st.blocks == 48);
}

TEST_CASE("concurrent readers of one block cause one fetch", "[unit]") {
  Rig rig(64 << 20, 1 << 20);
  std::string data = RandomBytes(1 << 20, 3);
  rig.store->Put("one", data);
  auto f = rig.Ref("one");
  rig.store->SetDelayMs(200);
  std::vector<std::thread> readers;
  std::atomic<int> good{0};
  for (int i = 0; i < 16; i++)
    readers.emplace_back([&, i] {
      if (rig.Read(f, i * 1000, 5000) == data.substr(i * 1000, 5000)) good++;
    });
  for (auto& t : readers) t.join();
  CHECK(good == 16);
  CHECK(rig.store->counters().get_requests == 1);
}

TEST_CASE("the cache never exceeds its capacity, even under concurrency", "[unit]") {
  const uint64_t bs = 64 * 1024, cap = 16 * bs;
  Rig rig(cap, bs);
  rig.store->SetDelayMs(2);
  std::vector<std::string> files;
  for (int i = 0; i < 6; i++) {
    std::string d = RandomBytes(8 * bs, 100 + i);
    rig.store->Put("w" + std::to_string(i), d);
    files.push_back(d);
  }
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> max_accounted{0};
  std::thread sampler([&] {
    while (!stop) {
      auto st = rig.engine->Stats();
      max_accounted = std::max<uint64_t>(max_accounted, st.used_bytes + st.reserved_bytes);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::vector<std::thread> readers;
  std::atomic<int> bad{0};
  for (int r = 0; r < 4; r++)
    readers.emplace_back([&, r] {
      for (int round = 0; round < 3; round++)
        for (int i = 0; i < 6; i++) {
          auto f = rig.Ref("w" + std::to_string((i + r) % 6));
          if (rig.Read(f, 0, 8 * bs) != files[(i + r) % 6]) bad++;
        }
    });
  for (auto& t : readers) t.join();
  stop = true;
  sampler.join();
  CHECK(bad == 0);
  CHECK(max_accounted <= cap);
  // A directory walk is no snapshot (it may see a file being evicted and one
  // being written at once), so the disk is checked once things are quiet.
  CHECK(rig.DiskBytes() <= cap);
  CHECK(rig.engine->Stats().evicted_blocks > 0);
}

TEST_CASE("least recently used blocks are evicted first", "[unit]") {
  cache::LruPolicy lru;
  for (uint64_t i = 0; i < 5; i++) lru.OnInsert({1, i}, 10, 100 + i);
  lru.OnAccess({1, 0}, 200);  // block 0 becomes the most recent
  std::vector<BlockKey> v;
  lru.Select(25, &v);
  REQUIRE(v.size() == 3);
  CHECK(v[0] == BlockKey{1, 1});
  CHECK(v[1] == BlockKey{1, 2});
  CHECK(v[2] == BlockKey{1, 3});
  // Inserted with an older time (as at a restart): placed by that time.
  lru.OnInsert({2, 0}, 10, 50);
  v.clear();
  lru.Select(1, &v);
  CHECK(v[0] == BlockKey{2, 0});
  lru.OnRemove({2, 0});
  v.clear();
  lru.Select(1000, &v);
  CHECK(v.size() == 5);
  CHECK(v.back() == BlockKey{1, 0});
}

TEST_CASE("a corrupted block file is dropped and fetched again", "[unit]") {
  // With verify_every_read a block the agent itself stored is checked on
  // every read too (by default only its first read after a start is).
  const uint64_t bs = 1 << 20;
  cache::EngineOptions o;
  o.capacity = 64 << 20;
  o.block_size = bs;
  o.verify_every_read = true;
  o.scrub_bytes_per_sec = 0;
  Rig rig(o, nullptr);
  std::string data = RandomBytes(2 * bs, 9);
  rig.store->Put("c", data);
  auto f = rig.Ref("c");
  REQUIRE(rig.Read(f, 0, 2 * bs) == data);
  REQUIRE(rig.store->counters().get_requests == 2);
  // Readers are answered before the block file is written: wait for it.
  for (int i = 0; i < 500 && rig.engine->CachedOf(f.file_id).blocks < 2; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  {
    std::fstream blk(rig.ssd->PathOf({f.file_id, 1}), std::ios::in | std::ios::out | std::ios::binary);
    blk.seekp(300000);
    blk.put(static_cast<char>(data[bs + 300000] ^ 0x5a));
  }
  CHECK(rig.Read(f, bs + 299990, 100) == data.substr(bs + 299990, 100));
  CHECK(rig.engine->Stats().checksum_failures == 1);
  CHECK(rig.store->counters().get_requests == 3);
  // The refetched block is good again and served from the cache.
  CHECK(rig.Read(f, bs, bs) == data.substr(bs));
  CHECK(rig.store->counters().get_requests == 3);
}

TEST_CASE("a restart keeps the cache warm and reconciles files with the index", "[unit]") {
  const uint64_t bs = 64 * 1024;
  Rig rig(64 << 20, bs);
  std::string data = RandomBytes(10 * bs, 11);
  rig.store->Put("r", data);
  auto f = rig.Ref("r");
  REQUIRE(rig.Read(f, 0, data.size()) == data);
  rig.Settle();  // so the stray files below cannot race with the block writes
  // An orphan file, a stray temp file and a block whose file vanished.
  std::ofstream(rig.ssd->PathOf({999, 0})) << "orphan";
  std::ofstream(rig.ssd->PathOf({f.file_id, 0}) + ".tmp") << "half";
  rig.Restart();
  rig.engine->AwaitSweep();
  ::unlink(rig.ssd->PathOf({f.file_id, 3}).c_str());
  rig.Restart();
  rig.engine->AwaitSweep();  // reconciliation runs beside the first reads
  CHECK_FALSE(fs::exists(rig.ssd->PathOf({999, 0})));
  CHECK_FALSE(fs::exists(rig.ssd->PathOf({f.file_id, 0}) + ".tmp"));
  CHECK(rig.engine->Stats().blocks == 9);
  uint64_t gets = rig.store->counters().get_requests;
  auto f2 = rig.Ref("r");
  CHECK(f2.file_id == f.file_id);
  CHECK(rig.Read(f2, 0, data.size()) == data);
  CHECK(rig.store->counters().get_requests == gets + 1);  // only the block that vanished
}

TEST_CASE("a changed object gets a new version and its old blocks go", "[unit]") {
  const uint64_t bs = 64 * 1024;
  Rig rig(64 << 20, bs);
  std::string v1 = RandomBytes(4 * bs, 1), v2 = RandomBytes(4 * bs, 2);
  rig.store->Put("x", v1);
  auto f1 = rig.Ref("x");
  REQUIRE(rig.Read(f1, 0, v1.size()) == v1);
  rig.Settle();  // else a late reader of v1 may still join v1's finished fetch
  rig.store->Put("x", v2);
  // Past the TTL the metadata is revalidated: a new version, nothing mixed.
  rig.meta = std::make_unique<cache::Metadata>(&rig.mounts, rig.idx.get(), rig.engine.get(), 0);
  auto f2 = rig.Ref("x");
  CHECK(f2.file_id != f1.file_id);
  CHECK(rig.engine->CachedOf(f1.file_id).blocks == 0);
  CHECK(rig.Read(f2, 0, v2.size()) == v2);
  // A read still pinned to the old version fails instead of mixing.
  Status st;
  rig.engine->EvictFile(f2.file_id, nullptr);
  rig.Read(f1, 0, 10, &st);
  CHECK(st.code() == Status::Code::kStale);
}

TEST_CASE("store failures reach the reader and are not cached", "[unit]") {
  Rig rig(64 << 20, 64 * 1024);
  std::string data = RandomBytes(100000, 5);
  rig.store->Put("e", data);
  auto f = rig.Ref("e");
  rig.store->FailNextReads(1);
  Status st;
  rig.Read(f, 0, 10, &st);
  CHECK(st.code() == Status::Code::kUnavailable);
  CHECK(rig.engine->Stats().fetch_errors == 1);
  CHECK(rig.Read(f, 0, 100000) == data);
}

TEST_CASE("load fetches every block; evict frees them", "[unit]") {
  const uint64_t bs = 64 * 1024;
  Rig rig(64 << 20, bs);
  std::string data = RandomBytes(20 * bs + 5, 12);
  rig.store->Put("l", data);
  auto f = rig.Ref("l");
  std::atomic<uint64_t> progressed{0};
  REQUIRE(rig.engine->Load(f, 4, [&](uint64_t n) { progressed += n; }).ok());
  CHECK(progressed == data.size());
  CHECK(rig.engine->CachedOf(f.file_id).blocks == 21);
  uint64_t gets = rig.store->counters().get_requests;
  CHECK(rig.Read(f, 0, data.size()) == data);
  CHECK(rig.store->counters().get_requests == gets);
  uint64_t blocks = 0;
  CHECK(rig.engine->EvictFile(f.file_id, &blocks) == data.size());
  CHECK(blocks == 21);
  CHECK(rig.DiskBytes() == 0);
  // A load larger than the cache says so.
  Rig small(4 * bs, bs);
  small.store->Put("huge", RandomBytes(10 * bs, 1));
  Status s = small.engine->Load(small.Ref("huge"), 2, [](uint64_t) {});
  CHECK(s.code() == Status::Code::kNoSpace);
}

// Many readers, a cache a third of the working set, evictions, objects that
// change and a store that fails now and then: every read that succeeds must
// return exactly the bytes of the version it was pinned to, and the limit
// must hold. `make soak` runs it longer ([slow]).
namespace {
void Stress(int seconds) {
  const uint64_t bs = 64 * 1024;
  const int kFiles = 12;
  Rig rig(30 * bs, bs);
  std::mutex versions_mu;
  std::map<uint64_t, std::string> by_version;  // file_id -> content
  std::vector<std::string> names;
  for (int i = 0; i < kFiles; i++) {
    names.push_back("s" + std::to_string(i));
    rig.store->Put(names.back(), RandomBytes(bs * (1 + i % 5) + i * 777, 1000 + i));
  }
  // Metadata is revalidated on every Stat, so changes are seen at once.
  rig.meta = std::make_unique<cache::Metadata>(&rig.mounts, rig.idx.get(), rig.engine.get(), 0);
  auto ref_of = [&](const std::string& name, cache::FileRef* out) {
    auto m = rig.meta->Stat(name);
    if (!m.ok()) return false;
    *out = rig.meta->RefOf(*m);
    return true;
  };
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, bad{0}, failed{0}, max_accounted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; t++)
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      while (!stop) {
        std::string name = names[rng() % kFiles];
        // The content of the version this read is pinned to.
        std::string want;
        cache::FileRef f;
        {
          std::lock_guard<std::mutex> lock(versions_mu);
          if (!ref_of(name, &f)) continue;
          auto it = by_version.find(f.file_id);
          if (it == by_version.end()) {
            std::string data(f.size, '\0');
            auto r = rig.store->Read(name, f.etag, 0, f.size, data.data());
            if (!r.ok()) continue;  // changed or failing right now
            it = by_version.emplace(f.file_id, std::move(data)).first;
          }
          want = it->second;
        }
        uint64_t off = want.empty() ? 0 : rng() % want.size();
        size_t len = 1 + rng() % (3 * bs);
        Status st;
        std::string got = rig.Read(f, off, len, &st);
        reads++;
        if (!st.ok()) {
          failed++;
          continue;
        }
        if (got != want.substr(off, len)) bad++;
        auto s = rig.engine->Stats();
        max_accounted = std::max<uint64_t>(max_accounted, s.used_bytes + s.reserved_bytes);
      }
    });
  std::thread chaos([&] {
    std::mt19937 rng(99);
    int round = 0;
    while (!stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      switch (rng() % 4) {
        case 0: {  // an object changes in the store
          std::lock_guard<std::mutex> lock(versions_mu);
          int i = rng() % kFiles;
          rig.store->Put(names[i], RandomBytes(bs * (1 + rng() % 5) + rng() % 999, rng()));
          break;
        }
        case 1:
          rig.store->FailNextReads(1);
          break;
        case 2: {
          cache::FileRef f;
          std::lock_guard<std::mutex> lock(versions_mu);
          if (ref_of(names[rng() % kFiles], &f)) rig.engine->EvictFile(f.file_id, nullptr);
          break;
        }
        default:
          break;
      }
      round++;
    }
  });
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  chaos.join();
  INFO("reads " << reads << " failed " << failed);
  WARN("stress: " << reads << " reads, " << failed << " failed by injected store errors");
  CHECK(bad == 0);
  CHECK(reads > 100);
  CHECK(failed < reads / 2);
  CHECK(max_accounted <= 30 * bs);
  CHECK(rig.DiskBytes() <= 30 * bs);
}
}  // namespace

TEST_CASE("stress: concurrent reads with changes, failures and evictions", "[unit]") { Stress(3); }
TEST_CASE("soak: the stress test, longer", "[.][slow]") { Stress(120); }

TEST_CASE("stopping the engine answers every waiting reader and load", "[unit]") {
  const uint64_t bs = 64 * 1024;
  Rig rig(64 << 20, bs);
  rig.store->Put("q", RandomBytes(40 * bs, 4));
  auto f = rig.Ref("q");
  rig.store->SetDelayMs(100);
  // 40 block misses on 8 fetch threads: most are still queued at Stop().
  std::atomic<int> answered{0}, unavailable{0};
  for (uint64_t i = 0; i < 40; i++)
    rig.engine->Read(f, i * bs, 10, [&](Status s, std::vector<cache::Slice>) {
      if (s.code() == Status::Code::kUnavailable) unavailable++;
      answered++;
    });
  Status load_status;
  std::thread loader([&] { load_status = rig.engine->Load(f, 4, [](uint64_t) {}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  rig.engine->Stop();
  loader.join();  // would hang if queued fetches were dropped silently
  CHECK(answered == 40);
  CHECK(unavailable > 0);
  CHECK(load_status.code() == Status::Code::kUnavailable);
  // After a stop, new misses are refused at once.
  Status late;
  rig.Read(f, 39 * bs, 10, &late);
  CHECK(late.code() == Status::Code::kUnavailable);
}
