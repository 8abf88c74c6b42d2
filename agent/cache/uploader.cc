#include "agent/cache/uploader.h"

#include <algorithm>
#include <chrono>
#include <unordered_set>

#include "agent/base/clock.h"
#include "agent/base/log.h"

namespace strata::cache {

Uploader::Uploader(int threads, UploadFn upload) : threads_(std::max(1, threads)), upload_(std::move(upload)) {}

Uploader::~Uploader() { Stop(); }

void Uploader::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  stop_ = false;
  for (int i = 0; i < threads_; i++) workers_.emplace_back([this] { Loop(); });
}

void Uploader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  std::vector<std::unique_ptr<ufs::StreamUpload>> retired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired.swap(retired_);
  }
}

void Uploader::Queue(const ItemPtr& item, int64_t due_ms) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (item->queued || item->cancelled) return;
    item->queued = true;
    queue_.emplace(due_ms, item);
  }
  cv_.notify_all();
}

void Uploader::Cancel(Item* item) {
  std::lock_guard<std::mutex> lock(mu_);
  item->cancelled = true;
  if (!item->queued) return;
  item->queued = false;
  for (auto it = queue_.begin(); it != queue_.end(); ++it)
    if (it->second.get() == item) {
      queue_.erase(it);
      break;
    }
  cv_.notify_all();
}

void Uploader::Dispose(std::unique_ptr<ufs::StreamUpload> stream) {
  if (!stream) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired_.push_back(std::move(stream));
  }
  cv_.notify_all();
}

void Uploader::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!retired_.empty()) {
      std::vector<std::unique_ptr<ufs::StreamUpload>> retired;
      retired.swap(retired_);
      lock.unlock();
      retired.clear();  // aborts them
      lock.lock();
      continue;
    }
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto it = queue_.begin();
    int64_t now = NowMonoMs();
    if (it->first > now) {
      cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(it->first - now, 1000)));
      continue;
    }
    ItemPtr item = it->second;
    queue_.erase(it);
    item->queued = false;
    item->uploading = true;
    running_.push_back(item);
    lock.unlock();
    Status s = upload_(item);
    lock.lock();
    item->uploading = false;
    running_.erase(std::find(running_.begin(), running_.end(), item));
    if (s.ok()) {
      item->failures = 0;
    } else {
      last_error_ = s.message();
      int n = ++item->failures;
      int64_t delay = std::min<int64_t>(60000, 500LL << std::min(n - 1, 7));
      if ((n & (n - 1)) == 0)
        LOG_WARN("%s (attempt %d, next in %lld ms)", s.message().c_str(), n, static_cast<long long>(delay));
      if (!item->queued && !item->cancelled) {
        item->queued = true;
        queue_.emplace(NowMonoMs() + delay, item);
      }
    }
    cv_.notify_all();
  }
}

std::vector<Uploader::ItemPtr> Uploader::Pending() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ItemPtr> out = running_;
  for (auto& [due, item] : queue_) out.push_back(item);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string Uploader::last_error() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

Status Uploader::Flush(const std::function<bool(const ItemPtr&)>& match, int64_t timeout_ms, uint64_t* flushed) {
  const int64_t deadline = NowMonoMs() + timeout_ms;
  std::unordered_set<Item*> seen;
  for (;;) {
    std::vector<ItemPtr> mine;
    for (const ItemPtr& item : Pending())
      if (match(item)) mine.push_back(item);
    std::unique_lock<std::mutex> lock(mu_);
    size_t pending = 0;
    bool expedited = false;
    for (const ItemPtr& item : mine) {
      if (!item->queued && !item->uploading) continue;  // done meanwhile
      pending++;
      seen.insert(item.get());
      if (!item->queued) continue;
      for (auto it = queue_.begin(); it != queue_.end(); ++it)
        if (it->second == item && it->first > NowMonoMs()) {
          queue_.erase(it);
          queue_.emplace(NowMonoMs(), item);
          expedited = true;
          break;
        }
    }
    if (expedited) cv_.notify_all();
    if (pending == 0) {
      *flushed = seen.size();
      return Status::OK();
    }
    if (NowMonoMs() >= deadline || stop_) {
      *flushed = 0;
      return Status::Timeout(std::to_string(pending) + " file(s) still waiting for upload" +
                             (last_error_.empty() ? "" : "; last error: " + last_error_));
    }
    cv_.wait_for(lock, std::chrono::milliseconds(200));
  }
}

}  // namespace strata::cache
