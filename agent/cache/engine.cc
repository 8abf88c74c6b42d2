#include "agent/cache/engine.h"

#include <algorithm>
#include <cstring>

#include "agent/base/clock.h"
#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/base/units.h"

namespace strata::cache {

namespace {
constexpr uint64_t kMaxChunk = 256 * 1024;
// Readahead GETs: several of these in flight beat one long one on a store
// whose connections are each rate-capped (S3), and cost little on loopback.
constexpr uint64_t kMaxGetBytes = 8u << 20;
constexpr size_t kMaxCandidates = 16384;  // per scorer call
size_t T(Tier t) { return static_cast<size_t>(t); }
}  // namespace

bool PinRule::Matches(const std::string& p) const {
  return p == path || (recursive && IsUnder(p, path));
}

Engine::Engine(EngineOptions opts, MountTable* mounts, index::Index* index, tier::SsdTier* ssd,
               BlockSource* source)
    : opts_(opts),
      clock_(opts.clock != nullptr ? opts.clock : SystemClock::Get()),
      chunk_(std::min<uint64_t>(kMaxChunk, opts.block_size)),
      mounts_(mounts),
      index_(index),
      ssd_(ssd),
      own_source_(source == nullptr ? MakeStoreSource(mounts) : nullptr),
      fetcher_(source != nullptr ? source : own_source_.get(), opts.block_size,
               [this](const FileRef& f, uint64_t idx, const std::shared_ptr<Fetch>& fetch, const Status& st,
                      std::shared_ptr<const Buffer> data) {
                 CompleteFetch(f, idx, fetch, fetch->tier, st, std::move(data));
               }),
      mount_used_(mounts->size(), 0) {
  tiers_[T(Tier::kMem)].capacity = opts.mem_capacity;
  tiers_[T(Tier::kSsd)].capacity = opts.capacity;
  for (TierState& t : tiers_) t.policy = std::make_unique<LruPolicy>();
}

Engine::~Engine() { Stop(); }

Status Engine::Start() {
  // The index is trusted as it is: a block file that is missing, short or
  // damaged is found by the first read of it (each chunk of a block found
  // at start is checked once) or by the sweep below, and fetched again. So
  // the cache serves at once, however many blocks it holds.
  int64_t t0 = NowMonoMs();
  std::vector<std::pair<BlockKey, index::BlockRecord>> live;
  STRATA_RETURN_IF_ERROR(index_->LoadBlocks([&](const BlockKey& k, const index::BlockRecord& r) {
    if (r.length > 0 && r.checksums.size() == (r.length + chunk_ - 1) / chunk_) live.emplace_back(k, r);
  }));
  int64_t t1 = NowMonoMs();
  std::sort(live.begin(), live.end(),
            [](const auto& a, const auto& b) { return a.second.atime_ms < b.second.atime_ms; });
  std::unordered_map<uint64_t, FileRef> file_of;
  uint64_t start_gen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    blocks_.reserve(live.size());
    tiers_[T(Tier::kSsd)].policy->Reserve(live.size());
    for (auto& [k, r] : live) {
      auto m = file_of.find(k.file_id);
      if (m == file_of.end()) {
        FileRef f;
        f.file_id = k.file_id;
        Result<std::optional<std::string>> path = index_->PathOf(k.file_id);
        if (path.ok() && path->has_value()) {
          f.path = **path;
          f.mount = mounts_->Resolve(f.path).mount;
          Result<std::optional<index::FileMeta>> meta = index_->GetMeta(f.path);
          if (meta.ok() && meta->has_value() && (*meta)->file_id == k.file_id) f.size = (*meta)->size;
        }
        m = file_of.emplace(k.file_id, std::move(f)).first;
      }
      Block b{r.length, r.atime_ms, std::move(r.checksums)};
      b.verified = false;  // the file may not have reached the disk whole
      InsertLocked(k, std::move(b), m->second);
    }
    start_gen = next_gen_;
  }
  LOG_DEBUG("cache: %zu block rows loaded in %lld ms, in place in %lld ms", live.size(),
            static_cast<long long>(t1 - t0), static_cast<long long>(NowMonoMs() - t1));
  const int64_t started_ns = NowUnixNs();
  {
    std::lock_guard<std::mutex> lock(sweep_mu_);
    sweep_started_ = true;
  }
  sweeper_ = std::thread([this, start_gen, started_ns] { Sweep(start_gen, started_ns); });
  index_writer_ = std::thread([this] { IndexWriterLoop(); });
  fetcher_.StartWorkers(opts_.fetch_threads);
  if (opts_.scrub_bytes_per_sec > 0) scrubber_ = std::thread([this] { ScrubLoop(); });
  // A smaller --cache-size than last time: shrink now.
  if (!Reserve(Tier::kSsd, 0)) LOG_WARN("cache: over capacity and nothing evictable");
  EngineStats st = Stats();
  LOG_INFO("cache: %llu block(s), %s of %s in use, warm from the index",
           static_cast<unsigned long long>(st.blocks), FormatSize(st.used_bytes).c_str(),
           FormatSize(st.capacity).c_str());
  return Status::OK();
}

void Engine::Stop() {
  {
    // Set under mu_: nothing is submitted to the pool after this.
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_.exchange(true)) return;
  }
  scrub_cv_.notify_all();
  if (scrubber_.joinable()) scrubber_.join();
  if (sweeper_.joinable()) sweeper_.join();
  fetcher_.StopWorkers();  // fetches still queued are dropped...
  // ...and their readers and loads are told, rather than left waiting.
  std::vector<std::shared_ptr<Fetch>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    dropped = fetcher_.TakeAllLocked();
    for (auto& fetch : dropped) fetch->done = true;
  }
  Status gone = Status::Unavailable("agent is stopping");
  for (auto& fetch : dropped) {
    for (auto& w : fetch->waiters) w(gone, nullptr);
    for (auto& w : fetch->late_waiters) w(gone, false);
  }
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    index_stop_ = true;
  }
  index_cv_.notify_all();
  if (index_writer_.joinable()) index_writer_.join();
}

uint32_t Engine::BlockLength(const FileRef& f, uint64_t idx) const {
  uint64_t start = idx * opts_.block_size;
  if (start >= f.size) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>(opts_.block_size, f.size - start));
}

