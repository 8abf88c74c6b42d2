// Block sources and the verified (zero-copy) SSD read path: a chain of
// sources in front of the store, reads that never fetch, blocks checked on
// their first read after a restart and by the background scrub.
#include <unistd.h>
#include <fstream>

#include "tests/unit/rig.h"

namespace strata::testing {
namespace {

// Rewrites one byte in the middle of a block file.
void Corrupt(Rig& rig, const BlockKey& key, size_t at, char expected) {
  std::fstream blk(rig.ssd->PathOf(key), std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(blk.good());
  blk.seekp(static_cast<std::streamoff>(at));
  blk.put(static_cast<char>(expected ^ 0x5a));
}

void WaitStored(Rig& rig, uint64_t file_id, uint64_t blocks) {
  for (int i = 0; i < 500 && rig.engine->CachedOf(file_id).blocks < blocks; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(rig.engine->CachedOf(file_id).blocks == blocks);
}

cache::EngineOptions Options(uint64_t bs) {
  cache::EngineOptions o;
  o.capacity = 64 << 20;
  o.block_size = bs;
  o.scrub_bytes_per_sec = 0;  // the tests scrub by hand
  return o;
}

uint64_t FromSource(const cache::EngineStats& st, const std::string& name) {
  for (const auto& [n, bytes] : st.fetched_bytes_by_source)
    if (n == name) return bytes;
  return 0;
}

// A peer stand-in: serves the blocks it holds (by content key), fails the rest.
class MapSource : public cache::BlockSource {
 public:
  const char* name() const override { return "peer"; }
  Result<cache::Fetched> Fetch(const cache::BlockRequest& r, char* buf) override {
    calls++;
    std::lock_guard<std::mutex> lock(mu);
    if (stale) return Status::Stale("peer: that version is gone");
    uint64_t at = 0;
    for (uint64_t i = r.first; i < r.first + r.count; i++) {
      auto it = blocks.find(r.KeyOf(i).ToString());
      if (it == blocks.end()) return Status::NotFound("peer: no block " + r.KeyOf(i).ToString());
      std::memcpy(buf + at, it->second.data(), it->second.size());
      at += it->second.size();
    }
    return cache::Fetched{name()};
  }
  std::mutex mu;
  std::map<std::string, std::string> blocks;
  bool stale = false;
  std::atomic<int> calls{0};
};

}  // namespace

TEST_CASE("the content key means the same thing for the same version everywhere", "[unit]") {
  cache::BlockRequest r{"s3://b/p", "dir/obj", "\"e1\"", 10 << 20, 4 << 20, 1, 2};
  CHECK(r.offset() == 4u << 20);
  CHECK(r.length() == 6u << 20);  // the second block is the short tail
  cache::ContentKey k = r.KeyOf(2);
  CHECK(k.index == 2);
  CHECK(k.Hash() == cache::ContentKey{"s3://b/p", "dir/obj", "\"e1\"", 10 << 20, 4 << 20, 2}.Hash());
  // Any field changed is another block.
  CHECK(k.Hash() != cache::ContentKey{"s3://b/p", "dir/obj", "\"e2\"", 10 << 20, 4 << 20, 2}.Hash());
  CHECK(k.Hash() != cache::ContentKey{"s3://b/q", "dir/obj", "\"e1\"", 10 << 20, 4 << 20, 2}.Hash());
  CHECK(k.Hash() != cache::ContentKey{"s3://b/p", "dir/obj", "\"e1\"", 10 << 20, 1 << 20, 2}.Hash());
  CHECK(k.ToString() == "s3://b/p/dir/obj@\"e1\"#10485760/4194304:2");
}

TEST_CASE("a source chain: the first source that has the blocks answers, the store after it", "[unit]") {
  const uint64_t bs = 64 * 1024;
  MapSource peer;
  Rig rig(Options(bs), nullptr);
  // The chain reads the rig's mount table: the engine is made again with it.
  std::unique_ptr<cache::BlockSource> store_source = cache::MakeStoreSource(&rig.mounts);
  cache::SourceChain chain({&peer, store_source.get()});
  rig.source = &chain;
  rig.Restart();
  std::string data = RandomBytes(4 * bs, 3);
  rig.store->Put("o", data);
  auto f = rig.Ref("o");
  CHECK(f.store_uri == rig.store->uri());
  // The peer holds block 0 only.
  cache::BlockRequest req{f.store_uri, f.ufs_path, f.etag, f.size, static_cast<uint32_t>(bs), 0, 1};
  peer.blocks[req.KeyOf(0).ToString()] = data.substr(0, bs);
  CHECK(rig.Read(f, 0, bs) == data.substr(0, bs));
  CHECK(rig.store->counters().get_requests == 0);
  CHECK(FromSource(rig.engine->Stats(), "peer") == bs);
  // Block 1: the peer fails, the store answers.
  CHECK(rig.Read(f, bs, bs) == data.substr(bs, bs));
  CHECK(rig.store->counters().get_requests == 1);
  CHECK(FromSource(rig.engine->Stats(), "store") == bs);
  // A peer that says the version is gone ends the chain: the reader hears it.
  peer.stale = true;
  Status st;
  rig.Read(f, 2 * bs, 10, &st);
  CHECK(st.code() == Status::Code::kStale);
  CHECK(rig.store->counters().get_requests == 1);
}

TEST_CASE("ReadIfCached answers only from the cache and never fetches", "[unit]") {
  const uint64_t bs = 64 * 1024;
  Rig rig(Options(bs), nullptr);
  std::string data = RandomBytes(3 * bs, 5);
  rig.store->Put("o", data);
  auto f = rig.Ref("o");
  Result<std::vector<cache::Slice>> miss = rig.engine->ReadIfCached(f, 0, bs);
  CHECK(miss.status().IsNotFound());
  CHECK(rig.store->counters().get_requests == 0);
  CHECK(rig.engine->Stats().inflight_fetches == 0);
  REQUIRE(rig.Read(f, 0, 2 * bs) == data.substr(0, 2 * bs));
  WaitStored(rig, f.file_id, 2);
  uint64_t gets = rig.store->counters().get_requests;
  // Across the boundary of the two cached blocks: two slices, the bytes right.
  Result<std::vector<cache::Slice>> hit = rig.engine->ReadIfCached(f, bs - 100, 300);
  REQUIRE(hit.ok());
  REQUIRE(hit->size() == 2);
  std::string got;
  for (const cache::Slice& s : *hit) {
    std::string part(s.length, '\0');
    REQUIRE(cache::CopySlice(s, part.data()).ok());
    got += part;
  }
  CHECK(got == data.substr(bs - 100, 300));
  // Stored by this process, so verified: served from the block file itself.
  CHECK((*hit)[0].data == nullptr);
  CHECK((*hit)[0].fd != nullptr);
  // Partly cached: NotFound, and still nothing fetched.
  CHECK(rig.engine->ReadIfCached(f, 2 * bs - 1, 2).status().IsNotFound());
  CHECK(rig.store->counters().get_requests == gets);
}

TEST_CASE("a block corrupted while the agent was down is caught on its first read after start", "[unit]") {
  const uint64_t bs = 1 << 20;
  Rig rig(Options(bs), nullptr);
  std::string data = RandomBytes(2 * bs, 9);
  rig.store->Put("c", data);
  auto f = rig.Ref("c");
  REQUIRE(rig.Read(f, 0, 2 * bs) == data);
  WaitStored(rig, f.file_id, 2);
  rig.Restart();
  Corrupt(rig, {f.file_id, 1}, 700000, data[bs + 700000]);
  uint64_t gets = rig.store->counters().get_requests;
  // A chunk of the block that is good: checked, served, nothing fetched.
  CHECK(rig.Read(f, bs + 10, 100) == data.substr(bs + 10, 100));
  CHECK(rig.engine->Stats().checksum_failures == 0);
  CHECK(rig.store->counters().get_requests == gets);
  // The first read of the bad chunk finds it: dropped, fetched again.
  CHECK(rig.Read(f, bs + 699990, 100) == data.substr(bs + 699990, 100));
  CHECK(rig.engine->Stats().checksum_failures == 1);
  CHECK(rig.store->counters().get_requests == gets + 1);
  // Block 0 was good: each chunk checked once, then served from its file with no check.
  CHECK(rig.Read(f, 0, bs) == data.substr(0, bs));
  CHECK(rig.engine->Stats().verified_blocks == 1);
  Result<std::vector<cache::Slice>> again = rig.engine->ReadIfCached(f, 0, 100);
  REQUIRE(again.ok());
  CHECK((*again)[0].fd != nullptr);
  CHECK(rig.engine->Stats().verified_blocks == 1);
  CHECK(rig.store->counters().get_requests == gets + 1);
}

TEST_CASE("the scrub finds a block corrupted under a running agent", "[unit]") {
  const uint64_t bs = 1 << 20;
  Rig rig(Options(bs), nullptr);
  std::string data = RandomBytes(3 * bs, 12);
  rig.store->Put("s", data);
  auto f = rig.Ref("s");
  REQUIRE(rig.Read(f, 0, 3 * bs) == data);
  WaitStored(rig, f.file_id, 3);
  Corrupt(rig, {f.file_id, 2}, 5, data[2 * bs + 5]);
  // Verified blocks are read without a check: the scrub is what finds it.
  CHECK(rig.engine->Scrub(UINT64_MAX) == 3 * bs);
  CHECK(rig.engine->Stats().scrubbed_blocks == 3);
  CHECK(rig.engine->Stats().checksum_failures == 1);
  CHECK(rig.engine->CachedOf(f.file_id).blocks == 2);
  uint64_t gets = rig.store->counters().get_requests;
  CHECK(rig.Read(f, 2 * bs, bs) == data.substr(2 * bs));
  CHECK(rig.store->counters().get_requests == gets + 1);
  // The next pass starts over with what is cached now.
  WaitStored(rig, f.file_id, 3);
  CHECK(rig.engine->Scrub(bs) == bs);
  CHECK(rig.engine->Stats().checksum_failures == 1);
}

TEST_CASE("the scrub drops a block file cut short or gone, and counts it as a block file error", "[unit]") {
  const uint64_t bs = 1 << 20;
  Rig rig(Options(bs), nullptr);
  std::string data = RandomBytes(3 * bs, 13);
  rig.store->Put("g", data);
  auto f = rig.Ref("g");
  REQUIRE(rig.Read(f, 0, 3 * bs) == data);
  WaitStored(rig, f.file_id, 3);
  ::truncate(rig.ssd->PathOf({f.file_id, 0}).c_str(), bs / 2);  // cut short
  ::unlink(rig.ssd->PathOf({f.file_id, 1}).c_str());              // gone
  rig.engine->Scrub(UINT64_MAX);
  cache::EngineStats st = rig.engine->Stats();
  CHECK(st.block_file_errors == 2);
  CHECK(st.checksum_failures == 0);
  CHECK(rig.engine->CachedOf(f.file_id).blocks == 1);
  // Both are fetched again on their next read.
  uint64_t gets = rig.store->counters().get_requests;
  CHECK(rig.Read(f, 0, 2 * bs) == data.substr(0, 2 * bs));
  CHECK(rig.store->counters().get_requests > gets);
}

TEST_CASE("a first read is answered from the head of its block, fetched beside the rest", "[unit]") {
  const uint64_t bs = 1 << 20;
  Rig rig(Options(bs), nullptr);
  std::string data = RandomBytes(2 * bs, 21);
  rig.store->Put("p", data);
  auto f = rig.Ref("p");
  CHECK(rig.Read(f, 100, 4096, nullptr, true) == data.substr(100, 4096));
  WaitStored(rig, f.file_id, 1);
  // Two GETs, head and rest, and no byte fetched twice.
  CHECK(rig.store->counters().get_requests == 2);
  CHECK(rig.store->counters().bytes_read == bs);
  CHECK(rig.Read(f, 0, bs, nullptr, true) == data.substr(0, bs));
  CHECK(rig.store->counters().get_requests == 2);
  // Not a first read: one GET for the block.
  CHECK(rig.Read(f, bs + 5, 10) == data.substr(bs + 5, 10));
  CHECK(rig.store->counters().get_requests == 3);
}

TEST_CASE("a first read whose GETs fail gets the error and keeps nothing", "[unit]") {
  const uint64_t bs = 1 << 20;
  Rig rig(Options(bs), nullptr);
  std::string data = RandomBytes(bs, 22);
  rig.store->Put("p", data);
  auto f = rig.Ref("p");
  rig.store->FailNextReads(2);
  Status st;
  rig.Read(f, 7, 1000, &st, true);
  CHECK_FALSE(st.ok());
  // The reader heard from the head; the rest of the block finishes after.
  for (int i = 0; i < 500 && rig.engine->Stats().inflight_fetches > 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(rig.engine->Stats().inflight_fetches == 0);
  CHECK(rig.engine->CachedOf(f.file_id).blocks == 0);
  CHECK(rig.Read(f, 7, 1000, nullptr, true) == data.substr(7, 1000));
  WaitStored(rig, f.file_id, 1);
}

}  // namespace strata::testing
