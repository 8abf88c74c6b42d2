// The agent's event loop: one libuv loop on its own thread. Other threads
// hand it work with Post(); everything that touches uv handles runs on it.
//
// Thread safety: Post and Stop may be called from any thread; uv() only on
// the loop thread.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// libuv's types, without its header (users of uv() include <uv.h>).
typedef struct uv_loop_s uv_loop_t;
typedef struct uv_async_s uv_async_t;
typedef struct uv_timer_s uv_timer_t;

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
  uv_loop_t* uv() { return loop_.get(); }

 private:
  static void OnAsync(uv_async_t* a);
  void Drain();

  std::unique_ptr<uv_loop_t> loop_;
  std::unique_ptr<uv_async_t> async_;
  std::mutex mu_;
  std::vector<std::function<void()>> queue_;  // guarded by mu_
  bool stopping_ = false;                     // guarded by mu_
  std::thread thread_;
};

}  // namespace strata::loop