void Engine::InsertLocked(const BlockKey& key, Block block, const FileRef& f) {
  if (blocks_.count(key)) return;
  uint32_t len = block.length;
  block.gen = next_gen_++;
  auto fp = file_path_.try_emplace(key.file_id, f.path).first;
  if (!f.path.empty() && fp->second != f.path) fp->second = f.path;
  if (f.size > 0) file_size_[key.file_id] = f.size;
  file_mount_[key.file_id] = f.mount;
  by_file_[key.file_id].insert(key.index);
  TierState& t = tiers_[T(block.tier)];
  block.pinned = PinnedLocked(key.file_id);
  if (block.pinned) t.pinned += len;
  else t.policy->OnInsert(key, len, block.atime_ms);
  t.used += len;
  t.blocks++;
  blocks_.emplace(key, std::move(block));
  if (f.mount < mount_used_.size()) mount_used_[f.mount] += len;
}

bool Engine::PinnedLocked(uint64_t file_id) const {
  if (pins_.empty()) return false;
  auto it = file_path_.find(file_id);
  if (it == file_path_.end()) return false;
  for (const PinRule& r : pins_)
    if (r.Matches(it->second)) return true;
  return false;
}

void Engine::SetPinnedLocked(const BlockKey& key, Block& b, bool pinned) {
  if (b.pinned == pinned) return;
  TierState& t = tiers_[T(b.tier)];
  if (pinned) {
    t.policy->OnRemove(key);
    t.pinned += b.length;
  } else {
    t.policy->OnInsert(key, b.length, b.atime_ms);
    t.pinned -= b.length;
  }
  b.pinned = pinned;
}

void Engine::SetPins(std::vector<PinRule> rules) {
  std::lock_guard<std::mutex> lock(mu_);
  pins_ = std::move(rules);
  for (auto& [file_id, indexes] : by_file_) {
    bool pinned = PinnedLocked(file_id);
    for (uint64_t idx : indexes) {
      auto it = blocks_.find({file_id, idx});
      if (it != blocks_.end()) SetPinnedLocked(it->first, it->second, pinned);
    }
  }
}

std::vector<Engine::Detached> Engine::DetachLocked(const std::vector<BlockKey>& keys) {
  std::vector<Detached> out;
  for (const BlockKey& k : keys) {
    DropHeldLocked(k);
    auto it = blocks_.find(k);
    if (it == blocks_.end()) continue;
    Block& b = it->second;
    uint32_t len = b.length;
    TierState& t = tiers_[T(b.tier)];
    t.used -= len;
    t.blocks--;
    if (b.pinned) t.pinned -= len;
    else t.policy->OnRemove(k);
    if (b.tier == Tier::kSsd) {
      t.releasing += len;
      unlinking_.insert(k);
    }
    Detached d;
    d.key = k;
    d.file.file_id = k.file_id;
    auto fm = file_mount_.find(k.file_id);
    if (fm != file_mount_.end()) {
      d.file.mount = fm->second;
      if (fm->second < mount_used_.size()) mount_used_[fm->second] -= len;
    }
    if (auto fp = file_path_.find(k.file_id); fp != file_path_.end()) d.file.path = fp->second;
    if (auto fs = file_size_.find(k.file_id); fs != file_size_.end()) d.file.size = fs->second;
    auto bf = by_file_.find(k.file_id);
    if (bf != by_file_.end()) {
      bf->second.erase(k.index);
      if (bf->second.empty()) {
        by_file_.erase(bf);
        file_mount_.erase(k.file_id);
        file_path_.erase(k.file_id);
        file_size_.erase(k.file_id);
      }
    }
    dirty_atime_.erase(k);
    if (b.tier == Tier::kMem) d.mem = mem_.Take(k);
    d.block = std::move(b);
    blocks_.erase(it);
    out.push_back(std::move(d));
  }
  return out;
}

void Engine::Release(const std::vector<Detached>& blocks) {
  uint64_t bytes = 0;
  for (const Detached& d : blocks) {
    if (d.block.tier != Tier::kSsd) continue;
    ssd_->Forget(d.key);
    Status s = ssd_->Remove(d.key);
    if (!s.ok()) LOG_WARN("cache: %s", s.message().c_str());
    QueueIndexOp({d.key, true, {}});
    bytes += d.block.length;
  }
  if (bytes == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  tiers_[T(Tier::kSsd)].releasing -= bytes;
  for (const Detached& d : blocks)
    if (d.block.tier == Tier::kSsd) unlinking_.erase(unlinking_.find(d.key));
}

std::vector<BlockKey> Engine::ChooseVictims(Tier tier, uint64_t need, std::unique_lock<std::mutex>& lock,
                                            std::vector<int8_t>* demote) {
  TierState& t = tiers_[T(tier)];
  std::vector<BlockKey> lru;
  demote->clear();
  if (scorer_ == nullptr || !scorer_->Active()) {
    t.policy->Select(need, &lru);
    demote->assign(lru.size(), -1);
    return lru;
  }
  // The scorer ranks a window of the least recently used blocks, several
  // times what is needed, so it has a choice.
  t.policy->Select(std::max<uint64_t>(need * 4, 64 * opts_.block_size), &lru);
  if (lru.size() > kMaxCandidates) lru.resize(kMaxCandidates);
  if (lru.empty()) return lru;
  std::vector<EvictCandidate> cands;
  cands.reserve(lru.size());
  for (const BlockKey& k : lru) {
    auto it = blocks_.find(k);
    if (it == blocks_.end()) continue;
    EvictCandidate c;
    c.key = k;
    c.length = it->second.length;
    c.atime_ms = it->second.atime_ms;
    c.hits = it->second.hits;
    c.tier = tier;
    if (auto fp = file_path_.find(k.file_id); fp != file_path_.end()) c.path = fp->second;
    if (auto fs = file_size_.find(k.file_id); fs != file_size_.end()) c.file_size = fs->second;
    cands.push_back(std::move(c));
  }
  lock.unlock();
  std::vector<size_t> order;
  std::vector<int8_t> dem(cands.size(), -1);
  bool ranked = scorer_->Rank(cands, &order, &dem);
  lock.lock();
  if (ranked) scorer_rankings_++;
  else {
    scorer_failures_++;
    order.clear();
    dem.assign(cands.size(), -1);
  }
  std::vector<char> taken(cands.size(), 0);
  std::vector<size_t> seq;
  for (size_t i : order)
    if (i < cands.size() && !taken[i]) taken[i] = 1, seq.push_back(i);
  for (size_t i = 0; i < cands.size(); i++)
    if (!taken[i]) seq.push_back(i);
  std::vector<BlockKey> victims;
  uint64_t got = 0;
  for (size_t i : seq) {
    if (got >= need) break;
    auto it = blocks_.find(cands[i].key);
    // Gone, pinned or moved while the scorer ran.
    if (it == blocks_.end() || it->second.pinned || it->second.tier != tier) continue;
    victims.push_back(cands[i].key);
    demote->push_back(dem.size() > i ? dem[i] : -1);
    got += it->second.length;
  }
  return victims;
}

bool Engine::Reserve(Tier tier, uint64_t len) {
  TierState& t = tiers_[T(tier)];
  const uint64_t high = static_cast<uint64_t>(t.capacity * opts_.high_watermark);
  const uint64_t low = static_cast<uint64_t>(t.capacity * opts_.low_watermark);
  std::unique_lock<std::mutex> lock(mu_);
  if (t.capacity == 0) return false;
  for (int round = 0; round < 4; round++) {
    uint64_t total = t.used + t.releasing + t.reserved;
    if (total + len <= high) {
      t.reserved += len;
      return true;
    }
    std::vector<int8_t> demote;
    std::vector<BlockKey> victims = ChooseVictims(tier, total + len - std::min(low, total + len), lock, &demote);
    if (victims.empty()) break;
    std::vector<Detached> detached = DetachLocked(victims);
    lock.unlock();
    // Leaving RAM: to the SSD tier when read again since it was stored (or
    // the scorer says so), else dropped.
    std::vector<Detached> drop, keep;
    for (size_t i = 0; i < detached.size(); i++) {
      Detached& d = detached[i];
      int8_t want = i < demote.size() ? demote[i] : -1;
      bool to_ssd = tier == Tier::kMem && (want == 1 || (want == -1 && d.block.hits >= 1));
      (to_ssd ? keep : drop).push_back(std::move(d));
    }
    for (const Detached& d : drop) {
      evicted_bytes_ += d.block.length;
      evicted_blocks_++;
      evicted_for_space_++;
    }
    tier_evicted_[T(tier)] += detached.size();
    Release(drop);
    for (Detached& d : keep) Demote(std::move(d));
    lock.lock();
  }
  if (t.used + t.releasing + t.reserved + len <= t.capacity) {
    t.reserved += len;
    return true;
  }
  return false;
}

void Engine::Demote(Detached d) {
  auto fetch = std::make_shared<Fetch>();
  fetch->started = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Readers meanwhile are answered from these bytes.
    if (stopped_ || blocks_.count(d.key) || !fetcher_.AddLocked(d.key, fetch)) return;
  }
  demotions_++;
  CompleteFetch(d.file, d.key.index, fetch, Tier::kSsd, Status::OK(), d.mem, false);
}

