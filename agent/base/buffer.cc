#include "agent/base/buffer.h"

#include <mutex>
#include <unordered_map>
#include <vector>

namespace strata {
namespace {

// Smaller buffers come from malloc's own free lists; kKeepBytes bounds what
// an idle agent holds.
constexpr size_t kMinPooled = 256 << 10;
constexpr size_t kKeepBytes = 128 << 20;

struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // by capacity
  size_t kept = 0;

  void* Take(size_t cap) {
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = free.find(cap);
      if (it != free.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        kept -= cap;
        return p;
      }
    }
    void* p = std::aligned_alloc(Buffer::kAlign, cap);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void Give(void* p, size_t cap) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (kept + cap <= kKeepBytes) {
        free[cap].push_back(p);
        kept += cap;
        return;
      }
    }
    std::free(p);
  }
};

Pool& ThePool() {
  static Pool* pool = new Pool;  // never destroyed: buffers may outlive static destruction
  return *pool;
}

}  // namespace

std::shared_ptr<Buffer> Buffer::Make(size_t size) {
  size_t cap = size == 0 ? kAlign : (size + kAlign - 1) / kAlign * kAlign;
  std::shared_ptr<char> mem;
  if (cap < kMinPooled) {
    void* p = std::aligned_alloc(kAlign, cap);
    if (p == nullptr) throw std::bad_alloc();
    mem = std::shared_ptr<char>(static_cast<char*>(p), [](char* q) { std::free(q); });
  } else {
    void* p = ThePool().Take(cap);
    mem = std::shared_ptr<char>(static_cast<char*>(p), [cap](char* q) { ThePool().Give(q, cap); });
  }
  char* ptr = mem.get();
  auto b = std::make_shared<Buffer>(std::move(mem), ptr, size);
  b->whole_ = true;
  return b;
}

}  // namespace strata
