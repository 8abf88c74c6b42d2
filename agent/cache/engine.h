// The block cache engine: which blocks are cached and in which tier,
// fetching the missing ones exactly once, reading cached ones back with their
// checksums verified, keeping each tier under its size limit.
//
// Data path. A read of [off, off+len) of one file version is split into
// blocks (default 4 MiB). A block cached in RAM is answered from memory. One
// on the SSD is answered by reference to its block file (a Slice holding the
// descriptor: FUSE splices it to the kernel without copying it through us)
// once what it reads has been verified: blocks stored by this process are,
// and each 256 KiB chunk of a block found at start is checked against its
// xxh3 checksum the first time a read touches it (a mismatch drops the block
// and fetches it again, never served); a background scrub checks them all
// again, slowly. `verify_every_read` checks the chunks a read touches on
// every read instead. A missing block is fetched by the Fetcher (fetcher.h:
// single-flight, runs of blocks in one request, urgent before background)
// from the BlockSource (the store, or a chain with peers in front): every
// reader of the same block waits on that one fetch and is answered as soon
// as the bytes arrive, before they are stored. FUSE workers
// never wait for the network, nor for a policy: a miss parks its callback
// and returns. ReadIfCached never fetches (for servers of cached bytes).
//
// Tiers. An optional RAM tier sits above the SSD tier; a block lives in one
// of them. Where a fetched block goes is the admission hook's answer (none:
// the SSD tier), decided while the GET is in flight; an SSD block read a
// second time is promoted to RAM in the background; a block leaving RAM is
// demoted to the SSD tier when it was read again there (or the scorer says
// so), else dropped. RAM blocks are not indexed: they do not survive a restart.
//
// Capacity. Per tier, used + releasing + reserved <= capacity: a block's bytes
// are reserved before it is stored; when a reservation would pass the high
// watermark, blocks are evicted down to the low watermark, in the order of
// the scorer (the Lua on_evict hook) or least-recently-used; bytes being
// unlinked still count until they are gone. Pinned blocks (paths given to
// SetPins) are never chosen. When nothing can be evicted the block is served
// but not kept.
//
// Persistence. SSD block rows go to the LMDB index through one writer thread
// in batches, after the block file is in place; access times are kept in
// memory and flushed every few seconds. Start() loads the rows and serves at
// once; a background sweep then reconciles them with the block files
// (orphans removed, missing files dropped) without asking any store.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent/base/histogram.h"
#include "agent/base/block_key.h"
#include "agent/base/buffer.h"
#include "agent/base/clock.h"
#include "agent/base/fd.h"
#include "agent/base/status.h"
#include "agent/base/thread_pool.h"
#include "agent/cache/block_source.h"
#include "agent/cache/fetcher.h"
#include "agent/cache/eviction.h"
#include "agent/cache/mounts.h"
#include "agent/cache/slice.h"
#include "agent/index/index.h"
#include "agent/tier/mem_tier.h"
#include "agent/tier/ssd_tier.h"

