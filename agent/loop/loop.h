// The agent's event loop: one libuv loop on its own thread. Other threads
// hand it work with Post(); everything that touches uv handles runs on it.
//
// Thread safety: Post and Stop may be called from any thread; uv() only on
// the loop thread.
#pragma once

#include <uv.h>

#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace strata::loop {

class Loop {
 public:
  Loop();
  ~Loop();
  // Starts the loop thread.
  void Start();
  // Runs fn on the loop thread, soon.
  void Post(std::function<void()> fn);
  // Runs `on_stop` on the loop thread (to close its handles), then ends the
  // loop once every handle is closed, and joins the thread. Idempotent.
  void Stop(std::function<void()> on_stop = nullptr);
  uv_loop_t* uv() { return &loop_; }

 private:
  static void OnAsync(uv_async_t* a);
  void Drain();

  uv_loop_t loop_;
  uv_async_t async_;
  std::mutex mu_;
  std::vector<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  std::thread thread_;
};

}  // namespace strata::loop
