// The block cache engine: which blocks are cached, fetching the missing ones
// exactly once, reading cached ones back with their checksums verified,
// keeping the cache under its size limit.
//
// Data path. A read of [off, off+len) of one file version is split into
// blocks (default 4 MiB). A cached block is read from its SSD block file; the
// 256 KiB chunks the read touches are checked against their xxh3 checksums,
// and a mismatch drops the block and fetches it again (never served). A
// missing block is fetched by one worker (single-flight): every reader of the
// same block waits on that one fetch and is answered from memory as soon as
// the bytes arrive, before they are written to the SSD. FUSE workers never
// wait for the network: a miss parks its callback and returns.
//
// Capacity. used + releasing + reserved <= capacity at all times: a fetch
// reserves its block's bytes before it starts; when a reservation would pass
// the high watermark, least-recently-used blocks are evicted down to the low
// watermark; bytes being unlinked still count until they are gone. When
// nothing can be evicted the block is served but not kept.
//
// Persistence. Block rows go to the LMDB index through one writer thread in
// batches, after the block file is in place; access times are kept in memory
// and flushed every few seconds. At Start() the index and the block files are
// reconciled (orphans removed, missing files dropped) without asking any store.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent/base/block_key.h"
#include "agent/base/buffer.h"
#include "agent/base/fd.h"
#include "agent/base/status.h"
#include "agent/base/thread_pool.h"
#include "agent/cache/eviction.h"
#include "agent/cache/mounts.h"
#include "agent/index/index.h"
#include "agent/tier/ssd_tier.h"

namespace strata::cache {

struct EngineOptions {
  uint64_t capacity = 0;
  uint64_t block_size = 4u << 20;
  double high_watermark = 0.95;
  double low_watermark = 0.85;
  int fetch_threads = 8;
};

// One version of one file, as a reader sees it.
struct FileRef {
  uint64_t file_id = 0;
  size_t mount = 0;
  std::string ufs_path;
  std::string etag;
  uint64_t size = 0;
};

// A piece of a read's reply: `length` bytes at `offset` of `data`.
struct Slice {
  std::shared_ptr<const Buffer> data;
  size_t offset = 0;
  size_t length = 0;
};

struct EngineStats {
  uint64_t capacity = 0;
  uint64_t used_bytes = 0;
  uint64_t reserved_bytes = 0;
  uint64_t blocks = 0;
  uint64_t inflight_fetches = 0;
  uint64_t bytes_read = 0;       // bytes returned to readers
  uint64_t bytes_from_cache = 0; // of those, served from the SSD tier
  uint64_t fetched_blocks = 0;
  uint64_t fetch_errors = 0;
  uint64_t uncached_fetches = 0;  // served but not kept (no room / disk error)
  uint64_t evicted_blocks = 0;
  uint64_t evicted_bytes = 0;
  uint64_t checksum_failures = 0;
  std::vector<uint64_t> mount_used_bytes;  // per mount, same order as the MountTable
};

class Engine {
 public:
  Engine(EngineOptions opts, MountTable* mounts, index::Index* index, tier::SsdTier* ssd);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Loads the block rows, reconciles them with the block files and starts the
  // workers. The cache is warm when this returns.
  Status Start();
  // Stops fetching and flushes the index. Idempotent.
  void Stop();

  uint64_t block_size() const { return opts_.block_size; }

  using ReadDone = std::function<void(Status, std::vector<Slice>)>;
  // Reads [off, off+len) (clamped to the file size). `done` is called exactly
  // once: on this thread when everything was cached, else on a fetch worker.
  void Read(const FileRef& f, uint64_t off, size_t len, ReadDone done);
  // Starts background fetches of the blocks [first, first+count) that are
  // neither cached nor in flight.
  void Prefetch(const FileRef& f, uint64_t first, uint64_t count);
  // Fetches every missing block of `f`, at most `parallel` at a time, and
  // waits. `progress` gets the byte count of each block as it is done
  // (cached ones too). Not counted as reads in the hit ratio.
  // Stops early (with what is in flight finished) when *cancel becomes true.
  Status Load(const FileRef& f, int parallel, const std::function<void(uint64_t)>& progress,
              const std::atomic<bool>* cancel = nullptr);
  // Drops the cached blocks of a file version. Returns the bytes freed.
  uint64_t EvictFile(uint64_t file_id, uint64_t* blocks_freed);
  // The file version is gone (changed or deleted): drop its blocks now and
  // never keep a block of it that is still being fetched.
  void Retire(uint64_t file_id);
  // Keeps `data` as block `idx` of the version `f` without fetching it: a
  // version this host just uploaded, so reading it back is a hit. Skipped
  // when the block is cached or in flight, or there is no room.
  void Adopt(const FileRef& f, uint64_t idx, std::shared_ptr<Buffer> data);

  struct FileCache {
    uint64_t blocks = 0;
    uint64_t bytes = 0;
  };
  FileCache CachedOf(uint64_t file_id);
  EngineStats Stats();