namespace strata::cache {

struct EngineOptions {
  uint64_t capacity = 0;      // SSD tier
  uint64_t mem_capacity = 0;  // RAM tier; 0: none
  uint64_t block_size = 4u << 20;
  double high_watermark = 0.95;
  double low_watermark = 0.85;
  int fetch_threads = 16;
  uint32_t promote_hits = 1;  // an SSD block hit this often moves to RAM
  int64_t access_gap_ms = 1000;  // reads closer together are one access
  const Clock* clock = nullptr;  // access times; default the system clock
  // Check SSD blocks against their checksums on every read (and copy them
  // through memory), not only each chunk's first read after start.
  bool verify_every_read = false;
  // Background scrub: SSD blocks re-read and checked at this rate (a
  // corrupted one is dropped, so a later read fetches it again); 0: off.
  uint64_t scrub_bytes_per_sec = 16u << 20;
};

// Where a new block of a file goes (the Lua on_admit hook).
class Admission {
 public:
  virtual ~Admission() = default;
  // A fetch of `f` is starting: begin deciding. Must not block. `source`
  // is who will answer: "store", or "peer" (another agent of the cluster).
  virtual void Prepare(const FileRef& f, const char* source) = 0;
  // The decision, on a fetch worker once the bytes are here; may wait a
  // bounded time. A tier, std::nullopt for "do not keep", or `fallback`.
  virtual std::optional<Tier> Decide(const FileRef& f, Tier fallback, const char* source) = 0;
  // False while nothing decides (no hook): the engine then neither asks who
  // answers a fetch (a membership lookup per block) nor calls Prepare/Decide.
  virtual bool Deciding() const { return true; }
};

// Paths whose blocks are never evicted: `path` itself, and with
// `recursive` everything below it ("" = the whole mount).
struct PinRule {
  std::string path;
  bool recursive = false;
  bool Matches(const std::string& p) const;
};

struct EvictResult {
  uint64_t files = 0;
  uint64_t blocks = 0;
  uint64_t bytes = 0;
  uint64_t pinned_blocks = 0;  // matched but kept: pinned
};

struct TierStats {
  uint64_t capacity = 0;
  uint64_t used_bytes = 0;
  uint64_t reserved_bytes = 0;
  uint64_t pinned_bytes = 0;
  uint64_t blocks = 0;
  uint64_t bytes_served = 0;  // reads answered from this tier
  uint64_t hits = 0;          // block reads answered from this tier
  uint64_t evicted_blocks = 0;
};

struct EngineStats {
  uint64_t capacity = 0;  // both tiers
  uint64_t used_bytes = 0;
  uint64_t reserved_bytes = 0;
  uint64_t pinned_bytes = 0;
  uint64_t blocks = 0;
  TierStats tiers[kTierCount];
  uint64_t promotions = 0;      // SSD -> RAM
  uint64_t demotions = 0;       // RAM -> SSD
  uint64_t not_admitted = 0;    // blocks the admission hook kept out
  uint64_t scorer_rankings = 0; // evictions ordered by the scorer
  uint64_t scorer_failures = 0; // ... that fell back to LRU
  uint64_t inflight_fetches = 0;
  uint64_t bytes_read = 0;       // bytes returned to readers
  uint64_t bytes_from_cache = 0; // of those, served from a tier
  uint64_t fetched_blocks = 0;
  uint64_t fetch_errors = 0;
  uint64_t uncached_fetches = 0;  // served but not kept (no room / disk error)
  uint64_t misses = 0;  // block reads that waited for a fetch
  uint64_t evicted_blocks = 0;
  uint64_t evicted_for_space = 0;  // of those, to make room (the rest: evict requests, TTLs, policies)
  uint64_t evicted_bytes = 0;
  uint64_t checksum_failures = 0;
  uint64_t block_file_errors = 0;  // block files a reader or the scrub could not read (disk errors, cut short, gone): dropped
  uint64_t verified_blocks = 0;  // blocks found at start, every chunk since checked by a read
  uint64_t scrubbed_blocks = 0;  // blocks checked by the background scrub
  // Bytes fetched, by the name of the source that answered ("store", "peer").
  std::vector<std::pair<std::string, uint64_t>> fetched_bytes_by_source;
  std::vector<std::pair<std::string, LatencyHistogram>> fetch_latency_by_source;
  std::vector<uint64_t> mount_used_bytes;  // per mount, same order as the MountTable
};

class Engine {
 public:
  // `source` (not owned; must outlive the engine) answers misses; nullptr:
  // the stores of `mounts`.
  Engine(EngineOptions opts, MountTable* mounts, index::Index* index, tier::SsdTier* ssd,
         BlockSource* source = nullptr);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Loads the block rows, reconciles them with the block files and starts the
  // workers. The cache is warm when this returns.
  Status Start();
  // Stops fetching and flushes the index. Idempotent.
  void Stop();

  uint64_t block_size() const { return opts_.block_size; }
  const Clock* clock() const { return clock_; }
  bool has_mem_tier() const { return opts_.mem_capacity > 0; }