void Engine::Promote(BlockKey key, uint64_t gen) {
  auto clear = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(key);
    if (it != blocks_.end() && it->second.gen == gen) it->second.promoting = false;
  };
  uint32_t len = 0;
  std::vector<uint64_t> sums;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(key);
    if (it == blocks_.end() || it->second.gen != gen || it->second.tier != Tier::kSsd) return;
    len = it->second.length;
    sums = it->second.checksums;
  }
  std::shared_ptr<Fd> fd = ssd_->OpenShared(key, gen);
  auto buf = Buffer::Make(len);
  bool bad_checksum = false;
  bool good = !sums.empty() && tier::SsdTier::ReadChecked(fd.get(), sums, chunk_, 0, sums.size() - 1, len, buf.get(), &bad_checksum).empty();
  // A bad copy is left for the next read to find and drop.
  if (!good || !Reserve(Tier::kMem, len)) return clear();
  std::vector<Detached> ssd_copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TierState& m = tiers_[T(Tier::kMem)];
    m.reserved -= len;
    auto it = blocks_.find(key);
    if (it == blocks_.end() || it->second.gen != gen || it->second.tier != Tier::kSsd || it->second.pinned) {
      if (it != blocks_.end() && it->second.gen == gen) it->second.promoting = false;
      return;
    }
    Block& b = it->second;
    TierState& t = tiers_[T(Tier::kSsd)];
    t.policy->OnRemove(key);
    t.used -= len;
    t.blocks--;
    t.releasing += len;
    unlinking_.insert(key);
    dirty_atime_.erase(key);
    Detached d;
    d.key = key;
    d.block.length = len;
    d.block.tier = Tier::kSsd;
    ssd_copy.push_back(std::move(d));
    b.tier = Tier::kMem;
    mem_.Put(key, std::move(buf));
    b.gen = next_gen_++;
    b.promoting = false;
    m.used += len;
    m.blocks++;
    m.policy->OnInsert(key, len, b.atime_ms);
  }
  promotions_++;
  Release(ssd_copy);
}

void Engine::Sweep(uint64_t start_gen, int64_t started_ns) {
  // Block files of blocks the index does not hold are orphans (a crash
  // between writing a file and its row, or the reverse). A block being
  // fetched, stored or unlinked right now is left alone; one that starts
  // between the look and the unlink loses its file, which its first read
  // finds (and fetches again).
  int64_t t0 = NowMonoMs();
  std::unordered_set<BlockKey, BlockKeyHash> seen;
  std::vector<std::pair<BlockKey, uint64_t>> wrong_size;
  uint64_t orphans = 0;
  Status s = ssd_->Scan(
      [&](const BlockKey& k, uint64_t size) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = blocks_.find(k);
        if (it != blocks_.end() && it->second.tier == Tier::kSsd) {
          seen.insert(k);
          if (it->second.length != size) wrong_size.emplace_back(k, it->second.gen);
          return true;
        }
        bool busy = fetcher_.FindLocked(k) != nullptr || unlinking_.count(k) > 0 || stopped_;
        orphans += busy ? 0 : 1;
        return busy;
      },
      started_ns, &stopped_);
  if (!s.ok() && !stopped_) LOG_WARN("cache: sweeping the block files: %s", s.message().c_str());
  // Blocks from the index whose file is gone.
  std::vector<std::pair<BlockKey, uint64_t>> missing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [k, b] : blocks_)
      if (s.ok() && b.tier == Tier::kSsd && b.gen < start_gen && !seen.count(k)) missing.emplace_back(k, b.gen);
  }
  for (const auto& [k, gen] : wrong_size) DropBad(k, gen, "block file has the wrong size", false);
  for (const auto& [k, gen] : missing) DropBad(k, gen, "block file missing", false);
  if (orphans + wrong_size.size() + missing.size() > 0)
    LOG_WARN("cache: start-up sweep: %llu orphan block file(s) removed, %zu indexed block(s) without their "
             "file dropped, %zu of the wrong size dropped",
             static_cast<unsigned long long>(orphans), missing.size(), wrong_size.size());
  LOG_DEBUG("cache: start-up sweep took %lld ms", static_cast<long long>(NowMonoMs() - t0));
  std::lock_guard<std::mutex> lock(sweep_mu_);
  swept_ = true;
  sweep_cv_.notify_all();
}

