#include "agent/cache/engine.h"

#include <algorithm>

#include "agent/base/clock.h"
#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "agent/base/units.h"

namespace strata::cache {

// One block being fetched. Early waiters are answered as soon as the bytes
// arrive; late waiters once the block is stored (or could not be).
struct Engine::Fetch {
  std::atomic<bool> started{false};
  bool done = false;                          // guarded by Engine::mu_
  std::shared_ptr<const Buffer> data;    // guarded by Engine::mu_, set when done and OK
  std::vector<std::function<void(Status, std::shared_ptr<const Buffer>)>> waiters;
  std::vector<std::function<void(Status, bool kept)>> late_waiters;
};

namespace {
constexpr uint64_t kMaxChunk = 256 * 1024;
constexpr size_t kMaxOpenFds = 1024;
constexpr uint64_t kMaxGetBytes = 16u << 20;
}  // namespace

Engine::Engine(EngineOptions opts, MountTable* mounts, index::Index* index, tier::SsdTier* ssd)
    : opts_(opts),
      chunk_(std::min<uint64_t>(kMaxChunk, opts.block_size)),
      mounts_(mounts),
      index_(index),
      ssd_(ssd),
      policy_(std::make_unique<LruPolicy>()),
      mount_used_(mounts->size(), 0) {}

Engine::~Engine() { Stop(); }

Status Engine::Start() {
  std::unordered_map<BlockKey, index::BlockRecord, BlockKeyHash> rows;
  STRATA_RETURN_IF_ERROR(index_->LoadBlocks(
      [&](const BlockKey& k, const index::BlockRecord& r) { rows.emplace(k, r); }));
  // Block files without a row (or of the wrong size) are orphans; rows
  // without a file are dropped.
  std::unordered_set<BlockKey, BlockKeyHash> seen;
  STRATA_RETURN_IF_ERROR(ssd_->Scan([&](const BlockKey& k, uint64_t size) {
    auto it = rows.find(k);
    if (it == rows.end() || it->second.length != size ||
        it->second.checksums.size() != (size + chunk_ - 1) / chunk_)
      return false;
    seen.insert(k);
    return true;
  }));
  std::vector<index::Index::BlockOp> drops;
  std::vector<std::pair<BlockKey, index::BlockRecord>> live;
  for (auto& [k, r] : rows) {
    if (seen.count(k)) live.emplace_back(k, std::move(r));
    else drops.push_back({k, true, {}});
  }
  if (!drops.empty()) {
    LOG_WARN("cache: %zu indexed block(s) had no block file; dropped", drops.size());
    STRATA_RETURN_IF_ERROR(index_->ApplyBlockOps(drops));
  }
  std::sort(live.begin(), live.end(),
            [](const auto& a, const auto& b) { return a.second.atime_ms < b.second.atime_ms; });
  std::unordered_map<uint64_t, size_t> mount_of;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, r] : live) {
      auto m = mount_of.find(k.file_id);
      if (m == mount_of.end()) {
        size_t mount = 0;
        Result<std::optional<std::string>> path = index_->PathOf(k.file_id);
        if (path.ok() && path->has_value()) mount = mounts_->Resolve(**path).mount;
        m = mount_of.emplace(k.file_id, mount).first;
      }
      InsertLocked(k, Block{r.length, r.atime_ms, std::move(r.checksums)}, m->second);
    }
  }
  index_writer_ = std::thread([this] { IndexWriterLoop(); });
  fetchers_ = std::make_unique<ThreadPool>(opts_.fetch_threads, "strata-fetch");
  // A smaller --cache-size than last time: shrink now.
  if (!Reserve(0)) LOG_WARN("cache: over capacity and nothing evictable");
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
  fetchers_.reset();  // joins the workers; fetches still queued are dropped...
  // ...and their readers and loads are told, rather than left waiting.
  std::vector<std::shared_ptr<Fetch>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, fetch] : inflight_) {
      fetch->done = true;
      dropped.push_back(fetch);
    }
    inflight_.clear();
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

void Engine::InsertLocked(const BlockKey& key, Block block, size_t mount) {
  if (blocks_.count(key)) return;
  uint32_t len = block.length;
  block.gen = next_gen_++;
  policy_->OnInsert(key, len, block.atime_ms);
  blocks_.emplace(key, std::move(block));
  by_file_[key.file_id].insert(key.index);
  file_mount_[key.file_id] = mount;
  used_ += len;
  if (mount < mount_used_.size()) mount_used_[mount] += len;
}

