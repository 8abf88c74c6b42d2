#include "ufs/part_stream.h"
#include "agent/base/paths.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "agent/base/clock.h"

namespace strata::ufs {
namespace {

class PartStream final : public StreamUpload {
 public:
  PartStream(std::unique_ptr<PartSink> sink, std::string path, ReadAt src, const Attrs& attrs, uint64_t first_part,
             int parallel, Counters* counters)
      : sink_(std::move(sink)),
        path_(std::move(path)),
        src_(std::move(src)),
        attrs_(attrs),
        first_part_(first_part),
        parallel_(std::max(1, parallel)),
        counters_(counters) {
    attrs_.mtime_ns = 0;  // the time is the completion's
  }

  ~PartStream() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      todo_.clear();
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
    if (!finished_ && sent_any_) sink_->Abort();
  }

  void Advance(uint64_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failed_.ok()) return;
    while (queued_end_ + NextPartLen() <= n) QueueLocked(NextPartLen());
  }

  uint64_t sent_end() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_end_;
  }

  Status status() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }

  Result<Entry> Finish(uint64_t size, const Attrs& attrs) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (size < queued_end_)
        return Status::InvalidArgument("stream of " + path_ + ": " + std::to_string(size) +
                                       " bytes, fewer than the parts sent");
      if (queued_end_ == 0) {
        lock.unlock();
        return sink_->PutWhole(size, src_, attrs);  // nothing went yet: one plain upload
      }
      while (failed_.ok() && queued_end_ < size) QueueLocked(std::min(NextPartLen(), size - queued_end_));
      cv_.wait(lock, [&] { return todo_.empty() && busy_ == 0; });
      if (!failed_.ok()) return failed_;
    }
    Result<std::string> etag = sink_->Complete(etags_);
    if (!etag.ok()) return etag.status();
    finished_ = true;
    Entry e;
    e.name = SplitPath(path_).second;
    e.size = size;
    e.etag = *etag;
    e.attrs = attrs_;
    e.mtime_ns = e.attrs.mtime_ns = NowUnixMs() * 1000000;
    return e;
  }

 private:
  struct Part {
    uint64_t number = 0;
    uint64_t off = 0;
    size_t len = 0;
  };

  // Caller holds mu_.
  uint64_t NextPartLen() const { return first_part_ << std::min<size_t>(etags_.size() / 1000, 10); }

  void QueueLocked(uint64_t len) {
    etags_.emplace_back();
    todo_.push_back({etags_.size(), queued_end_, static_cast<size_t>(len)});
    queued_end_ += len;
    if (static_cast<int>(workers_.size()) < parallel_) workers_.emplace_back([this] { Work(); });
    cv_.notify_one();
  }

  void Work() {
    std::vector<char> buf;
    for (;;) {
      Part p;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !todo_.empty(); });
        if (stop_) return;
        p = todo_.front();
        todo_.pop_front();
        busy_++;
      }
      sent_any_ = true;
      Result<std::string> etag = sink_->SendPart(p.number, p.off, p.len, src_, &buf);
      if (etag.ok()) counters_->streamed_parts++;
      std::lock_guard<std::mutex> lock(mu_);
      busy_--;
      if (etag.ok()) {
        etags_[p.number - 1] = *etag;
      } else if (failed_.ok()) {
        failed_ = etag.status();
        todo_.clear();
      }
      cv_.notify_all();
    }
  }

  const std::unique_ptr<PartSink> sink_;
  const std::string path_;
  const ReadAt src_;
  Attrs attrs_;  // the parts were started with these
  const uint64_t first_part_;
  const int parallel_;
  Counters* const counters_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // parts queued, parts done
  std::deque<Part> todo_;            // guarded by mu_
  std::vector<std::string> etags_;   // guarded by mu_; what names each part queued
  uint64_t queued_end_ = 0;          // guarded by mu_
  int busy_ = 0;                     // guarded by mu_: parts being sent
  bool stop_ = false;                // guarded by mu_
  Status failed_;                    // guarded by mu_
  std::atomic<bool> sent_any_{false};  // a part went (or is going) to the store
  bool finished_ = false;
  std::vector<std::thread> workers_;  // started by QueueLocked (caller's thread)
};

}  // namespace

std::unique_ptr<StreamUpload> NewPartStream(std::unique_ptr<PartSink> sink, std::string path, ReadAt src,
                                            const Attrs& attrs, uint64_t first_part, int parallel, Counters* counters) {
  return std::make_unique<PartStream>(std::move(sink), std::move(path), std::move(src), attrs, first_part, parallel,
                                      counters);
}

}  // namespace strata::ufs
