// Writes through the mount: files being written are staged on the cache disk,
// then uploaded as whole objects according to the mount's write mode. The
// Writer coordinates three parts: the StagingArea (staging.h: the bytes of
// files being written, and their budget), the Journal (journal.h: which
// changes are committed, across a crash) and the Uploader (uploader.h: the
// background queue, retries, flush waits). It owns the open files, the
// namespace overlay and the locks.
//
// A file opened for writing gets a sparse staging file holding the blocks
// written here; blocks never written are read from the stored version
// underneath. Readers on this host open the staged file, so they see every
// write as soon as it returns. After an upload, small files hand their
// written blocks to the block cache as the new version's. A file uploading
// stays writable (its parts are read under its shared lock one at a time).
//
// Write modes (per mount):
//   through    flush/fsync/close return once the object is in the store. A
//              failed upload is reported to the caller and the file is kept
//              (journaled, retried in the background): nothing is dropped.
//   async      flush/fsync/close return once the staging file is on disk and
//              its journal row is committed (and synced) in LMDB; background
//              uploaders drain the journal with retries and backoff. After a
//              crash the restarted agent re-reads the journal and uploads.
//   cache-only the store is never written: files live in the staging area
//              only (still journaled, so they survive restarts); paths that
//              exist in the store cannot be changed (EROFS).
// Staged bytes are not part of the block cache and never evicted; the staging
// area has its own limit (ENOSPC, or a bounded wait for uploads to drain).
//
// Namespace changes (unlink, mkdir, rmdir, rename, chmod/chown/utimens on
// uploaded files, symlink) go to the store at once in through and async
// modes, and are recorded in the metadata cache without a new listing.
//
// Locks: a File's upload_mu, then its mu (shared for reads, exclusive for
// changes), then the Writer's mu_ (the maps), then the Uploader's and the
// StagingArea's own. Never the other way round; two Files' locks only together through std::lock (a rename
// over a staged file).
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "agent/base/fd.h"
#include "agent/base/status.h"
#include "agent/cache/engine.h"
#include "agent/cache/journal.h"
#include "agent/cache/metadata.h"
#include "agent/cache/mounts.h"
#include "agent/cache/staging.h"
#include "agent/cache/uploader.h"
#include "agent/index/index.h"
#include "ufs/ufs.h"

namespace strata::cache {

enum class WriteMode { kThrough, kAsync, kCacheOnly };
Result<WriteMode> ParseWriteMode(const std::string& s);
const char* WriteModeName(WriteMode m);

struct WriterOptions {
  std::string staging_dir;
  uint64_t staging_limit = 0;  // bytes of staged files at most
  int full_wait_ms = 0;        // > 0: a write waits this long for room before ENOSPC
  int upload_threads = 2;
  uint64_t block_size = 4u << 20;
  std::vector<WriteMode> modes;  // per mount, in MountTable order
};

struct WriterStats {
  uint64_t pending_files = 0;  // committed, waiting for upload
  uint64_t pending_bytes = 0;
  int64_t oldest_pending_ms = 0;  // age of the oldest pending change, 0 when none
  uint64_t failing_files = 0;     // pending files whose last upload attempt failed
  std::string last_error;
  uint64_t cache_only_files = 0;  // never uploaded
  uint64_t cache_only_bytes = 0;
  uint64_t open_files = 0;  // staged files open or dirty
  uint64_t staged_bytes = 0;
  uint64_t staging_limit = 0;
  uint64_t uploads = 0;  // completed uploads
  uint64_t uploaded_bytes = 0;
  uint64_t upload_failures = 0;
  uint64_t streamed_uploads = 0;  // through-mode uploads whose parts went while the file was written
};

class Writer : public StagedFiles {
 public:
  struct File;
  using FilePtr = std::shared_ptr<File>;

  Writer(WriterOptions opts, MountTable* mounts, index::Index* index, Engine* engine, Metadata* meta);
  ~Writer();

  // Re-reads the journal (files committed before a crash), removes staging
  // files nobody committed, and starts the uploaders.
  Status Start();
  // Stops the uploaders after the uploads in flight; the rest stays journaled.
  void Stop();

  WriteMode ModeOf(size_t mount) const;

  // --- open files ---
  // Opens `path` for writing (open(2) flags: O_CREAT, O_EXCL, O_TRUNC; a new
  // file gets `create_attrs`). Adds a handle; Close() drops it.
  Result<FilePtr> Open(const std::string& path, int flags, const ufs::Attrs& create_attrs);
  // A new file at a name the caller made unique and that no store holds (a
  // private temporary name): as Open with O_CREAT | O_EXCL, without asking
  // the store whether it exists.
  Result<FilePtr> OpenNew(const std::string& path, const ufs::Attrs& create_attrs);
  // The staged file at `path`, with a handle added, or nullptr.
  FilePtr OpenStaged(const std::string& path);
  // The staged file at `path` without adding a handle (kept alive only).
  FilePtr Peek(const std::string& path);
  Result<size_t> Read(const FilePtr& f, uint64_t off, size_t len, char* buf);
  // Writes at `off`, or at the end when `append`; *at gets the offset used.
  Status Write(const FilePtr& f, uint64_t off, const char* data, size_t len, bool append, uint64_t* at);
  Status Truncate(const FilePtr& f, uint64_t size);
  // chmod / chown / utimens of an open file (fields at their "none" values stay).
  Status SetAttrs(const FilePtr& f, const ufs::Attrs& attrs);
  // flush / fsync: makes the changes as durable as the write mode promises.
  Status Commit(const FilePtr& f);
  void Close(const FilePtr& f);
  index::FileMeta MetaOf(const FilePtr& f);
  // A new file written under a temporary name to be renamed to
  // `final_path` when whole (the gateway's PUT): in through mode its parts
  // are streamed to the store as `final_path` while it is written, and the
  // rename keeps that stream. Call before the first write.
  void StreamAs(const FilePtr& f, const std::string& final_path);
  // The file id of the stored version `f` holds unchanged (nothing written,
  // truncated or set since it was staged from it), or 0.
  uint64_t UnchangedBase(const FilePtr& f);