std::vector<BlockKey> Engine::DetachLocked(const std::vector<BlockKey>& keys, uint64_t* bytes) {
  std::vector<BlockKey> out;
  *bytes = 0;
  for (const BlockKey& k : keys) {
    auto it = blocks_.find(k);
    if (it == blocks_.end()) continue;
    uint32_t len = it->second.length;
    *bytes += len;
    used_ -= len;
    releasing_ += len;
    auto fm = file_mount_.find(k.file_id);
    if (fm != file_mount_.end() && fm->second < mount_used_.size()) mount_used_[fm->second] -= len;
    auto bf = by_file_.find(k.file_id);
    if (bf != by_file_.end()) {
      bf->second.erase(k.index);
      if (bf->second.empty()) {
        by_file_.erase(bf);
        file_mount_.erase(k.file_id);
      }
    }
    policy_->OnRemove(k);
    dirty_atime_.erase(k);
    blocks_.erase(it);
    unlinking_.insert(k);
    out.push_back(k);
  }
  return out;
}

void Engine::Release(const std::vector<BlockKey>& keys, uint64_t bytes) {
  for (const BlockKey& k : keys) {
    DropFd(k);
    Status s = ssd_->Remove(k);
    if (!s.ok()) LOG_WARN("cache: %s", s.message().c_str());
    QueueIndexOp({k, true, {}});
  }
  std::lock_guard<std::mutex> lock(mu_);
  releasing_ -= bytes;
  for (const BlockKey& k : keys) unlinking_.erase(unlinking_.find(k));
}

bool Engine::Reserve(uint64_t len) {
  const uint64_t high = static_cast<uint64_t>(opts_.capacity * opts_.high_watermark);
  const uint64_t low = static_cast<uint64_t>(opts_.capacity * opts_.low_watermark);
  std::unique_lock<std::mutex> lock(mu_);
  for (int round = 0; round < 4; round++) {
    uint64_t total = used_ + releasing_ + reserved_;
    if (total + len <= high) {
      reserved_ += len;
      return true;
    }
    std::vector<BlockKey> victims;
    policy_->Select(total + len - std::min(low, total + len), &victims);
    if (victims.empty()) break;
    uint64_t bytes = 0;
    std::vector<BlockKey> detached = DetachLocked(victims, &bytes);
    evicted_blocks_ += detached.size();
    evicted_bytes_ += bytes;
    lock.unlock();
    Release(detached, bytes);
    lock.lock();
  }
  if (used_ + releasing_ + reserved_ + len <= opts_.capacity) {
    reserved_ += len;
    return true;
  }
  return false;
}

std::shared_ptr<Fd> Engine::OpenFd(const BlockKey& key, uint64_t gen) {
  {
    std::lock_guard<std::mutex> lock(fd_mu_);
    auto it = fds_.find(key);
    if (it != fds_.end() && it->second.gen == gen) return it->second.fd;
  }
  Result<Fd> fd = ssd_->OpenBlock(key);
  if (!fd.ok()) return nullptr;
  auto shared = std::make_shared<Fd>(std::move(fd).value());
  std::lock_guard<std::mutex> lock(fd_mu_);
  auto it = fds_.find(key);
  // Never let a descriptor of an older copy replace a newer one.
  if (it != fds_.end() && it->second.gen > gen) return shared;
  if (it == fds_.end() && fds_.size() >= kMaxOpenFds) fds_.erase(fds_.begin());
  fds_[key] = OpenBlock{gen, shared};
  return shared;
}

void Engine::DropFd(const BlockKey& key) {
  std::lock_guard<std::mutex> lock(fd_mu_);
  fds_.erase(key);
}