void Engine::AwaitSweep() {
  std::unique_lock<std::mutex> lock(sweep_mu_);
  sweep_cv_.wait(lock, [this] { return swept_ || !sweep_started_; });
}

void Engine::DropBad(const BlockKey& key, uint64_t gen, const std::string& problem, bool bad_checksum) {
  std::vector<Detached> detached;
  {
    // Only the copy that was looked at: a refetched one is good.
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(key);
    if (it != blocks_.end() && it->second.gen == gen) detached = DetachLocked({key});
  }
  // Concurrent readers of a bad block all see it; the one that drops it reports.
  if (!detached.empty()) {
    // Bytes that did not match, or a file that could not be read (a disk
    // error, a file cut short or gone): whoever found it, a reader or the
    // scrub.
    (bad_checksum ? checksum_failures_ : block_file_errors_)++;
    LOG_WARN("cache: dropping block %s (copy %llu): %s; it will be fetched again", ssd_->PathOf(key).c_str(),
             static_cast<unsigned long long>(gen), problem.c_str());
  }
  Release(detached);
}

void Engine::DropUnreadable(const Slice& s, const std::string& problem) {
  if (s.engine != this) return;
  DropBad(s.key, s.gen, problem, false);
}

uint64_t Engine::Scrub(uint64_t max_bytes) {
  uint64_t checked = 0;
  std::lock_guard<std::mutex> pass_lock(scrub_mu_);
  for (bool refilled = false; checked < max_bytes && !stopped_;) {
    if (scrub_next_ >= scrub_pass_.size()) {
      if (refilled) break;  // every block of a fresh pass is done
      refilled = true;
      scrub_pass_.clear();
      scrub_next_ = 0;
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [k, b] : blocks_)
        if (b.tier == Tier::kSsd) scrub_pass_.push_back(k);
      if (scrub_pass_.empty()) break;
    }
    BlockKey key = scrub_pass_[scrub_next_++];
    uint64_t gen;
    uint32_t blen;
    std::vector<uint64_t> sums;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = blocks_.find(key);
      if (it == blocks_.end() || it->second.tier != Tier::kSsd) continue;
      gen = it->second.gen;
      blen = it->second.length;
      sums = it->second.checksums;
    }
    if (sums.empty() || blen == 0) continue;
    auto buf = Buffer::Make(blen);
    bool bad_checksum = false;
    std::shared_ptr<Fd> fd = ssd_->OpenShared(key, gen);
    std::string problem = tier::SsdTier::ReadChecked(fd.get(), sums, chunk_, 0, sums.size() - 1, blen, buf.get(), &bad_checksum);
    checked += blen;
    scrubbed_blocks_++;
    if (!problem.empty()) {
      DropBad(key, gen, "scrub: " + problem, bad_checksum);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(key);
    if (it != blocks_.end() && it->second.gen == gen && !it->second.verified) {
      it->second.verified = true;
      it->second.checked = {};
    }
  }
  return checked;
}

void Engine::ScrubLoop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(scrub_mu_);
      scrub_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopped_.load(); });
      if (stopped_) return;
    }
    Scrub(opts_.scrub_bytes_per_sec);
  }
}

Result<Slice> Engine::ReadCached(const BlockKey& key, uint32_t off, uint32_t len) {
  uint64_t c0 = 0, c1 = 0;
  uint32_t blen;
  uint64_t gen;
  bool check, first_check = false, promote = false;
  std::vector<uint64_t> sums;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(key);
    auto held = held_.find(key);
    if (it == blocks_.end()) {
      if (held == held_.end()) return Status::NotFound("not cached");
      if (len == 0 || off + len > held->second->size()) return Status::InvalidArgument("read past the end of a held block");
      return TakeHeldLocked(held, off, len);
    }
    Block& b = it->second;
    if (len == 0 || off + len > b.length || (off + len - 1) / chunk_ >= b.checksums.size())
      return Status::InvalidArgument("read past the end of a cached block");
    int64_t now = clock_->NowMs(), mono = NowMonoMs();
    b.atime_ms = now;
    if (mono - b.last_read_mono_ms >= opts_.access_gap_ms) b.hits++;
    b.last_read_mono_ms = mono;
    if (!b.pinned) tiers_[T(b.tier)].policy->OnAccess(key, now);
    if (b.tier == Tier::kMem) {
      served_[T(Tier::kMem)] += len;
      hits_[T(Tier::kMem)]++;
      return Slice{mem_.Get(key), off, len};
    }
    if (held != held_.end() && off + len <= held->second->size()) {
      served_[T(b.tier)] += len;
      hits_[T(b.tier)]++;
      return TakeHeldLocked(held, off, len);
    }
    dirty_atime_.insert(key);
    blen = b.length;
    gen = b.gen;
    // The chunks this read touches are checked when one of them was not
    // checked since start (each chunk of a block found at start once), or
    // on every read with verify_every_read.
    c0 = off / chunk_;
    c1 = (off + len - 1) / chunk_;
    if (!b.verified) {
      if (b.checked.empty()) b.checked.assign(b.checksums.size(), false);
      for (uint64_t c = c0; c <= c1 && !first_check; c++) first_check = !b.checked[c];
    }
    check = first_check || opts_.verify_every_read;
    if (check) sums.assign(b.checksums.begin() + c0, b.checksums.begin() + c1 + 1);
    if (opts_.mem_capacity > 0 && !b.pinned && !b.promoting && b.hits >= opts_.promote_hits) {
      b.promoting = true;
      promote = true;
    }
  }
  std::shared_ptr<Fd> fd = ssd_->OpenShared(key, gen);
  std::string problem = fd == nullptr ? "block file missing" : "";
  bool bad_checksum = false;
  Slice out;
  if (problem.empty() && check) {
    uint64_t start = c0 * chunk_, end = std::min<uint64_t>((c1 + 1) * chunk_, blen);
    auto buf = Buffer::Make(end - start);
    problem = tier::SsdTier::ReadChecked(fd.get(), sums, chunk_, c0, c1, blen, buf.get(), &bad_checksum);
    out = Slice{std::move(buf), off - start, len};
  } else if (problem.empty()) {
    out = Slice{nullptr, off, len, fd, this, key, gen};
  }
  if (!problem.empty()) {
    DropBad(key, gen, problem, bad_checksum);
    return Status::Corrupt(problem);
  }
  served_[T(Tier::kSsd)] += len;
  hits_[T(Tier::kSsd)]++;
  if (first_check || promote) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(key);
    if (first_check && it != blocks_.end() && it->second.gen == gen && !it->second.verified) {
      Block& b = it->second;
      for (uint64_t c = c0; c <= c1; c++) b.checked[c] = true;
      if (std::find(b.checked.begin(), b.checked.end(), false) == b.checked.end()) {
        b.verified = true;
        b.checked = {};
        verified_blocks_++;
      }
    }
    if (promote && !stopped_) fetcher_.Run([this, key, gen] { Promote(key, gen); }, false);
  }
  return out;
}