  // --- the namespace ---
  // A staged file or a cache-only directory / link at `path`.
  std::optional<index::FileMeta> Overlay(const std::string& path) override;
  // Adds the staged entries directly below `dir` to a listing.
  void MergeListing(const std::string& dir, std::vector<index::DirEntry>* entries) override;
  Status Unlink(const std::string& path);
  Status Mkdir(const std::string& path, const ufs::Attrs& attrs);
  Status Rmdir(const std::string& path);
  Status Rename(const std::string& from, const std::string& to, bool noreplace);
  // setattr on a path: attributes and, when `size` is set, truncate.
  Status SetPathAttrs(const std::string& path, const ufs::Attrs& attrs, std::optional<uint64_t> size);
  Status Symlink(const std::string& path, const std::string& target, const ufs::Attrs& attrs);

  // Waits until no committed change below `prefix` ("" = all) waits for
  // upload, retrying failed ones at once. Timeout names what is left.
  Status Flush(const std::string& prefix, int64_t timeout_ms, uint64_t* files_flushed);
  WriterStats Stats();
  // Bytes staged now and the staging limit: cheap (no walk of the files).
  std::pair<uint64_t, uint64_t> StagingUse();

 private:
  // Open, and OpenNew with `known_new`.
  Result<FilePtr> OpenImpl(const std::string& path, int flags, const ufs::Attrs& create_attrs, bool known_new);
  // Uploads the file as it is now. Takes upload_mu and mu itself.
  Status Upload(const FilePtr& f);
  // Commits the file to the journal (caller holds f->mu exclusively).
  Status JournalLocked(File& f);
  // Reads the file as staged: written blocks from the staging file, the
  // rest from its base version (fetched without the file's lock). `clamp`
  // stops at the file's size.
  Result<size_t> ReadAt(const FilePtr& f, uint64_t off, size_t len, char* buf, bool clamp);
  // Stored bytes of a block a write changes in part, read before the write
  // takes the file's exclusive lock.
  struct Prefill {
    uint64_t block = 0;
    uint64_t file_id = 0;  // of the version they were read from
    std::vector<char> bytes;
  };
  std::vector<Prefill> PrefillFor(const FilePtr& f, uint64_t off, size_t len, bool append);
  // Fills block `b` of the staging file with the stored version's bytes
  // (from `fills` when they are of the current version, else read now).
  Status FillBlockLocked(File& f, uint64_t block, const std::vector<Prefill>& fills);
  // After a write at `changed_from`: in through mode, sends the parts of a
  // file written from empty as they fill (close then waits for the tail
  // only), or drops the stream when the write changed bytes already sent.
  void AdvanceStreamLocked(File& f, uint64_t changed_from);
  // Drops the file's stream for good (aborted by an uploader thread).
  void RetireStreamLocked(File& f);
  Status ReadVersion(const FileRef& base, uint64_t off, size_t len, char* buf);
  // Removes the file from the namespace (unlink, replaced by a rename).
  void DetachLocked(File& f);
  // Hands the blocks written here to the block cache as the uploaded
  // version's (reading a file back after writing it is then a hit).
  void AdoptLocked(File& f);
  static constexpr uint64_t kAdoptMax = 64u << 20;  // larger files: the cache is not flooded
  void UnmapLocked(File& f);  // caller holds mu_
  void MapLocked(const FilePtr& f);  // caller holds mu_
  // A cache-only directory or symbolic link: journaled, never uploaded.
  Status AddLocal(const std::string& path, size_t mount, uint8_t kind, const ufs::Attrs& attrs,
                  const std::string& link_target);
  // Frees a detached file whose last handle is gone (caller holds f->mu).
  void DropIfUnusedLocked(File& f);
  void SnapshotLocked(File& f);
  ufs::Ufs* StoreOf(size_t mount);
  Result<FilePtr> NewFile(const std::string& path, size_t mount, uint8_t kind);

  const WriterOptions opts_;
  MountTable* const mounts_;
  Engine* const engine_;
  Metadata* const meta_;
  StagingArea staging_;
  Journal journal_;
  Uploader uploader_;

  static constexpr size_t kOpenLocks = 64;
  std::mutex open_mu_[kOpenLocks];  // by path hash: one open of a path at a time
  std::mutex mu_;
  std::unordered_map<std::string, FilePtr> by_path_;                     // guarded by mu_
  std::unordered_map<std::string, std::set<std::string>> children_;      // guarded by mu_

  std::atomic<uint64_t> uploads_{0}, uploaded_bytes_{0}, upload_failures_{0}, streamed_uploads_{0};
};

}  // namespace strata::cache
