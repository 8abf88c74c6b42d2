#include "agent/cache/journal.h"

#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "agent/base/log.h"

namespace strata::cache {

namespace {
constexpr uint8_t kFileKind = 0;
}

Journal::Journal(index::Index* index, StagingArea* staging) : index_(index), staging_(staging) {}

Result<uint64_t> Journal::NextSeq() {
  std::lock_guard<std::mutex> lock(mu_);
  if (next_seq_ == seq_end_) {
    Result<uint64_t> first = index_->ReserveJournalSeqs(kSeqBatch);
    if (!first.ok()) return first.status();
    next_seq_ = *first;
    seq_end_ = *first + kSeqBatch;
  }
  return next_seq_++;
}

Status Journal::Put(const index::JournalEntry& row, const StagedFile* file) {
  if (file != nullptr) STRATA_RETURN_IF_ERROR(staging_->Sync(*file));
  return index_->PutJournal(row);
}

void Journal::Delete(uint64_t seq) {
  Status s = index_->DeleteJournal(seq);
  if (!s.ok()) LOG_WARN("journal: %s", s.message().c_str());
}

Result<std::vector<Journal::Recovered>> Journal::Recover(
    const std::function<bool(const index::JournalEntry&)>& mounted) {
  std::vector<index::JournalEntry> rows;
  STRATA_RETURN_IF_ERROR(index_->LoadJournal(&rows));
  std::vector<Recovered> out;
  std::unordered_set<uint64_t> keep;
  for (index::JournalEntry& row : rows) {
    if (!mounted(row)) {
      // Never drop committed data: keep the file and say where it is.
      LOG_ERROR("journal: /%s was written for store %s, which is not mounted there now; its data is "
                "kept in %s (mount that store again to upload it)",
                row.path.c_str(), row.store_uri.c_str(), staging_->PathOf(row.seq).c_str());
      keep.insert(row.seq);
      continue;
    }
    Recovered r;
    if (row.kind == kFileKind) {
      Result<Fd> fd = staging_->Reopen(row.seq);
      if (!fd.ok()) {
        LOG_ERROR("journal: the staging file of /%s is missing (%s): the change is lost", row.path.c_str(),
                  fd.status().message().c_str());
        Delete(row.seq);
        continue;
      }
      r.fd = std::move(*fd);
    }
    keep.insert(row.seq);
    r.row = std::move(row);
    out.push_back(std::move(r));
  }
  staging_->RemoveAllBut(keep);
  return out;
}

}  // namespace strata::cache
