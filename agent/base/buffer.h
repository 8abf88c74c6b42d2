// A byte buffer for block data: page-aligned (so it can be written with
// O_DIRECT), not zero-filled, and cheaply sliced into views that share the
// allocation (one ranged GET of several blocks, one buffer per block).
// Freed buffers of block-like sizes are kept for the next Make of the same
// size (a bounded pool): a fresh multi-MiB allocation is a fresh mapping,
// and faulting its pages in and the kernel zeroing them cost more than the
// copy the buffer is made for.
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
  static std::shared_ptr<Buffer> Make(size_t size);
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