  // Hooks; set before Start(), or nullptr for the built-in rules. Both must
  // outlive the engine's workers (Stop()).
  void SetAdmission(Admission* a) { admission_ = a; }
  void SetScorer(Scorer* s) { scorer_ = s; }
  // Replaces the pin rules; blocks that become unpinned are evictable again.
  void SetPins(std::vector<PinRule> rules);

  using ReadDone = std::function<void(Status, std::vector<Slice>)>;
  // Reads [off, off+len) (clamped to the file size). `done` is called exactly
  // once: on this thread when everything was cached, else on a fetch worker.
  // `first`: the first read of an open file. When it lies in one block that
  // is neither cached nor in flight, that block is fetched in two GETs side
  // by side, its head (up to the read's end, at least 256 KiB) and the rest,
  // and the read is answered from the head: the first byte does not wait
  // for a whole block, and no byte is fetched twice.
  void Read(const FileRef& f, uint64_t off, size_t len, ReadDone done, bool first = false);
  // Reads [off, off+len) (clamped) only when every block of it is cached;
  // NotFound otherwise. Never fetches; counts as an access.
  Result<std::vector<Slice>> ReadIfCached(const FileRef& f, uint64_t off, size_t len);
  // Starts background fetches of the blocks [first, first+count) that are
  // neither cached nor in flight.
  void Prefetch(const FileRef& f, uint64_t first, uint64_t count);
  // Fetches every missing block of `f`, at most `parallel` at a time, and
  // waits. `progress` gets the byte count of each block as it is done
  // (cached ones too). Not counted as reads in the hit ratio.
  // Stops early (with what is in flight finished) when *cancel becomes true.
  // `tier` overrides the admission hook for the blocks it fetches. With
  // `only`, just the blocks it accepts (a member's share of a cluster load).
  Status Load(const FileRef& f, int parallel, const std::function<void(uint64_t)>& progress,
              const std::atomic<bool>* cancel = nullptr, std::optional<Tier> tier = std::nullopt,
              const std::function<bool(uint64_t)>& only = nullptr);
  // A front end could not read the block file of fd slice `s` (an I/O
  // error, fewer bytes than promised): that copy is dropped, counted and
  // logged, so the next read fetches the block again. Any thread.
  void DropUnreadable(const Slice& s, const std::string& problem);
  // Drops the cached blocks of a file version (pinned ones too). Returns the
  // bytes freed.
  uint64_t EvictFile(uint64_t file_id, uint64_t* blocks_freed);
  // Drops the cached blocks of files matching `rule` whose last access is
  // before `idle_before_ms` (0: any), except pinned ones.
  EvictResult EvictMatching(const PinRule& rule, int64_t idle_before_ms);
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
    std::vector<uint64_t> indexes;  // with `list`: the cached blocks, ascending
  };
  FileCache CachedOf(uint64_t file_id, bool list = false);
  // Checks SSD blocks against their checksums, up to `max_bytes`, going on
  // from where the last call stopped (a pass over all blocks, then the next
  // pass). Bad ones are dropped. Returns the bytes checked. The scrub thread
  // calls it every second; tests may call it directly.
  uint64_t Scrub(uint64_t max_bytes);
  // Waits for the sweep Start() began in the background: block files that
  // no row names removed, rows whose file is missing or of the wrong size
  // dropped. Reads are served while it runs.
  void AwaitSweep();
  EngineStats Stats();
  // Every cached block as an eviction candidate (for policies and tests).
  std::vector<EvictCandidate> Blocks();

 private:
  struct Block {
    uint32_t length = 0;
    int64_t atime_ms = 0;
    std::vector<uint64_t> checksums;
    uint64_t gen = 0;  // which insertion of this key (a refetch gets a new one)
    Tier tier = Tier::kSsd;
    bool pinned = false;     // then not in its tier's policy
    bool promoting = false;  // a copy to RAM is under way
    // SSD: the block file was checked whole against the checksums since this
    // process started (or this process wrote it), so reads may skip the check.
    bool verified = true;
    std::vector<bool> checked;  // not verified yet: the chunks checked so far
    // Accesses since stored: reads more than a second apart (one sequential
    // pass over a block is one access, however many reads it takes).
    uint32_t hits = 0;
    int64_t last_read_mono_ms = 0;
  };
  struct TierState {
    uint64_t capacity = 0, used = 0, releasing = 0, reserved = 0, pinned = 0, blocks = 0;
    std::unique_ptr<EvictionPolicy> policy;
  };
  // A block taken out of the maps, to unlink (SSD) or demote (RAM).
  struct Detached {
    BlockKey key;
    Block block;
    FileRef file;  // file_id, mount, path, size
    std::shared_ptr<const Buffer> mem;  // a RAM block's bytes
  };
  using Fetch = Fetcher::Fetch;
  using BlockDone = std::function<void(Status, Slice)>;