 private:
  struct Block {
    uint32_t length = 0;
    int64_t atime_ms = 0;
    std::vector<uint64_t> checksums;
    uint64_t gen = 0;  // which insertion of this key (a refetch gets a new one)
  };
  struct Fetch;
  using BlockDone = std::function<void(Status, Slice)>;

  void GetBlock(const FileRef& f, uint64_t idx, uint32_t off, uint32_t len, bool urgent,
                BlockDone done);
  // Reads a cached block's range from the SSD and verifies it. NotFound when
  // the block is not (or no longer) cached; Corrupt after dropping a bad one.
  Result<Slice> ReadCached(const BlockKey& key, uint32_t off, uint32_t len);
  // Starts (or joins) the fetch of one block; `waiter` may be empty. Returns
  // false, without calling the waiter, when the block is cached by now.
  bool StartFetch(const FileRef& f, uint64_t idx, bool urgent,
                  std::function<void(Status, std::shared_ptr<const Buffer>)> waiter);
  // Fetches blocks [first, first + fetches.size()) with one ranged read per
  // run of blocks this worker could claim.
  void RunFetches(FileRef f, uint64_t first, std::vector<std::shared_ptr<Fetch>> fetches);
  void FetchRun(const FileRef& f, uint64_t first, const std::vector<std::shared_ptr<Fetch>>& run);
  // Answers a block's waiters, stores it (when `keep`), indexes it.
  void CompleteFetch(const FileRef& f, uint64_t idx, const std::shared_ptr<Fetch>& fetch, bool keep,
                     const Status& st, std::shared_ptr<Buffer> buf, bool fetched = true);
  // Reserves room for `len` bytes, evicting if needed. False: no room.
  bool Reserve(uint64_t len);
  // Removes blocks from the maps (caller holds mu_), moving their bytes from
  // used to releasing; returns what the caller must unlink.
  std::vector<BlockKey> DetachLocked(const std::vector<BlockKey>& keys, uint64_t* bytes);
  // Unlinks detached blocks and queues their index rows for deletion.
  void Release(const std::vector<BlockKey>& keys, uint64_t bytes);
  void InsertLocked(const BlockKey& key, Block block, size_t mount);
  uint32_t BlockLength(const FileRef& f, uint64_t idx) const;
  // An open descriptor of the block file of insertion `gen` of `key`.
  std::shared_ptr<Fd> OpenFd(const BlockKey& key, uint64_t gen);
  void DropFd(const BlockKey& key);
  void QueueIndexOp(index::Index::BlockOp op);
  void IndexWriterLoop();

  const EngineOptions opts_;
  const uint64_t chunk_;  // checksum granularity
  MountTable* const mounts_;
  index::Index* const index_;
  tier::SsdTier* const ssd_;

  std::mutex mu_;
  std::unordered_map<BlockKey, Block, BlockKeyHash> blocks_;                // guarded by mu_
  std::unordered_map<BlockKey, std::shared_ptr<Fetch>, BlockKeyHash> inflight_;  // guarded by mu_
  std::unordered_map<uint64_t, std::unordered_set<uint64_t>> by_file_;     // guarded by mu_
  std::unordered_map<uint64_t, size_t> file_mount_;                        // guarded by mu_
  std::unordered_set<uint64_t> retired_;                                   // guarded by mu_
  std::unordered_set<BlockKey, BlockKeyHash> dirty_atime_;                 // guarded by mu_
  // Detached blocks whose files are still being unlinked: a new copy of the
  // same key must not be written until then (the unlink is by path).
  std::unordered_multiset<BlockKey, BlockKeyHash> unlinking_;               // guarded by mu_
  std::unique_ptr<EvictionPolicy> policy_;                                 // guarded by mu_
  uint64_t used_ = 0, releasing_ = 0, reserved_ = 0;                       // guarded by mu_
  uint64_t next_gen_ = 1;                                                  // guarded by mu_
  std::vector<uint64_t> mount_used_;                                       // guarded by mu_

  std::mutex fd_mu_;
  struct OpenBlock {
    uint64_t gen;
    std::shared_ptr<Fd> fd;
  };
  std::unordered_map<BlockKey, OpenBlock, BlockKeyHash> fds_;  // guarded by fd_mu_

  std::mutex index_mu_;
  std::condition_variable index_cv_;
  std::vector<index::Index::BlockOp> index_ops_;  // guarded by index_mu_
  bool index_stop_ = false;                       // guarded by index_mu_
  std::thread index_writer_;

  std::unique_ptr<ThreadPool> fetchers_;
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> last_put_warning_ms_{-100000};

  std::atomic<uint64_t> bytes_read_{0}, bytes_from_cache_{0}, fetched_blocks_{0}, fetch_errors_{0},
      uncached_fetches_{0}, evicted_blocks_{0}, evicted_bytes_{0}, checksum_failures_{0};
};

}  // namespace strata::cache
