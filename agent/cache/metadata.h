// File and directory metadata over the mounted stores, cached in the index
// with a TTL.
//
// Within the TTL, attributes and listings come from the index without asking
// the store; a fresh listing of the parent also answers "no such file". Past
// the TTL, the store is asked again (an object time the store lacks, as for
// implied S3 directories, reads as the agent start); a changed ETag / size / mtime gives the
// path a new file version (file_id) and the engine drops the old version's
// blocks. When a store cannot be reached it is marked offline for a short
// while and the last known metadata is served, so cached files stay readable.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "agent/cache/engine.h"
#include "agent/cache/mounts.h"
#include "agent/index/index.h"

namespace strata::cache {

// Files this host has staged but the store does not hold yet, answered
// before the store (the writer implements it). Must be thread-safe.
class StagedFiles {
 public:
  virtual ~StagedFiles() = default;
  // Attributes of `path` as staged here; nullopt when nothing is.
  virtual std::optional<index::FileMeta> Overlay(const std::string& path) = 0;
  // Adds staged entries below `dir` to a listing (and drops removed ones).
  virtual void MergeListing(const std::string& dir, std::vector<index::DirEntry>* entries) = 0;
};

class Metadata {
 public:
  Metadata(MountTable* mounts, index::Index* index, Engine* engine, int64_t ttl_ms);

  // Attributes of a mount-relative path ("" is the root).
  Result<index::FileMeta> Stat(const std::string& path);
  // Entries directly below `dir`, mount points of other stores included.
  Result<std::vector<index::DirEntry>> List(const std::string& dir);
  // How the engine reads a file version.
  FileRef RefOf(const index::FileMeta& meta) const;

  // Files being written on this host are answered from `staged` first.
  void SetStaged(StagedFiles* staged) { staged_ = staged; }
  // Entries a listing made are final: sizes and times from the listing,
  // modes and owners the mount's defaults, no HEAD per object for the ones
  // kept in object metadata (a fast `ls -l`, as mountpoint-s3 does). Set
  // before serving.
  void SetAttrsFromListing(bool on) { attrs_from_listing_ = on; }
  bool attrs_from_listing() const { return attrs_from_listing_; }
  // A change made through the mount: the store now holds `e` at `path`.
  // Recorded (with the parent's cached listing patched) without asking the
  // store; a changed version drops the old one's blocks.
  Result<index::FileMeta> Record(const std::string& path, const ufs::Entry& e);
  // `path` and everything below it are gone from the store.
  void Forget(const std::string& path);
  int64_t ttl_ms() const { return ttl_ms_; }

 private:
  // Past a network failure the store is left alone for this long.
  static constexpr int64_t kOfflineMs = 10000;
  bool Offline(size_t mount) const;
  index::FileMeta MetaOf(const std::string& path, const ufs::Entry& e, int64_t now_ms) const;
  Result<index::FileMeta> RecordOnly(const std::string& path, const ufs::Entry& e);
  // Stores whose directory times follow their entries: re-read the parent's.
  void TouchParent(const std::string& path);
  void MarkOffline(size_t mount, const Status& why);

  MountTable* const mounts_;
  index::Index* const index_;
  Engine* const engine_;
  StagedFiles* staged_ = nullptr;
  const int64_t ttl_ms_;
  bool attrs_from_listing_ = false;
  // In-memory file ids (kUnindexedFileBit) for files the index could not
  // record, and when that was last logged.
  std::atomic<uint64_t> next_unindexed_{kUnindexedFileBit | 1};
  std::atomic<int64_t> last_index_warning_ms_{-100000};
  const int64_t started_ns_;
};

}  // namespace strata::cache