Result<std::vector<Slice>> Engine::ReadIfCached(const FileRef& f, uint64_t off, size_t len) {
  std::vector<Slice> parts;
  if (off >= f.size || len == 0) return parts;
  len = static_cast<size_t>(std::min<uint64_t>(len, f.size - off));
  const uint64_t bs = opts_.block_size;
  for (uint64_t idx = off / bs; idx <= (off + len - 1) / bs; idx++) {
    uint64_t bstart = idx * bs;
    uint64_t s = std::max(off, bstart), e = std::min<uint64_t>(off + len, bstart + bs);
    Result<Slice> r = ReadCached({f.file_id, idx}, static_cast<uint32_t>(s - bstart), static_cast<uint32_t>(e - s));
    if (!r.ok()) {
      if (r.status().code() == Status::Code::kInvalidArgument) return Status::IOError("cache: " + r.status().message());
      return Status::NotFound("block " + std::to_string(idx) + " of /" + f.path + " is not cached");
    }
    parts.push_back(std::move(r).value());
  }
  bytes_read_ += len;
  return parts;
}

std::shared_ptr<Engine::Fetch> Engine::JoinOrStartLocked(const FileRef& f, const BlockKey& key,
                                                         std::optional<Tier> tier, bool* created) {
  std::shared_ptr<Fetch> fetch = fetcher_.JoinOrStartLocked(key, tier, created);
  if (*created && !tier.has_value() && admission_ != nullptr && admission_->Deciding())
    admission_->Prepare(f, fetcher_.Answerer(f, key.index));
  return fetch;
}

bool Engine::StartFetch(const FileRef& f, uint64_t idx, bool urgent,
                        std::function<void(Status, std::shared_ptr<const Buffer>)> waiter) {
  BlockKey key{f.file_id, idx};
  std::shared_ptr<Fetch> fetch;
  bool submit = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (blocks_.count(key)) return false;
    if (stopped_) {
      lock.unlock();
      if (waiter) waiter(Status::Unavailable("agent is stopping"), nullptr);
      return true;
    }
    fetch = JoinOrStartLocked(f, key, std::nullopt, &submit);
    if (fetch->done) {
      auto data = fetch->data;
      if (waiter) fetch->read_when_done = true, misses_++;
      lock.unlock();
      if (waiter) waiter(Status::OK(), std::move(data));
      return true;
    }
    if (waiter) {
      fetch->waiters.push_back(std::move(waiter));
      misses_++;
    }
    // A reader now waits for a fetch queued in the background: queue it
    // again as urgent; whichever copy runs first does the work.
    if (!submit) submit = urgent && !fetch->started;
    // Under mu_: Stop() cannot drop the pool between the check and here.
    if (submit) fetcher_.Submit(f, idx, {fetch}, urgent);
  }
  return true;
}

void Engine::Adopt(const FileRef& f, uint64_t idx, std::shared_ptr<Buffer> data) {
  BlockKey key{f.file_id, idx};
  auto fetch = std::make_shared<Fetch>();
  fetch->started = true;  // no fetch worker takes it: the bytes are here
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_ || blocks_.count(key) || retired_.count(f.file_id)) return;
    if (!fetcher_.AddLocked(key, fetch)) return;  // readers arriving now wait for these bytes
  }
  if (admission_ != nullptr && admission_->Deciding()) admission_->Prepare(f, "store");
  CompleteFetch(f, idx, fetch, std::nullopt, Status::OK(), std::move(data), false);
}

void Engine::CompleteFetch(const FileRef& f, uint64_t idx, const std::shared_ptr<Fetch>& fetch,
                           std::optional<Tier> tier, const Status& st, std::shared_ptr<const Buffer> buf,
                           bool fetched) {
  BlockKey key{f.file_id, idx};
  uint32_t len = st.ok() ? static_cast<uint32_t>(buf->size()) : 0;
  std::vector<uint64_t> sums;
  if (st.ok()) sums = tier::SsdTier::ChunkSums(buf->data(), len, chunk_);
  // Counted before anyone hears of it, so stats agree with what readers saw.
  if (st.ok()) fetched_blocks_ += fetched ? 1 : 0;
  else fetch_errors_++;
  decltype(fetch->waiters) waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fetch->done = true;
    if (st.ok()) fetch->data = buf;
    waiters.swap(fetch->waiters);
    if (!st.ok()) fetcher_.EraseLocked(key);
  }
  for (auto& w : waiters) w(st, st.ok() ? buf : nullptr);
  // Held for the reads to come: a readahead's block nobody waited for (a
  // load or a demotion names its tier and is not read now).
  const bool hold = waiters.empty() && !tier.has_value();

  bool inserted = false;
  if (st.ok()) {
    // Where it goes: forced (a load, a demotion), else the admission hook.
    if (!tier.has_value()) {
      tier = admission_ != nullptr && admission_->Deciding()
                 ? admission_->Decide(f, Tier::kSsd, fetched ? fetcher_.Answerer(f, idx) : "store")
                 : std::optional<Tier>(Tier::kSsd);
      if (!tier.has_value()) not_admitted_++;
    }
    if (tier == Tier::kMem && opts_.mem_capacity == 0) tier = Tier::kSsd;
    bool keep = !(f.file_id & kUnindexedFileBit) && tier.has_value() && len > 0 && Reserve(*tier, len);
    if (keep && *tier == Tier::kSsd) {
      std::lock_guard<std::mutex> lock(mu_);
      keep = !unlinking_.count(key);  // rare: serve it, keep it next time
      if (!keep) tiers_[T(*tier)].reserved -= len;
    }
    bool stored = false;
    if (keep && *tier == Tier::kSsd) {
      Status ws = ssd_->Put(key, buf->data(), len);
      stored = ws.ok();
      if (!ws.ok()) {
        // A full or failing cache disk: keep serving, say so at most every 10 s.
        int64_t now = NowMonoMs(), last = last_put_warning_ms_.load();
        if (now - last >= 10000 && last_put_warning_ms_.compare_exchange_strong(last, now))
          LOG_WARN("cache: not keeping blocks (serving them uncached): %s", ws.message().c_str());
      }
    } else if (keep) {
      // RAM keeps its own allocation, not a view pinning a whole multi-block GET.
      if (!buf->whole()) {
        auto copy = Buffer::Make(len);
        std::memcpy(copy->data(), buf->data(), len);
        buf = std::move(copy);
      }
      stored = true;
    }
    index::BlockRecord rec;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (keep) tiers_[T(*tier)].reserved -= len;
      fetcher_.EraseLocked(key);
      if (stored && !retired_.count(f.file_id)) {
        int64_t now = clock_->NowMs();
        rec = {len, now, sums};
        Block b{len, now, std::move(sums)};
        b.tier = *tier;
        b.last_read_mono_ms = NowMonoMs();  // the read that fetched it
        if (*tier == Tier::kMem) mem_.Put(key, buf);
        InsertLocked(key, std::move(b), f);
        inserted = true;
      }
      // A reader that came meanwhile has had the bytes too.
      if (hold && !fetch->read_when_done && !retired_.count(f.file_id) && !(stored && *tier == Tier::kMem))
        HoldLocked(key, buf);
    }
    bool on_ssd = stored && *tier == Tier::kSsd;
    if (inserted && on_ssd) QueueIndexOp({key, false, std::move(rec)});
    else if (on_ssd) (void)ssd_->Remove(key);
    if (!inserted) uncached_fetches_++;
  } else {
    LOG_WARN("cache: fetch failed: %s", st.message().c_str());
  }
  decltype(fetch->late_waiters) late;
  {
    std::lock_guard<std::mutex> lock(mu_);
    late.swap(fetch->late_waiters);
  }
  for (auto& w : late) w(st, inserted);
}

