// The fetching half of the block cache. One fetch per block is in flight at a
// time (single-flight: every reader of a block joins that fetch); runs of
// consecutive blocks queued together go to the BlockSource as one request;
// urgent work (a reader waits) runs before background work (readahead,
// loads, promotions); the bytes each source answered are counted. Every
// request carries the source's deadline (the store's request timeout, a
// peer's timeout), so no worker waits forever.
//
// Locking contract: the in-flight map and the guarded fields of each Fetch
// belong to the owner's mutex (the engine's mu_), because "is the block
// cached?" and "join or start its fetch" must be one step. Methods ending in
// Locked are called with that mutex held, the others without it. The
// completion runs on a fetch worker without it.
//
// Thread safety: as above; Submit and Run may be called from any thread
// until StopWorkers().
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/base/histogram.h"
#include "agent/base/block_key.h"
#include "agent/base/buffer.h"
#include "agent/base/status.h"
#include "agent/base/thread_pool.h"
#include "agent/cache/block_source.h"
#include "agent/cache/eviction.h"

namespace strata::cache {

class Fetcher {
 public:
  struct Fetch {
    std::atomic<bool> started{false};  // a worker claimed it
    std::optional<Tier> tier;          // forced (a load, a demotion)
    bool done = false;                       // guarded by the owner's mutex
    std::shared_ptr<const Buffer> data;      // guarded by the owner's mutex; set when done and OK
    // Guarded by the owner's mutex: answered with the bytes as soon as they
    // arrive; late waiters once they are stored (kept: in a tier).
    std::vector<std::function<void(Status, std::shared_ptr<const Buffer>)>> waiters;
    std::vector<std::function<void(Status, bool kept)>> late_waiters;
    bool read_when_done = false;  // guarded by the owner's mutex: a reader had the bytes after `done`
  };
  // The result of one block, on a fetch worker: the owner answers its
  // waiters and stores it.
  using Completion = std::function<void(const FileRef& f, uint64_t idx, const std::shared_ptr<Fetch>& fetch,
                                        const Status& st, std::shared_ptr<const Buffer> data)>;

  // `source` (not owned) answers every fetch.
  Fetcher(BlockSource* source, uint64_t block_size, Completion done);
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  void StartWorkers(int threads);
  // Joins the workers; work queued and not started is dropped (the owner
  // answers what TakeAllLocked returns).
  void StopWorkers();

  std::shared_ptr<Fetch> FindLocked(const BlockKey& key) const;
  // The fetch of `key`, joined or new (*created: the caller submits it).
  std::shared_ptr<Fetch> JoinOrStartLocked(const BlockKey& key, std::optional<Tier> tier, bool* created);
  // Puts a fetch whose bytes are already in hand (an adopted or demoted
  // block) in flight, so readers meanwhile wait for those bytes. False when
  // `key` is in flight already.
  bool AddLocked(const BlockKey& key, std::shared_ptr<Fetch> fetch);
  void EraseLocked(const BlockKey& key);
  size_t InflightLocked() const { return inflight_.size(); }
  // Empties the map (the agent is stopping).
  std::vector<std::shared_ptr<Fetch>> TakeAllLocked();

  // Fetches blocks [first, first + fetches.size()) of `f` on a worker: the
  // blocks it can still claim, each run of them with one request.
  void Submit(const FileRef& f, uint64_t first, std::vector<std::shared_ptr<Fetch>> fetches, bool urgent);
  // Other work for the fetch workers (a split first read, a promotion).
  void Run(std::function<void()> fn, bool urgent);
  // One request to the source, its bytes and latency counted by source.
  Result<Fetched> FetchRange(const BlockRequest& req, char* buf, uint64_t bytes);
  std::vector<std::pair<std::string, uint64_t>> BytesBySource();
  // Request to last byte, of the requests that succeeded.
  std::vector<std::pair<std::string, LatencyHistogram>> LatencyBySource();
  // Who would answer block `idx` of `f` now ("store", "peer").
  const char* Answerer(const FileRef& f, uint64_t idx);

 private:
  void RunFetches(const FileRef& f, uint64_t first, const std::vector<std::shared_ptr<Fetch>>& fetches);
  void FetchRun(const FileRef& f, uint64_t first, const std::vector<std::shared_ptr<Fetch>>& run);
  // One request for the whole of `run` (FetchRun splits where the source says).
  void FetchPart(const FileRef& f, uint64_t first, const std::vector<std::shared_ptr<Fetch>>& run);
  uint32_t BlockLength(const FileRef& f, uint64_t idx) const;

  BlockSource* const source_;
  const uint64_t block_size_;
  const Completion done_;
  std::unordered_map<BlockKey, std::shared_ptr<Fetch>, BlockKeyHash> inflight_;  // guarded by the owner's mutex
  std::unique_ptr<ThreadPool> workers_;
  std::unique_ptr<ThreadPool> local_workers_;  // FileRef::local_only fetches (a peer asked)
  std::mutex source_mu_;
  struct SourceFigures {
    std::string name;
    uint64_t bytes = 0;
    LatencyHistogram latency;
  };
  std::vector<SourceFigures> sources_;  // guarded by source_mu_
};

}  // namespace strata::cache