Result<Slice> Engine::ReadCached(const BlockKey& key, uint32_t off, uint32_t len) {
  uint64_t c0 = off / chunk_, c1 = (off + len - 1) / chunk_;
  uint32_t blen;
  uint64_t gen;
  std::vector<uint64_t> sums;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.find(key);
    if (it == blocks_.end()) return Status::NotFound("not cached");
    Block& b = it->second;
    if (off + len > b.length || c1 >= b.checksums.size())
      return Status::InvalidArgument("read past the end of a cached block");
    blen = b.length;
    gen = b.gen;
    sums.assign(b.checksums.begin() + c0, b.checksums.begin() + c1 + 1);
    int64_t now = NowUnixMs();
    b.atime_ms = now;
    policy_->OnAccess(key, now);
    dirty_atime_.insert(key);
  }
  uint64_t start = c0 * chunk_, end = std::min<uint64_t>((c1 + 1) * chunk_, blen);
  auto buf = Buffer::Make(end - start);
  std::string problem;
  bool bad_checksum = false;
  std::shared_ptr<Fd> fd = OpenFd(key, gen);
  size_t got = 0;
  if (!fd) {
    problem = "block file missing";
  } else {
    Status s = PreadFull(fd->get(), buf->data(), buf->size(), start, &got);
    if (!s.ok()) problem = s.message();
    else if (got != buf->size()) problem = "block file is short";
  }
  for (uint64_t c = c0; problem.empty() && c <= c1; c++) {
    uint64_t cs = (c - c0) * chunk_;
    uint64_t clen = std::min<uint64_t>(chunk_, end - start - cs);
    if (Xxh64(buf->data() + cs, clen) != sums[c - c0]) {
      bad_checksum = true;
      problem = "checksum mismatch in chunk " + std::to_string(c);
    }
  }
  if (!problem.empty()) {
    uint64_t bytes = 0;
    std::vector<BlockKey> detached;
    {
      // Only the copy this read looked at: a refetched one is good.
      std::lock_guard<std::mutex> lock(mu_);
      auto it = blocks_.find(key);
      if (it != blocks_.end() && it->second.gen == gen) detached = DetachLocked({key}, &bytes);
    }
    // Concurrent readers of a bad block all see it; the one that drops it reports.
    if (!detached.empty()) {
      checksum_failures_ += bad_checksum;
      LOG_WARN("cache: dropping block %s (copy %llu): %s; fetching it again", ssd_->PathOf(key).c_str(),
               static_cast<unsigned long long>(gen), problem.c_str());
    }
    Release(detached, bytes);
    return Status::Corrupt(problem);
  }
  return Slice{std::move(buf), off - start, len};
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
    auto it = inflight_.find(key);
    if (it != inflight_.end()) {
      fetch = it->second;
      if (fetch->done) {
        auto data = fetch->data;
        lock.unlock();
        if (waiter) waiter(Status::OK(), std::move(data));
        return true;
      }
      if (waiter) fetch->waiters.push_back(std::move(waiter));
      // A reader now waits for a fetch queued in the background: queue it
      // again as urgent; whichever copy runs first does the work.
      submit = urgent && !fetch->started;
    } else {
      fetch = std::make_shared<Fetch>();
      if (waiter) fetch->waiters.push_back(std::move(waiter));
      inflight_.emplace(key, fetch);
      submit = true;
    }
    // Under mu_: Stop() cannot drop the pool between the check and here.
    if (submit) fetchers_->Submit([this, f, idx, fetch] { RunFetches(f, idx, {fetch}); }, urgent);
  }
  return true;
}

void Engine::RunFetches(FileRef f, uint64_t first, std::vector<std::shared_ptr<Fetch>> fetches) {
  // Claim the blocks; one another worker already took (an urgent duplicate)
  // splits the range.
  std::vector<bool> mine(fetches.size());
  for (size_t i = 0; i < fetches.size(); i++) mine[i] = !fetches[i]->started.exchange(true);
  for (size_t i = 0; i < fetches.size();) {
    if (!mine[i]) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < fetches.size() && mine[j]) j++;
    FetchRun(f, first + i, std::vector<std::shared_ptr<Fetch>>(fetches.begin() + i, fetches.begin() + j));
    i = j;
  }
}

void Engine::FetchRun(const FileRef& f, uint64_t first, const std::vector<std::shared_ptr<Fetch>>& run) {
  std::vector<uint32_t> lens(run.size());
  std::vector<bool> keep(run.size());
  uint64_t total = 0;
  for (size_t i = 0; i < run.size(); i++) {
    lens[i] = BlockLength(f, first + i);
    keep[i] = lens[i] > 0 && Reserve(lens[i]);
    total += lens[i];
  }
  std::shared_ptr<Buffer> all = Buffer::Make(total);
  Status st;
  if (total > 0) {
    Result<size_t> r = mounts_->at(f.mount).ufs->Read(f.ufs_path, f.etag, first * opts_.block_size,
                                                     total, all->data());
    if (!r.ok()) st = r.status();
    else if (*r != total)
      st = Status::Stale("store returned " + std::to_string(*r) + " of " + std::to_string(total) +
                         " bytes at block " + std::to_string(first) + " of " + f.ufs_path +
                         " (the object changed?)");
  }
  uint64_t off = 0;
  for (size_t i = 0; i < run.size(); i++) {
    std::shared_ptr<Buffer> buf = run.size() == 1 ? all : all->View(off, lens[i]);
    off += lens[i];
    CompleteFetch(f, first + i, run[i], keep[i], st, std::move(buf));
  }
}