void Engine::GetBlock(const FileRef& f, uint64_t idx, uint32_t off, uint32_t len, bool urgent,
                      BlockDone done) {
  BlockKey key{f.file_id, idx};
  for (int attempt = 0; attempt < 3; attempt++) {
    Result<Slice> r = ReadCached(key, off, len);
    if (r.ok()) {
      done(Status::OK(), std::move(r).value());
      return;
    }
    if (r.status().code() == Status::Code::kInvalidArgument) {
      done(Status::IOError("cache: " + r.status().message()), {});
      return;
    }
    bool fetching = StartFetch(f, idx, urgent, [off, len, done](Status s, std::shared_ptr<const Buffer> data) {
      if (!s.ok()) done(std::move(s), {});
      else done(Status::OK(), Slice{std::move(data), off, len});
    });
    if (fetching) return;
    // Stored between the two looks: read it from the cache.
  }
  done(Status::IOError("cache: block keeps vanishing"), {});
}

void Engine::Read(const FileRef& f, uint64_t off, size_t len, ReadDone done, bool first_read) {
  if (off >= f.size || len == 0) {
    done(Status::OK(), {});
    return;
  }
  len = static_cast<size_t>(std::min<uint64_t>(len, f.size - off));
  bytes_read_ += len;
  const uint64_t bs = opts_.block_size;
  uint64_t first = off / bs, last = (off + len - 1) / bs;
  if (first_read && first == last && len < BlockLength(f, first) && Peek(f, off, len, done)) return;
  struct Op {
    std::mutex mu;
    size_t pending;
    Status status;
    std::vector<Slice> parts;
    ReadDone done;
  };
  auto op = std::make_shared<Op>();
  op->pending = last - first + 1;
  op->parts.resize(op->pending);
  op->done = std::move(done);
  for (uint64_t idx = first; idx <= last; idx++) {
    uint64_t bstart = idx * bs;
    uint64_t s = std::max(off, bstart), e = std::min<uint64_t>(off + len, bstart + bs);
    size_t slot = idx - first;
    GetBlock(f, idx, static_cast<uint32_t>(s - bstart), static_cast<uint32_t>(e - s), true,
             [op, slot](Status st, Slice sl) {
               bool last_one;
               {
                 std::lock_guard<std::mutex> lock(op->mu);
                 if (!st.ok() && op->status.ok()) op->status = std::move(st);
                 op->parts[slot] = std::move(sl);
                 last_one = --op->pending == 0;
               }
               if (!last_one) return;
               if (op->status.ok()) op->done(Status::OK(), std::move(op->parts));
               else op->done(op->status, {});
             });
  }
}

bool Engine::Peek(const FileRef& f, uint64_t off, size_t len, ReadDone& done) {
  const uint64_t idx = off / opts_.block_size, bstart = idx * opts_.block_size;
  const uint32_t blen = BlockLength(f, idx);
  // The head: up to the read's end, at least 256 KiB, in whole pages.
  const uint64_t head_end = std::min<uint64_t>(bstart + blen, (std::max<uint64_t>(off + len, bstart + (256 << 10)) + 4095) / 4096 * 4096);
  if (head_end >= bstart + blen) return false;
  const BlockKey key{f.file_id, idx};
  std::shared_ptr<Fetch> fetch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_ || blocks_.count(key) || fetcher_.FindLocked(key)) return false;
    bool created;
    fetch = JoinOrStartLocked(f, key, std::nullopt, &created);
    fetch->started = true;  // claimed: no other worker fetches it
  }
  struct Split {
    std::shared_ptr<Buffer> buf;
    std::atomic<int> parts{2};
    std::mutex mu;
    Status status;  // guarded by mu: the first failure
  };
  auto split = std::make_shared<Split>();
  split->buf = Buffer::Make(blen);
  auto reply = std::make_shared<ReadDone>(std::move(done));
  // Fetches object bytes [from, to) into the block's buffer; the part that
  // finishes last completes the block.
  auto part = [this, f, idx, bstart, fetch, split](uint64_t from, uint64_t to, std::shared_ptr<ReadDone> answer,
                                                    uint64_t off, size_t len) {
    BlockRequest req{f.store_uri, f.ufs_path, f.etag, f.size, static_cast<uint32_t>(opts_.block_size), idx, 1, true};
    req.range_off = from;
    req.range_len = to - from;
    req.local_only = f.local_only;
    Result<Fetched> r = fetcher_.FetchRange(req, split->buf->data() + (from - bstart), to - from);
    if (answer != nullptr) {
      if (r.ok()) (*answer)(Status::OK(), {Slice{split->buf, off - bstart, len}});
      else (*answer)(r.status(), {});
    }
    if (!r.ok()) {
      std::lock_guard<std::mutex> lock(split->mu);
      if (split->status.ok()) split->status = r.status();
    }
    if (--split->parts > 0) return;
    Status st;
    {
      std::lock_guard<std::mutex> lock(split->mu);
      st = split->status;
    }
    CompleteFetch(f, idx, fetch, std::nullopt, st, st.ok() ? split->buf : nullptr);
  };
  bool submitted = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_) {
      fetcher_.Run([part, bstart, head_end, reply, off, len] { part(bstart, head_end, reply, off, len); }, true);
      fetcher_.Run([part, head_end, bstart, blen] { part(head_end, bstart + blen, nullptr, 0, 0); }, true);
      submitted = true;
    }
  }
  if (!submitted) {
    CompleteFetch(f, idx, fetch, std::nullopt, Status::Unavailable("agent is stopping"), nullptr);
    (*reply)(Status::Unavailable("agent is stopping"), {});
  }
  return true;
}

