// What a read is answered with: pieces of memory or of open block files.
//
// Thread safety: a Slice is a value; the bytes it refers to do not change.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "agent/base/block_key.h"
#include "agent/base/buffer.h"
#include "agent/base/fd.h"
#include "agent/base/status.h"

namespace strata::cache {

class Engine;

// A piece of a read's reply: `length` bytes at `offset` of `data`, or, when
// `data` is null, at `offset` of the open block file `fd` (a verified SSD
// block: the bytes go from the file to the kernel without passing through
// memory of ours). The Slice keeps the descriptor open, so a block evicted
// meanwhile still reads back whole.
struct Slice {
  std::shared_ptr<const Buffer> data;
  size_t offset = 0;
  size_t length = 0;
  std::shared_ptr<Fd> fd;
  // For fd slices: the cached block they read, so a reader that cannot read
  // the file (a disk error, a file cut short) can have it dropped
  // (Engine::DropUnreadable) and ask again.
  Engine* engine = nullptr;
  BlockKey key{};
  uint64_t gen = 0;
};
// Copies a slice's bytes to `dst` (a pread for an fd slice).
Status CopySlice(const Slice& s, char* dst);
// Copies `parts` in order to `dst` (room for `cap` bytes); *copied gets the
// byte count. IOError when they would overflow `cap`.
Status CopySlices(const std::vector<Slice>& parts, char* dst, size_t cap, size_t* copied);

}  // namespace strata::cache
