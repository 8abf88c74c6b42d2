// The staging area: files being written through the mount, on the cache disk.
//
// A StagedFile is one such file: a sparse file as long as the file, holding
// the blocks written here. A block partly written is first filled from the
// stored version underneath (its `base`); blocks never written are read from
// that version, so appending a byte to a large object stages one block, not
// the object. Base versions are immutable (pinned by their ETag): their bytes
// may be read without the owner's lock.
//
// The StagingArea names the staging files (by journal sequence number),
// makes them durable, and keeps the byte budget: a write that would pass the
// limit waits a bounded time for uploads to free room, then gets ENOSPC.
//
// Thread safety: StagedFile is a value guarded by its owner's lock.
// StagingArea's methods may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "agent/base/fd.h"
#include "agent/base/status.h"
#include "agent/cache/block_source.h"
#include "agent/index/index.h"

namespace strata::cache {

struct StagedFile {
  uint64_t seq = 0;  // names the staging file and the journal row
  Fd fd;
  uint64_t size = 0;
  FileRef base;  // the stored version under the blocks not written here (file_id 0: none)
  uint64_t base_size = 0;  // base bytes under the file (less after a truncate)
  std::vector<bool> present;  // per block: the staging file holds it

  bool Holds(uint64_t block) const { return block < present.size() && present[block]; }
  // A piece of a read: from the staging file, or from `base`.
  struct Piece {
    uint64_t off = 0;
    size_t len = 0;
    bool from_base = false;
  };
  // How [off, off + len) is read, in order (bytes past base_size that no
  // block holds are zeros, read from the sparse staging file).
  std::vector<Piece> Plan(uint64_t off, size_t len, uint64_t block_size) const;
  // The blocks a write of [off, end) changes only in part and does not
  // hold yet: the rest of each comes from base first.
  std::vector<uint64_t> NeedsFill(uint64_t off, uint64_t end, uint64_t block_size) const;
  // Whether no block of [off, off + len) was written here (those bytes are
  // base's, and a store may copy them server-side).
  bool Unchanged(uint64_t off, uint64_t len, uint64_t block_size) const;
  // Reads staged bytes (zeros past the staging file's end).
  Status ReadStaged(uint64_t off, size_t len, char* buf) const;
  // Writes bytes and marks their blocks held.
  Status Write(uint64_t off, const char* data, size_t len, uint64_t block_size);
  // Writes base's bytes of `block` (`n` of them) and marks it held.
  Status Fill(uint64_t block, const char* bytes, size_t n, uint64_t block_size);
  Status Truncate(uint64_t new_size);

  // The journal row's fields about the bytes (base, held blocks), and back.
  void ToRow(index::JournalEntry* row) const;
  void FromRow(const index::JournalEntry& row, size_t mount, const std::string& path);
};

class StagingArea {
 public:
  StagingArea(std::string dir, uint64_t limit, int full_wait_ms);

  Status Open();  // creates the directory
  const std::string& dir() const { return dir_; }
  std::string PathOf(uint64_t seq) const;
  // A new empty staging file (truncated when it existed).
  Result<Fd> Create(uint64_t seq);
  // An existing staging file, for recovery.
  Result<Fd> Reopen(uint64_t seq);
  void Remove(uint64_t seq);
  // Deletes staging files whose number is not in `keep` (no acknowledged data).
  void RemoveAllBut(const std::unordered_set<uint64_t>& keep);
  // fdatasync of a staging file, then fsync of the directory: after it a
  // crash keeps the file.
  Status Sync(const StagedFile& f);

  // The byte budget. Reserve waits up to full_wait_ms for `grow` bytes of
  // room (Resize/Release of other files frees it), then says NoSpace.
  Status Reserve(uint64_t grow);
  // A file's staged size changed from `from` to `to` bytes.
  void Resize(uint64_t from, uint64_t to);
  void Wake();  // stops waits (shutdown)
  uint64_t used();
  uint64_t limit() const { return limit_; }

 private:
  const std::string dir_;
  const uint64_t limit_;  // 0: none
  const int full_wait_ms_;
  std::mutex mu_;
  std::condition_variable cv_;   // room freed
  uint64_t used_ = 0;            // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  int64_t last_warning_ms_ = -100000;  // guarded by mu_
};

}  // namespace strata::cache
