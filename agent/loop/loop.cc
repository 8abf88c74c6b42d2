#include "agent/loop/loop.h"

#include <pthread.h>
#include <uv.h>

namespace strata::loop {

Loop::Loop() : loop_(std::make_unique<uv_loop_t>()), async_(std::make_unique<uv_async_t>()) {
  uv_loop_init(loop_.get());
  uv_async_init(loop_.get(), async_.get(), &Loop::OnAsync);
  async_->data = this;
}

Loop::~Loop() {
  Stop();
  uv_loop_close(loop_.get());
}

void Loop::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "strata-loop");
    uv_run(loop_.get(), UV_RUN_DEFAULT);
  });
}

void Loop::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(fn));
  }
  uv_async_send(async_.get());
}

void Loop::OnAsync(uv_async_t* a) { static_cast<Loop*>(a->data)->Drain(); }

void Loop::Drain() {
  std::vector<std::function<void()>> work;
  bool stop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    work.swap(queue_);
    stop = stopping_;
  }
  for (auto& fn : work) fn();
  if (stop) {
    // Close whatever is still open (walk, like Neovim's bounded shutdown),
    // then the loop ends on its own.
    uv_walk(loop_.get(), [](uv_handle_t* h, void*) {
      if (!uv_is_closing(h)) uv_close(h, nullptr);
    }, nullptr);
  }
}

void Loop::Stop(std::function<void()> on_stop) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    if (on_stop) queue_.push_back(std::move(on_stop));
    stopping_ = true;
  }
  uv_async_send(async_.get());
  if (thread_.joinable()) thread_.join();
  else uv_run(loop_.get(), UV_RUN_DEFAULT);  // never started: close handles here
}

}  // namespace strata::loop
