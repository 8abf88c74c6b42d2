// A byte buffer for block data: page-aligned (so it can be written with
// O_DIRECT), not zero-filled, and cheaply sliced into views that share the
// allocation (one ranged GET of several blocks, one buffer per block).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace strata {

class Buffer {
 public:
  static constexpr size_t kAlign = 4096;

  // `size` bytes of uninitialised, kAlign-aligned memory.
  static std::shared_ptr<Buffer> Make(size_t size) {
    size_t cap = (size + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, cap == 0 ? kAlign : cap);
    if (p == nullptr) throw std::bad_alloc();
    std::shared_ptr<char> mem(static_cast<char*>(p), [](char* q) { std::free(q); });
    auto b = std::make_shared<Buffer>(std::move(mem), static_cast<char*>(p), size);
    b->whole_ = true;
    return b;
  }
  // Bytes [off, off+len) of this buffer, sharing its memory.
  std::shared_ptr<Buffer> View(size_t off, size_t len) const {
    return std::make_shared<Buffer>(mem_, ptr_ + off, len);
  }

  Buffer(std::shared_ptr<char> mem, char* ptr, size_t size) : mem_(std::move(mem)), ptr_(ptr), size_(size) {}
  char* data() { return ptr_; }
  const char* data() const { return ptr_; }
  size_t size() const { return size_; }
  // False for a view: keeping it keeps the whole allocation alive.
  bool whole() const { return whole_; }

 private:
  std::shared_ptr<char> mem_;
  char* ptr_;
  size_t size_;
  bool whole_ = false;
};

}  // namespace strata