void Engine::Prefetch(const FileRef& f, uint64_t first, uint64_t count) {
  // Consecutive missing blocks go out as one ranged GET of up to
  // kMaxGetBytes: per-request costs (on the store too) dominate small GETs.
  const uint64_t per_get = std::max<uint64_t>(1, kMaxGetBytes / opts_.block_size);
  uint64_t nblocks = (f.size + opts_.block_size - 1) / opts_.block_size;
  std::vector<std::pair<uint64_t, std::vector<std::shared_ptr<Fetch>>>> groups;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    bool open = false;
    for (uint64_t idx = first; idx < std::min(first + count, nblocks); idx++) {
      BlockKey key{f.file_id, idx};
      bool created = false;
      std::shared_ptr<Fetch> fetch;
      if (!blocks_.count(key)) fetch = JoinOrStartLocked(f, key, std::nullopt, &created);
      if (!created) {
        open = false;
        continue;
      }
      if (!open || groups.back().second.size() >= per_get) groups.push_back({idx, {}});
      groups.back().second.push_back(std::move(fetch));
      open = true;
    }
    for (auto& [start, fetches] : groups) fetcher_.Submit(f, start, std::move(fetches), false);
  }
}

Status Engine::Load(const FileRef& f, int parallel, const std::function<void(uint64_t)>& progress,
                    const std::atomic<bool>* cancel, std::optional<Tier> tier,
                    const std::function<bool(uint64_t)>& only) {
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    int outstanding = 0;
    Status error;
    uint64_t not_kept = 0;
  };
  auto w = std::make_shared<Wait>();
  uint64_t nblocks = (f.size + opts_.block_size - 1) / opts_.block_size;
  uint64_t wanted = 0;
  for (uint64_t idx = 0; idx < nblocks && !stopped_ && !(cancel && *cancel); idx++) {
    if (only && !only(idx)) continue;
    wanted++;
    BlockKey key{f.file_id, idx};
    uint32_t len = BlockLength(f, idx);
    std::shared_ptr<Fetch> fetch;
    bool submit = false;
    {
      // A slot is taken before mu_: w->mu is never taken while holding mu_
      // (a waiter runs under w->mu and may reach the engine).
      std::unique_lock<std::mutex> wl(w->mu);
      w->cv.wait(wl, [&] { return w->outstanding < parallel; });
      if (!w->error.ok()) break;
      w->outstanding++;
    }
    bool joined = false, stopping = false, cached = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stopped_;
      cached = !stopping && blocks_.count(key) > 0;
      if (!stopping && !cached) {
        fetch = JoinOrStartLocked(f, key, tier, &submit);
        fetch->late_waiters.push_back([w, len, progress](Status s, bool kept) {
          std::lock_guard<std::mutex> wl(w->mu);
          if (!s.ok() && w->error.ok()) w->error = s;
          if (s.ok()) progress(len);
          if (s.ok() && !kept) w->not_kept++;
          w->outstanding--;
          w->cv.notify_all();
        });
        if (submit) fetcher_.Submit(f, idx, {fetch}, false);
        joined = true;
      }
    }
    if (!joined) {
      std::lock_guard<std::mutex> wl(w->mu);
      w->outstanding--;
      w->cv.notify_all();
    }
    if (stopping) break;
    if (cached) progress(len);
  }
  std::unique_lock<std::mutex> wl(w->mu);
  w->cv.wait(wl, [&] { return w->outstanding == 0; });
  if (!w->error.ok()) return w->error;
  if (stopped_ || (cancel && *cancel)) return Status::Unavailable("agent is stopping");
  // Blocks not kept, or evicted again to make room for later ones: the file
  // does not fit next to what the cache holds.
  uint64_t cached = CachedOf(f.file_id).blocks;
  if (w->not_kept > 0 || cached < wanted)
    return Status::NoSpace("only " + std::to_string(std::min(cached, wanted)) + " of " + std::to_string(wanted) +
                           " blocks of " + f.ufs_path +
                           " stayed in the cache: it is too small (raise --cache-size)");
  return Status::OK();
}

uint64_t Engine::EvictFile(uint64_t file_id, uint64_t* blocks_freed) {
  uint64_t bytes = 0;
  std::vector<Detached> detached;
  {
    std::lock_guard<std::mutex> lock(mu_);
    DropHeldFileLocked(file_id);
    auto it = by_file_.find(file_id);
    if (it != by_file_.end()) {
      std::vector<BlockKey> keys;
      for (uint64_t idx : it->second) keys.push_back({file_id, idx});
      detached = DetachLocked(keys);
    }
  }
  for (const Detached& d : detached) bytes += d.block.length;
  Release(detached);
  if (blocks_freed) *blocks_freed = detached.size();
  return bytes;
}

EvictResult Engine::EvictMatching(const PinRule& rule, int64_t idle_before_ms) {
  EvictResult r;
  std::vector<Detached> detached;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<BlockKey> keys;
    for (const auto& [file_id, indexes] : by_file_) {
      auto fp = file_path_.find(file_id);
      if (fp == file_path_.end() || !rule.Matches(fp->second)) continue;
      for (uint64_t idx : indexes) {
        auto it = blocks_.find({file_id, idx});
        if (it == blocks_.end()) continue;
        if (idle_before_ms > 0 && it->second.atime_ms >= idle_before_ms) continue;
        if (it->second.pinned) {
          r.pinned_blocks++;
          continue;
        }
        keys.push_back(it->first);
      }
    }
    detached = DetachLocked(keys);
  }
  std::unordered_set<uint64_t> files;
  for (const Detached& d : detached) {
    r.bytes += d.block.length;
    files.insert(d.key.file_id);
  }
  r.files = files.size();
  r.blocks = detached.size();
  evicted_blocks_ += r.blocks;
  evicted_bytes_ += r.bytes;
  Release(detached);
  return r;
}