  void GetBlock(const FileRef& f, uint64_t idx, uint32_t off, uint32_t len, bool urgent,
                BlockDone done);
  // The first read's split fetch (see Read). False, with `done` left to the
  // caller, when the block is cached or in flight or too short to split.
  bool Peek(const FileRef& f, uint64_t off, size_t len, ReadDone& done);
  // A cached block's range: from RAM, or from the SSD (verified first when
  // needed). NotFound when the block is not (or no longer) cached; Corrupt
  // after dropping a bad one.
  Result<Slice> ReadCached(const BlockKey& key, uint32_t off, uint32_t len);
  // Drops copy `gen` of a block that failed a check (if still that copy).
  void DropBad(const BlockKey& key, uint64_t gen, const std::string& problem, bool bad_checksum);
  void ScrubLoop();
  void Sweep(uint64_t start_gen, int64_t started_ns);
  // The in-flight fetch of `key`, joined or started (caller holds mu_; the
  // block is not cached). *created: a new one, which the caller submits.
  std::shared_ptr<Fetch> JoinOrStartLocked(const FileRef& f, const BlockKey& key,
                                           std::optional<Tier> tier, bool* created);
  // Starts (or joins) the fetch of one block; `waiter` may be empty. Returns
  // false, without calling the waiter, when the block is cached by now.
  bool StartFetch(const FileRef& f, uint64_t idx, bool urgent,
                  std::function<void(Status, std::shared_ptr<const Buffer>)> waiter);
  // Answers a block's waiters, decides its tier (`tier`: forced), stores
  // and indexes it.
  void CompleteFetch(const FileRef& f, uint64_t idx, const std::shared_ptr<Fetch>& fetch,
                     std::optional<Tier> tier, const Status& st, std::shared_ptr<const Buffer> buf,
                     bool fetched = true);
  // Reserves room for `len` bytes in `tier`, evicting if needed. False: no room.
  bool Reserve(Tier tier, uint64_t len);
  // Picks victims worth `need` bytes in `tier` (caller holds `lock` on mu_;
  // released while the scorer runs). demote[i]: RAM victims to keep on SSD.
  std::vector<BlockKey> ChooseVictims(Tier tier, uint64_t need, std::unique_lock<std::mutex>& lock,
                                      std::vector<int8_t>* demote);
  // Removes blocks from the maps (caller holds mu_). SSD bytes move from
  // used to releasing until Release() unlinked them.
  std::vector<Detached> DetachLocked(const std::vector<BlockKey>& keys);
  // Unlinks detached SSD blocks and queues their index rows for deletion;
  // RAM blocks are just let go.
  void Release(const std::vector<Detached>& blocks);
  // Writes a block leaving RAM to the SSD tier.
  void Demote(Detached d);
  // Copies a hot SSD block to RAM (on a fetch worker).
  void Promote(BlockKey key, uint64_t gen);
  void InsertLocked(const BlockKey& key, Block block, const FileRef& f);
  bool PinnedLocked(uint64_t file_id) const;
  void SetPinnedLocked(const BlockKey& key, Block& b, bool pinned);
  uint32_t BlockLength(const FileRef& f, uint64_t idx) const;
  void QueueIndexOp(index::Index::BlockOp op);
  using HeldMap = std::unordered_map<BlockKey, std::shared_ptr<const Buffer>, BlockKeyHash>;
  void HoldLocked(const BlockKey& key, std::shared_ptr<const Buffer> buf);
  void DropHeldLocked(const BlockKey& key);
  Slice TakeHeldLocked(HeldMap::iterator it, uint32_t off, uint32_t len);
  void DropHeldFileLocked(uint64_t file_id);
  void IndexWriterLoop();

