#include "agent/base/thread_pool.h"

#include <pthread.h>

namespace strata {

ThreadPool::ThreadPool(int threads, std::string name) : name_(std::move(name)) {
  for (int i = 0; i < threads; i++) {
    threads_.emplace_back([this] { Run(); });
    pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    urgent_.clear();
    background_.clear();
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::Submit(std::function<void()> fn, bool urgent) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    (urgent ? urgent_ : background_).push_back(std::move(fn));
  }
  cv_.notify_one();
}

size_t ThreadPool::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return urgent_.size() + background_.size();
}

void ThreadPool::Run() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !urgent_.empty() || !background_.empty(); });
      if (stop_) return;
      auto& q = urgent_.empty() ? background_ : urgent_;
      fn = std::move(q.front());
      q.pop_front();
    }
    fn();
  }
}

}  // namespace strata