void Engine::HoldLocked(const BlockKey& key, std::shared_ptr<const Buffer> buf) {
  // About two readahead windows of the largest default (16 blocks).
  const uint64_t limit = 32 * static_cast<uint64_t>(opts_.block_size);
  if (buf == nullptr || buf->size() == 0 || buf->size() > limit) return;
  DropHeldLocked(key);
  held_bytes_ += buf->size();
  held_[key] = std::move(buf);
  held_order_.push_back(key);
  while (held_bytes_ > limit && !held_order_.empty()) {
    BlockKey old = held_order_.front();
    held_order_.pop_front();
    DropHeldLocked(old);
  }
  if (held_order_.size() > 2 * held_.size() + 64) {  // mostly keys read to their end
    std::deque<BlockKey> live;
    for (const BlockKey& k : held_order_)
      if (held_.count(k)) live.push_back(k);
    held_order_.swap(live);
  }
}

Slice Engine::TakeHeldLocked(HeldMap::iterator it, uint32_t off, uint32_t len) {
  Slice out{it->second, off, len};
  if (off + len == it->second->size()) DropHeldLocked(it->first);  // a stream reads on
  return out;
}

void Engine::DropHeldLocked(const BlockKey& key) {
  // The order queue keeps stale keys; they are skipped when they come up.
  auto it = held_.find(key);
  if (it == held_.end()) return;
  held_bytes_ -= it->second->size();
  held_.erase(it);
  if (held_.empty()) held_order_.clear();
}

void Engine::DropHeldFileLocked(uint64_t file_id) {
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->first.file_id != file_id) {
      ++it;
      continue;
    }
    held_bytes_ -= it->second->size();
    it = held_.erase(it);
  }
  if (held_.empty()) held_order_.clear();
}

void Engine::Retire(uint64_t file_id) {
  if (file_id == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired_.insert(file_id);
  }
  EvictFile(file_id, nullptr);
}

Engine::FileCache Engine::CachedOf(uint64_t file_id, bool list) {
  FileCache fc;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_file_.find(file_id);
  if (it == by_file_.end()) return fc;
  for (uint64_t idx : it->second) {
    auto b = blocks_.find({file_id, idx});
    if (b == blocks_.end()) continue;
    fc.blocks++;
    fc.bytes += b->second.length;
    if (list) fc.indexes.push_back(idx);
  }
  std::sort(fc.indexes.begin(), fc.indexes.end());
  return fc;
}

EngineStats Engine::Stats() {
  EngineStats st;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < kTierCount; i++) {
      const TierState& t = tiers_[i];
      TierStats& ts = st.tiers[i];
      ts.capacity = t.capacity;
      ts.used_bytes = t.used + t.releasing;
      ts.reserved_bytes = t.reserved;
      ts.pinned_bytes = t.pinned;
      ts.blocks = t.blocks;
      ts.bytes_served = served_[i];
      ts.evicted_blocks = tier_evicted_[i];
      ts.hits = hits_[i];
      st.capacity += ts.capacity;
      st.used_bytes += ts.used_bytes;
      st.reserved_bytes += ts.reserved_bytes;
      st.pinned_bytes += ts.pinned_bytes;
      st.bytes_from_cache += ts.bytes_served;
    }
    st.blocks = blocks_.size();
    st.inflight_fetches = fetcher_.InflightLocked();
    st.mount_used_bytes = mount_used_;
  }
  st.bytes_read = bytes_read_;
  st.promotions = promotions_;
  st.demotions = demotions_;
  st.not_admitted = not_admitted_;
  st.scorer_rankings = scorer_rankings_;
  st.scorer_failures = scorer_failures_;
  st.fetched_blocks = fetched_blocks_;
  st.fetch_errors = fetch_errors_;
  st.uncached_fetches = uncached_fetches_;
  st.evicted_blocks = evicted_blocks_;
  st.evicted_for_space = evicted_for_space_;
  st.misses = misses_;
  st.evicted_bytes = evicted_bytes_;
  st.checksum_failures = checksum_failures_;
  st.block_file_errors = block_file_errors_;
  st.verified_blocks = verified_blocks_;
  st.scrubbed_blocks = scrubbed_blocks_;
  st.fetched_bytes_by_source = fetcher_.BytesBySource();
  st.fetch_latency_by_source = fetcher_.LatencyBySource();
  return st;
}

std::vector<EvictCandidate> Engine::Blocks() {
  std::vector<EvictCandidate> out;
  std::lock_guard<std::mutex> lock(mu_);
  out.reserve(blocks_.size());
  for (const auto& [k, b] : blocks_) {
    EvictCandidate c;
    c.key = k;
    c.length = b.length;
    c.atime_ms = b.atime_ms;
    c.hits = b.hits;
    c.tier = b.tier;
    if (auto fp = file_path_.find(k.file_id); fp != file_path_.end()) c.path = fp->second;
    if (auto fs = file_size_.find(k.file_id); fs != file_size_.end()) c.file_size = fs->second;
    out.push_back(std::move(c));
  }
  return out;
}

void Engine::QueueIndexOp(index::Index::BlockOp op) {
  std::lock_guard<std::mutex> lock(index_mu_);
  index_ops_.push_back(std::move(op));
  if (index_ops_.size() >= 512) index_cv_.notify_one();
}

void Engine::IndexWriterLoop() {
  int64_t last_atime_flush = NowMonoMs();
  for (;;) {
    std::vector<index::Index::BlockOp> ops;
    bool stop;
    {
      std::unique_lock<std::mutex> lock(index_mu_);
      index_cv_.wait_for(lock, std::chrono::milliseconds(200),
                         [this] { return index_stop_ || index_ops_.size() >= 512; });
      ops.swap(index_ops_);
      stop = index_stop_;
    }
    // Access times: batched, never one write per read.
    if (stop || NowMonoMs() - last_atime_flush >= 5000) {
      last_atime_flush = NowMonoMs();
      std::lock_guard<std::mutex> lock(mu_);
      for (const BlockKey& k : dirty_atime_) {
        auto it = blocks_.find(k);
        if (it == blocks_.end() || it->second.tier != Tier::kSsd) continue;
        ops.push_back({k, false, {it->second.length, it->second.atime_ms, it->second.checksums}});
      }
      dirty_atime_.clear();
    }
    if (!ops.empty()) {
      Status s = index_->ApplyBlockOps(ops);
      if (!s.ok()) LOG_ERROR("cache: index update of %zu block(s) failed: %s", ops.size(), s.message().c_str());
    }
    if (stop) return;
  }
}

}  // namespace strata::cache
