// An in-memory store for engine tests: objects with ETags, a read delay to
// let concurrent readers pile up, and injected failures.
#pragma once

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "ufs/ufs.h"

namespace strata::testing {

class FakeUfs final : public ufs::Ufs {
 public:
  const std::string& uri() const override { return uri_; }
  Status Probe() override { return Status::OK(); }

  void Put(const std::string& path, std::string data) {
    std::lock_guard<std::mutex> lock(mu_);
    int v = ++version_;
    objects_[path] = {std::move(data), "\"v" + std::to_string(v) + "\"", {}};
  }
  std::string EtagOf(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return objects_.at(path).etag;
  }
  bool Has(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return objects_.count(path) > 0;
  }
  std::string Data(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return objects_.at(path).data;
  }
  ufs::Attrs AttrsOf(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return objects_.at(path).attrs;
  }
  void SetDelayMs(int ms) { delay_ms_ = ms; }
  void FailNextReads(int n) { fail_reads_ = n; }
  // The next n uploads fail as a store answering 503 would (after the bytes
  // were read from the source, as a real upload fails).
  void FailNextPuts(int n) { fail_puts_ = n; }
  int puts() const { return puts_; }
  // Uploads read their source in two halves with this pause between, as a
  // multipart upload sends parts over time.
  void SetPutDelayMs(int ms) { put_delay_ms_ = ms; }
  int puts_started() const { return puts_started_; }

  Result<ufs::Entry> Stat(const std::string& path) override {
    counters().head_requests++;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(path);
    if (it == objects_.end()) return Status::NotFound("fake: no " + path);
    ufs::Entry e;
    e.name = path;
    e.size = it->second.data.size();
    e.etag = it->second.etag;
    e.mtime_ns = 1000;
    e.attrs = it->second.attrs;
    return e;
  }
  Result<std::vector<ufs::Entry>> List(const std::string&) override {
    counters().list_requests++;
    std::vector<ufs::Entry> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, v] : objects_) {
      ufs::Entry e;
      e.name = k;
      e.size = v.data.size();
      e.mtime_ns = 1000;
      e.etag = v.etag;
      out.push_back(std::move(e));
    }
    return out;
  }
  Result<size_t> Read(const std::string& path, const std::string& etag, uint64_t off, size_t len,
                      char* buf) override {
    counters().get_requests++;
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    if (fail_reads_ > 0) {
      fail_reads_--;
      return Status::Unavailable("fake: injected failure");
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(path);
    if (it == objects_.end()) return Status::NotFound("fake: no " + path);
    if (it->second.etag != etag) return Status::Stale("fake: changed");
    const std::string& d = it->second.data;
    if (off >= d.size()) return size_t{0};
    size_t n = std::min<size_t>(len, d.size() - off);
    std::memcpy(buf, d.data() + off, n);
    counters().bytes_read += n;
    return n;
  }

  Result<ufs::Entry> Put(const std::string& path, uint64_t size, const ufs::ReadAt& src, const ufs::Attrs& attrs,
                         const ufs::CopyBase* /*base*/) override {
    puts_started_++;
    std::string data(size, '\0');
    uint64_t half = size / 2;
    if (half > 0) STRATA_RETURN_IF_ERROR(src(0, half, data.data()));
    if (put_delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(put_delay_ms_));
    if (size > half) STRATA_RETURN_IF_ERROR(src(half, size - half, data.data() + half));
    if (fail_puts_ > 0) {
      fail_puts_--;
      return Status::Unavailable("fake: injected 503 on upload");
    }
    puts_++;
    std::lock_guard<std::mutex> lock(mu_);
    int v = ++version_;
    objects_[path] = {std::move(data), "\"v" + std::to_string(v) + "\"", attrs};
    ufs::Entry e;
    e.name = path;
    e.size = size;
    e.etag = objects_[path].etag;
    e.mtime_ns = attrs.mtime_ns ? attrs.mtime_ns : 1000;
    e.attrs = attrs;
    return e;
  }
  Status Delete(const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu_);
    return objects_.erase(path) ? Status::OK() : Status::NotFound("fake: no " + path);
  }
  Status Mkdir(const std::string&, const ufs::Attrs&) override { return Status::OK(); }
  Status Rmdir(const std::string&) override { return Status::OK(); }
  Status Rename(const std::string& from, const std::string& to) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(from);
    if (it == objects_.end()) return Status::NotFound("fake: no " + from);
    objects_[to] = it->second;
    objects_.erase(from);
    return Status::OK();
  }
  bool rename_is_atomic() const override { return true; }
  Result<ufs::Entry> SetAttrs(const std::string& path, const ufs::Attrs& attrs) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = objects_.find(path);
      if (it == objects_.end()) return Status::NotFound("fake: no " + path);
      it->second.attrs = attrs;
    }
    return Stat(path);
  }
  Status Symlink(const std::string&, const std::string&, const ufs::Attrs&) override {
    return Status::NotSupported("fake: no symbolic links");
  }

 private:
  struct Obj {
    std::string data;
    std::string etag;
    ufs::Attrs attrs;
  };
  std::string uri_ = "fake://";
  std::mutex mu_;
  std::map<std::string, Obj> objects_;
  int version_ = 0;
  std::atomic<int> delay_ms_{0};
  std::atomic<int> fail_reads_{0};
  std::atomic<int> fail_puts_{0};
  std::atomic<int> puts_{0};
  std::atomic<int> put_delay_ms_{0};
  std::atomic<int> puts_started_{0};
};

}  // namespace strata::testing
