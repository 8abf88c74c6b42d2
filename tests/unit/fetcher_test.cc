// The Fetcher on its own, over a counting source: one request per run of
// blocks, single-flight joins, a block claimed by one worker only, bytes
// counted by source, the right bytes handed to the completion.
#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "agent/cache/fetcher.h"

namespace strata::testing {
namespace {

constexpr uint64_t kBlock = 4096;

// Byte i of the object is (i * 7) & 0xff; records each request.
class CountingSource : public cache::BlockSource {
 public:
  const char* name() const override { return "counting"; }
  Result<cache::Fetched> Fetch(const cache::BlockRequest& r, char* buf) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      requests.push_back({r.first, r.count});
    }
    uint64_t off = r.offset();
    for (uint64_t i = 0; i < r.length(); i++) buf[i] = static_cast<char>(((off + i) * 7) & 0xff);
    return cache::Fetched{name()};
  }
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint32_t>> requests;  // guarded by mu
};

struct Rig {
  CountingSource source;
  std::mutex owner_mu;  // stands for the engine's mutex
  std::condition_variable cv;
  std::map<uint64_t, std::string> got;  // guarded by owner_mu: block -> bytes
  int failures = 0;                      // guarded by owner_mu
  cache::Fetcher fetcher{&source, kBlock,
                         [this](const cache::FileRef&, uint64_t idx, const std::shared_ptr<cache::Fetcher::Fetch>&,
                                const Status& st, std::shared_ptr<const Buffer> data) {
                           std::lock_guard<std::mutex> lock(owner_mu);
                           if (!st.ok()) failures++;  // checked on the test's thread
                           else got[idx] = std::string(data->data(), data->size());
                           fetcher.EraseLocked({1, idx});
                           cv.notify_all();
                         }};
  cache::FileRef file;
  Rig() {
    file.file_id = 1;
    file.size = 10 * kBlock + 100;  // the last block is short
    file.store_uri = "test://";
    file.ufs_path = "obj";
    fetcher.StartWorkers(4);
  }
  void Await(size_t blocks) {
    std::unique_lock<std::mutex> lock(owner_mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return got.size() + failures >= blocks; }));
    REQUIRE(failures == 0);
  }
  static std::string Expect(uint64_t idx, uint64_t len) {
    std::string s(len, '\0');
    for (uint64_t i = 0; i < len; i++) s[i] = static_cast<char>(((idx * kBlock + i) * 7) & 0xff);
    return s;
  }
};

}  // namespace

TEST_CASE("fetcher: a run of blocks is one request; each block gets its own bytes", "[unit]") {
  Rig r;
  std::vector<std::shared_ptr<cache::Fetcher::Fetch>> run;
  {
    std::lock_guard<std::mutex> lock(r.owner_mu);
    for (uint64_t i = 6; i < 11; i++) {
      bool created = false;
      run.push_back(r.fetcher.JoinOrStartLocked({1, i}, std::nullopt, &created));
      CHECK(created);
    }
  }
  r.fetcher.Submit(r.file, 6, run, false);
  r.Await(5);
  std::lock_guard<std::mutex> lock(r.owner_mu);
  CHECK(r.source.requests == std::vector<std::pair<uint64_t, uint32_t>>{{6, 5}});
  for (uint64_t i = 6; i < 10; i++) CHECK(r.got[i] == Rig::Expect(i, kBlock));
  CHECK(r.got[10] == Rig::Expect(10, 100));  // the short last block
  CHECK(r.fetcher.BytesBySource() == std::vector<std::pair<std::string, uint64_t>>{{"counting", 4 * kBlock + 100}});
  CHECK(r.fetcher.InflightLocked() == 0);
}

TEST_CASE("fetcher: joins share one fetch; a block submitted twice is fetched once", "[unit]") {
  Rig r;
  std::shared_ptr<cache::Fetcher::Fetch> a, b;
  {
    std::lock_guard<std::mutex> lock(r.owner_mu);
    bool created = false;
    a = r.fetcher.JoinOrStartLocked({1, 2}, std::nullopt, &created);
    CHECK(created);
    b = r.fetcher.JoinOrStartLocked({1, 2}, std::nullopt, &created);
    CHECK_FALSE(created);
    CHECK(a == b);
    CHECK(r.fetcher.FindLocked({1, 2}) == a);
    CHECK_FALSE(r.fetcher.AddLocked({1, 2}, std::make_shared<cache::Fetcher::Fetch>()));
  }
  // Queued as background, then again as urgent (a reader came): whichever
  // copy runs first claims it, the other finds it taken.
  r.fetcher.Submit(r.file, 2, {a}, false);
  r.fetcher.Submit(r.file, 2, {a}, true);
  r.Await(1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the second copy run too
  std::lock_guard<std::mutex> lock(r.owner_mu);
  CHECK(r.source.requests.size() == 1);
  CHECK(r.got.size() == 1);
}

TEST_CASE("fetcher: stopped workers drop queued work and hand back what is in flight", "[unit]") {
  Rig r;
  r.fetcher.StopWorkers();
  std::shared_ptr<cache::Fetcher::Fetch> f;
  {
    std::lock_guard<std::mutex> lock(r.owner_mu);
    bool created = false;
    f = r.fetcher.JoinOrStartLocked({1, 0}, std::nullopt, &created);
  }
  r.fetcher.Submit(r.file, 0, {f}, true);  // no workers: dropped, not run
  std::lock_guard<std::mutex> lock(r.owner_mu);
  CHECK(r.source.requests.empty());
  auto left = r.fetcher.TakeAllLocked();
  REQUIRE(left.size() == 1);
  CHECK(left[0] == f);
  CHECK(r.fetcher.InflightLocked() == 0);
}

}  // namespace strata::testing
