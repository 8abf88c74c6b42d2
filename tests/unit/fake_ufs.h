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
    objects_[path] = {std::move(data), "\"v" + std::to_string(v) + "\""};
  }
  std::string EtagOf(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return objects_.at(path).etag;
  }
  void SetDelayMs(int ms) { delay_ms_ = ms; }
  void FailNextReads(int n) { fail_reads_ = n; }

  Result<ufs::Entry> Stat(const std::string& path) override {
    counters().head_requests++;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(path);
    if (it == objects_.end()) return Status::NotFound("fake: no " + path);
    ufs::Entry e;
    e.name = path;
    e.size = it->second.data.size();
    e.etag = it->second.etag;
    e.mtime_ms = 1000;
    return e;
  }
  Result<std::vector<ufs::Entry>> List(const std::string&) override {
    counters().list_requests++;
    std::vector<ufs::Entry> out;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [k, v] : objects_) out.push_back({k, false, v.data.size(), 1000, v.etag});
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

 private:
  struct Obj {
    std::string data;
    std::string etag;
  };
  std::string uri_ = "fake://";
  std::mutex mu_;
  std::map<std::string, Obj> objects_;
  int version_ = 0;
  std::atomic<int> delay_ms_{0};
  std::atomic<int> fail_reads_{0};
};

}  // namespace strata::testing