void Engine::Adopt(const FileRef& f, uint64_t idx, std::shared_ptr<Buffer> data) {
  BlockKey key{f.file_id, idx};
  auto fetch = std::make_shared<Fetch>();
  fetch->started = true;  // no fetch worker takes it: the bytes are here
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_ || blocks_.count(key) || inflight_.count(key) || retired_.count(f.file_id)) return;
    inflight_.emplace(key, fetch);  // readers arriving now wait for these bytes
  }
  bool keep = Reserve(data->size());
  CompleteFetch(f, idx, fetch, keep, Status::OK(), std::move(data), false);
}

void Engine::CompleteFetch(const FileRef& f, uint64_t idx, const std::shared_ptr<Fetch>& fetch,
                           bool keep, const Status& st, std::shared_ptr<Buffer> buf, bool fetched) {
  BlockKey key{f.file_id, idx};
  uint32_t len = static_cast<uint32_t>(buf->size());
  std::vector<uint64_t> sums;
  if (st.ok()) {
    for (uint64_t c = 0; c * chunk_ < len; c++)
      sums.push_back(Xxh64(buf->data() + c * chunk_, std::min<uint64_t>(chunk_, len - c * chunk_)));
  }
  // Counted before anyone hears of it, so stats agree with what readers saw.
  if (st.ok()) fetched_blocks_ += fetched ? 1 : 0;
  else fetch_errors_++;
  decltype(fetch->waiters) waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fetch->done = true;
    if (st.ok()) fetch->data = buf;
    waiters.swap(fetch->waiters);
    if (!st.ok()) inflight_.erase(key);
  }
  for (auto& w : waiters) w(st, st.ok() ? buf : nullptr);

  bool inserted = false;
  if (st.ok()) {
    bool stored = false;
    if (keep) {
      std::lock_guard<std::mutex> lock(mu_);
      keep = !unlinking_.count(key);  // rare: serve it, keep it next time
      if (!keep) reserved_ -= len;
    }
    if (keep) {
      Status ws = ssd_->Put(key, buf->data(), len);
      stored = ws.ok();
      if (!ws.ok()) {
        // A full or failing cache disk: keep serving, say so at most every 10 s.
        int64_t now = NowMonoMs(), last = last_put_warning_ms_.load();
        if (now - last >= 10000 && last_put_warning_ms_.compare_exchange_strong(last, now))
          LOG_WARN("cache: not keeping blocks (serving them uncached): %s", ws.message().c_str());
      }
    }
    index::BlockRecord rec;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (keep) reserved_ -= len;
      inflight_.erase(key);
      if (stored && !retired_.count(f.file_id)) {
        int64_t now = NowUnixMs();
        rec = {len, now, sums};
        InsertLocked(key, Block{len, now, std::move(sums)}, f.mount);
        inserted = true;
      }
    }
    if (inserted) QueueIndexOp({key, false, std::move(rec)});
    else if (stored) (void)ssd_->Remove(key);
    if (!inserted) uncached_fetches_++;
  } else {
    LOG_WARN("cache: fetch failed: %s", st.message().c_str());
    if (keep) {
      std::lock_guard<std::mutex> lock(mu_);
      reserved_ -= len;
    }
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
      bytes_from_cache_ += len;
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

void Engine::Read(const FileRef& f, uint64_t off, size_t len, ReadDone done) {
  if (off >= f.size || len == 0) {
    done(Status::OK(), {});
    return;
  }
  len = static_cast<size_t>(std::min<uint64_t>(len, f.size - off));
  bytes_read_ += len;
  const uint64_t bs = opts_.block_size;
  uint64_t first = off / bs, last = (off + len - 1) / bs;
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
      if (blocks_.count(key) || inflight_.count(key)) {
        open = false;
        continue;
      }
      auto fetch = std::make_shared<Fetch>();
      inflight_.emplace(key, fetch);
      if (!open || groups.back().second.size() >= per_get) groups.push_back({idx, {}});
      groups.back().second.push_back(std::move(fetch));
      open = true;
    }
    for (auto& [start, fetches] : groups)
      fetchers_->Submit([this, f, start = start, fetches = std::move(fetches)] { RunFetches(f, start, fetches); },
                        false);
  }
}