  const EngineOptions opts_;
  const Clock* const clock_;
  const uint64_t chunk_;  // checksum granularity
  MountTable* const mounts_;
  index::Index* const index_;
  tier::SsdTier* const ssd_;
  tier::MemTier mem_;  // written under mu_
  std::unique_ptr<BlockSource> own_source_;  // when none was given
  Fetcher fetcher_;  // its in-flight map is guarded by mu_

  std::mutex mu_;
  std::unordered_map<BlockKey, Block, BlockKeyHash> blocks_;                // guarded by mu_
  std::unordered_map<uint64_t, std::unordered_set<uint64_t>> by_file_;     // guarded by mu_
  std::unordered_map<uint64_t, size_t> file_mount_;                        // guarded by mu_
  std::unordered_map<uint64_t, std::string> file_path_;                    // guarded by mu_
  std::unordered_map<uint64_t, uint64_t> file_size_;                       // guarded by mu_
  std::vector<PinRule> pins_;                                              // guarded by mu_
  std::unordered_set<uint64_t> retired_;                                   // guarded by mu_
  // Blocks just fetched, held in memory for the reads a readahead fetched
  // them for: a bounded FIFO. A kept block is served from here rather than
  // read back from the disk it was just written to (O_DIRECT, not in the
  // page cache); a block the cache did not keep (not admitted, no room) is
  // still fetched once, not once per read. Dropped when read to their end,
  // pushed out, or their file is evicted or retired.
  HeldMap held_;                                                           // guarded by mu_
  std::deque<BlockKey> held_order_;                                      // guarded by mu_
  uint64_t held_bytes_ = 0;                                              // guarded by mu_
  std::unordered_set<BlockKey, BlockKeyHash> dirty_atime_;                 // guarded by mu_
  // Detached blocks whose files are still being unlinked: a new copy of the
  // same key must not be written until then (the unlink is by path).
  std::unordered_multiset<BlockKey, BlockKeyHash> unlinking_;               // guarded by mu_
  TierState tiers_[kTierCount];                                            // guarded by mu_
  uint64_t next_gen_ = 1;                                                  // guarded by mu_
  std::vector<uint64_t> mount_used_;                                       // guarded by mu_


  std::mutex index_mu_;
  std::condition_variable index_cv_;
  std::vector<index::Index::BlockOp> index_ops_;  // guarded by index_mu_
  bool index_stop_ = false;                       // guarded by index_mu_
  std::thread index_writer_;

  std::mutex scrub_mu_;
  std::condition_variable scrub_cv_;
  std::vector<BlockKey> scrub_pass_;  // guarded by scrub_mu_: this pass's blocks
  size_t scrub_next_ = 0;             // guarded by scrub_mu_
  std::thread scrubber_;

  std::mutex sweep_mu_;
  std::condition_variable sweep_cv_;
  bool sweep_started_ = false;  // guarded by sweep_mu_
  bool swept_ = false;          // guarded by sweep_mu_
  std::thread sweeper_;         // joined by Stop()

  Admission* admission_ = nullptr;
  Scorer* scorer_ = nullptr;
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> last_put_warning_ms_{-100000};

  std::atomic<uint64_t> bytes_read_{0}, fetched_blocks_{0}, fetch_errors_{0}, uncached_fetches_{0},
      evicted_blocks_{0}, evicted_bytes_{0}, checksum_failures_{0}, promotions_{0}, demotions_{0},
      not_admitted_{0}, scorer_rankings_{0}, scorer_failures_{0}, verified_blocks_{0},
      scrubbed_blocks_{0}, block_file_errors_{0};
  std::atomic<uint64_t> served_[kTierCount] = {}, tier_evicted_[kTierCount] = {}, hits_[kTierCount] = {};
  std::atomic<uint64_t> misses_{0}, evicted_for_space_{0};  // evicted_blocks_ - evicted_for_space_: on request
};

}  // namespace strata::cache
