#include "agent/cache/fetcher.h"

#include <algorithm>
#include <chrono>

namespace strata::cache {

Fetcher::Fetcher(BlockSource* source, uint64_t block_size, Completion done)
    : source_(source), block_size_(block_size), done_(std::move(done)) {}

Fetcher::~Fetcher() { StopWorkers(); }

void Fetcher::StartWorkers(int threads) {
  workers_ = std::make_unique<ThreadPool>(threads, "strata-fetch");
  local_workers_ = std::make_unique<ThreadPool>(std::max(2, threads / 2), "strata-fetch-l");
}

void Fetcher::StopWorkers() {
  workers_.reset();
  local_workers_.reset();
}

std::shared_ptr<Fetcher::Fetch> Fetcher::FindLocked(const BlockKey& key) const {
  auto it = inflight_.find(key);
  return it == inflight_.end() ? nullptr : it->second;
}

std::shared_ptr<Fetcher::Fetch> Fetcher::JoinOrStartLocked(const BlockKey& key, std::optional<Tier> tier,
                                                           bool* created) {
  auto it = inflight_.find(key);
  *created = it == inflight_.end();
  if (!*created) return it->second;
  auto fetch = std::make_shared<Fetch>();
  fetch->tier = tier;
  inflight_.emplace(key, fetch);
  return fetch;
}

bool Fetcher::AddLocked(const BlockKey& key, std::shared_ptr<Fetch> fetch) {
  return inflight_.emplace(key, std::move(fetch)).second;
}

void Fetcher::EraseLocked(const BlockKey& key) { inflight_.erase(key); }

std::vector<std::shared_ptr<Fetcher::Fetch>> Fetcher::TakeAllLocked() {
  std::vector<std::shared_ptr<Fetch>> all;
  all.reserve(inflight_.size());
  for (auto& [key, fetch] : inflight_) all.push_back(fetch);
  inflight_.clear();
  return all;
}

void Fetcher::Submit(const FileRef& f, uint64_t first, std::vector<std::shared_ptr<Fetch>> fetches, bool urgent) {
  if (workers_ == nullptr) return;
  // Fetches for other agents go to the store only, on their own workers:
  // never queued behind ours, which may be waiting on those agents.
  ThreadPool* pool = f.local_only ? local_workers_.get() : workers_.get();
  pool->Submit([this, f, first, fetches = std::move(fetches)] { RunFetches(f, first, fetches); }, urgent);
}

void Fetcher::Run(std::function<void()> fn, bool urgent) {
  if (workers_ != nullptr) workers_->Submit(std::move(fn), urgent);
}

void Fetcher::RunFetches(const FileRef& f, uint64_t first, const std::vector<std::shared_ptr<Fetch>>& fetches) {
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

void Fetcher::FetchRun(const FileRef& f, uint64_t first, const std::vector<std::shared_ptr<Fetch>>& run) {
  // The source may take only a leading part of the run in one request (in a
  // cluster: a few blocks of one owner); each part completes on its own, so
  // no block waits on a request for blocks of another owner, and the parts
  // after the first go to other workers (in flight together).
  std::vector<std::pair<size_t, size_t>> parts;  // [at, at + n)
  for (size_t at = 0; at < run.size();) {
    BlockRequest probe{f.store_uri, f.ufs_path, f.etag, f.size, static_cast<uint32_t>(block_size_),
                       first + at, static_cast<uint32_t>(run.size() - at)};
    probe.local_only = f.local_only;
    size_t n = std::clamp<size_t>(source_->Coalescable(probe), 1, run.size() - at);
    parts.emplace_back(at, n);
    at += n;
  }
  ThreadPool* pool = f.local_only ? local_workers_.get() : workers_.get();
  for (size_t i = 1; i < parts.size(); i++) {
    auto [at, n] = parts[i];
    std::vector<std::shared_ptr<Fetch>> part(run.begin() + at, run.begin() + at + n);
    pool->Submit([this, f, b = first + at, part = std::move(part)] { FetchPart(f, b, part); }, false);
  }
  FetchPart(f, first, std::vector<std::shared_ptr<Fetch>>(run.begin(), run.begin() + parts[0].second));
}

void Fetcher::FetchPart(const FileRef& f, uint64_t first, const std::vector<std::shared_ptr<Fetch>>& run) {
  std::vector<uint32_t> lens(run.size());
  uint64_t total = 0;
  for (size_t i = 0; i < run.size(); i++) {
    lens[i] = BlockLength(f, first + i);
    total += lens[i];
  }
  std::shared_ptr<Buffer> all = Buffer::Make(total);
  Status st;
  if (total > 0) {
    BlockRequest req{f.store_uri, f.ufs_path, f.etag, f.size, static_cast<uint32_t>(block_size_),
                     first, static_cast<uint32_t>(run.size())};
    req.local_only = f.local_only;
    Result<Fetched> r = FetchRange(req, all->data(), total);
    if (!r.ok()) st = r.status();
  }
  uint64_t off = 0;
  for (size_t i = 0; i < run.size(); i++) {
    std::shared_ptr<Buffer> buf = run.size() == 1 ? all : all->View(off, lens[i]);
    off += lens[i];
    done_(f, first + i, run[i], st, std::move(buf));
  }
}

Result<Fetched> Fetcher::FetchRange(const BlockRequest& req, char* buf, uint64_t bytes) {
  auto t0 = std::chrono::steady_clock::now();
  Result<Fetched> r = source_->Fetch(req, buf);
  if (!r.ok()) return r;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(source_mu_);
  auto it = std::find_if(sources_.begin(), sources_.end(), [&](const SourceFigures& s) { return s.name == r->source; });
  if (it == sources_.end()) it = sources_.insert(sources_.end(), SourceFigures{r->source});
  it->bytes += bytes;
  it->latency.Observe(seconds);
  return r;
}

const char* Fetcher::Answerer(const FileRef& f, uint64_t idx) {
  BlockRequest r{f.store_uri, f.ufs_path, f.etag, f.size, static_cast<uint32_t>(block_size_), idx, 1};
  r.local_only = f.local_only;
  return source_->Answerer(r);
}

std::vector<std::pair<std::string, uint64_t>> Fetcher::BytesBySource() {
  std::lock_guard<std::mutex> lock(source_mu_);
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const SourceFigures& s : sources_) out.emplace_back(s.name, s.bytes);
  return out;
}

std::vector<std::pair<std::string, LatencyHistogram>> Fetcher::LatencyBySource() {
  std::lock_guard<std::mutex> lock(source_mu_);
  std::vector<std::pair<std::string, LatencyHistogram>> out;
  for (const SourceFigures& s : sources_) out.emplace_back(s.name, s.latency);
  return out;
}

uint32_t Fetcher::BlockLength(const FileRef& f, uint64_t idx) const {
  uint64_t start = idx * block_size_;
  if (start >= f.size) return 0;
  return static_cast<uint32_t>(std::min<uint64_t>(block_size_, f.size - start));
}

}  // namespace strata::cache