Status Engine::Load(const FileRef& f, int parallel, const std::function<void(uint64_t)>& progress,
                    const std::atomic<bool>* cancel) {
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    int outstanding = 0;
    Status error;
    uint64_t not_kept = 0;
  };
  auto w = std::make_shared<Wait>();
  uint64_t nblocks = (f.size + opts_.block_size - 1) / opts_.block_size;
  for (uint64_t idx = 0; idx < nblocks && !stopped_ && !(cancel && *cancel); idx++) {
    BlockKey key{f.file_id, idx};
    uint32_t len = BlockLength(f, idx);
    std::shared_ptr<Fetch> fetch;
    bool submit = false;
    {
      std::unique_lock<std::mutex> wl(w->mu);
      w->cv.wait(wl, [&] { return w->outstanding < parallel; });
      if (!w->error.ok()) break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) break;
      if (blocks_.count(key)) {
        progress(len);
        continue;
      }
      auto it = inflight_.find(key);
      if (it != inflight_.end()) {
        fetch = it->second;
      } else {
        fetch = std::make_shared<Fetch>();
        inflight_.emplace(key, fetch);
        submit = true;
      }
      {
        std::lock_guard<std::mutex> wl(w->mu);
        w->outstanding++;
      }
      fetch->late_waiters.push_back([w, len, progress](Status s, bool kept) {
        std::lock_guard<std::mutex> wl(w->mu);
        if (!s.ok() && w->error.ok()) w->error = s;
        if (s.ok()) progress(len);
        if (s.ok() && !kept) w->not_kept++;
        w->outstanding--;
        w->cv.notify_all();
      });
      if (submit) fetchers_->Submit([this, f, idx, fetch] { RunFetches(f, idx, {fetch}); }, false);
    }
  }
  std::unique_lock<std::mutex> wl(w->mu);
  w->cv.wait(wl, [&] { return w->outstanding == 0; });
  if (!w->error.ok()) return w->error;
  if (stopped_ || (cancel && *cancel)) return Status::Unavailable("agent is stopping");
  // Blocks not kept, or evicted again to make room for later ones: the file
  // does not fit next to what the cache holds.
  uint64_t cached = CachedOf(f.file_id).blocks;
  if (w->not_kept > 0 || cached < nblocks)
    return Status::NoSpace("only " + std::to_string(cached) + " of " + std::to_string(nblocks) +
                           " blocks of " + f.ufs_path +
                           " stayed in the cache: it is too small (raise --cache-size)");
  return Status::OK();
}

uint64_t Engine::EvictFile(uint64_t file_id, uint64_t* blocks_freed) {
  uint64_t bytes = 0;
  std::vector<BlockKey> detached;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_file_.find(file_id);
    if (it != by_file_.end()) {
      std::vector<BlockKey> keys;
      for (uint64_t idx : it->second) keys.push_back({file_id, idx});
      detached = DetachLocked(keys, &bytes);
    }
  }
  Release(detached, bytes);
  if (blocks_freed) *blocks_freed = detached.size();
  return bytes;
}

void Engine::Retire(uint64_t file_id) {
  if (file_id == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired_.insert(file_id);
  }
  EvictFile(file_id, nullptr);
}

Engine::FileCache Engine::CachedOf(uint64_t file_id) {
  FileCache fc;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_file_.find(file_id);
  if (it == by_file_.end()) return fc;
  for (uint64_t idx : it->second) {
    auto b = blocks_.find({file_id, idx});
    if (b == blocks_.end()) continue;
    fc.blocks++;
    fc.bytes += b->second.length;
  }
  return fc;
}

EngineStats Engine::Stats() {
  EngineStats st;
  {
    std::lock_guard<std::mutex> lock(mu_);
    st.used_bytes = used_ + releasing_;
    st.reserved_bytes = reserved_;
    st.blocks = blocks_.size();
    st.inflight_fetches = inflight_.size();
    st.mount_used_bytes = mount_used_;
  }
  st.capacity = opts_.capacity;
  st.bytes_read = bytes_read_;
  st.bytes_from_cache = bytes_from_cache_;
  st.fetched_blocks = fetched_blocks_;
  st.fetch_errors = fetch_errors_;
  st.uncached_fetches = uncached_fetches_;
  st.evicted_blocks = evicted_blocks_;
  st.evicted_bytes = evicted_bytes_;
  st.checksum_failures = checksum_failures_;
  return st;
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
        if (it == blocks_.end()) continue;
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
