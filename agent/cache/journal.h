// The write-back journal: one LMDB row per committed change not yet in the
// store (a staged file, or in cache-only mode a directory or link), keyed by
// the sequence number that also names the staging file.
//
// A row is written after its staging file is synced, so a row always finds
// its bytes; a staging file without a row holds nothing acknowledged and is
// removed at start. Sequence numbers are reserved from the index in ranges,
// so creating a file costs no LMDB commit (each one is a sync to disk).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "agent/base/fd.h"
#include "agent/base/status.h"
#include "agent/cache/staging.h"
#include "agent/index/index.h"

namespace strata::cache {

class Journal {
 public:
  Journal(index::Index* index, StagingArea* staging);

  Result<uint64_t> NextSeq();
  // Makes `row` durable; with `file`, its staged bytes first.
  Status Put(const index::JournalEntry& row, const StagedFile* file);
  void Delete(uint64_t seq);  // a failure is logged: the row is retried at the next start

  struct Recovered {
    index::JournalEntry row;
    Fd fd;  // its staging file (files only)
  };
  // The rows committed before a restart whose store `mounted` accepts, with
  // their staging files open. A row whose staging file is gone is dropped
  // (its change is lost, logged); a row of a store not mounted now keeps its
  // file (logged, uploaded once that store is mounted again); staging files
  // of no row are removed.
  Result<std::vector<Recovered>> Recover(const std::function<bool(const index::JournalEntry&)>& mounted);

 private:
  static constexpr uint64_t kSeqBatch = 1024;
  index::Index* const index_;
  StagingArea* const staging_;
  std::mutex mu_;
  uint64_t next_seq_ = 0, seq_end_ = 0;  // guarded by mu_: the reserved range
};

}  // namespace strata::cache
