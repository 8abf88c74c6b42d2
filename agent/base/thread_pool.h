// A fixed pool of worker threads with a two-level queue: urgent work (a
// reader is waiting) runs before background work (readahead, load).
//
// Thread safety: Submit may be called from any thread; the destructor drains
// nothing: queued work that has not started is dropped.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace strata {

class ThreadPool {
 public:
  ThreadPool(int threads, std::string name);
  ~ThreadPool();
  void Submit(std::function<void()> fn, bool urgent = false);
  size_t queued() const;

 private:
  void Run();
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> urgent_, background_;  // guarded by mu_
  bool stop_ = false;                                       // guarded by mu_
  std::vector<std::thread> threads_;
  std::string name_;
};

}  // namespace strata
