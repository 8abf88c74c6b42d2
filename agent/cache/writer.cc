#include "agent/cache/writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <unordered_set>

#include "agent/base/clock.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/base/units.h"
#include "agent/cache/metadata.h"

namespace strata::cache {

namespace {
constexpr uint8_t kFile = 0, kDir = 1, kLink = 2;

int64_t NowNs() { return NowUnixNs(); }

// Merges the fields a chmod / chown / utimens sets into `into`.
void MergeAttrs(const ufs::Attrs& from, ufs::Attrs* into) {
  if (from.mode) into->mode = (into->mode & S_IFMT) | (from.mode & 07777);
  if (from.uid != ufs::kNoId) into->uid = from.uid;
  if (from.gid != ufs::kNoId) into->gid = from.gid;
  if (from.mtime_ns) into->mtime_ns = from.mtime_ns;
}
// The blocks a write of [off, end) changes only in part (its first and last)
// where the stored version has bytes: the rest of them comes from that version.
std::vector<uint64_t> PartialBlocks(uint64_t off, uint64_t end, uint64_t bs, uint64_t base_size) {
  std::vector<uint64_t> out;
  auto partial = [&](uint64_t b) {
    return b * bs < base_size && !(off <= b * bs && end >= std::min((b + 1) * bs, base_size));
  };
  uint64_t first = off / bs, last = (end - 1) / bs;
  if (partial(first)) out.push_back(first);
  if (last != first && partial(last)) out.push_back(last);
  return out;
}
}  // namespace

Result<WriteMode> ParseWriteMode(const std::string& s) {
  if (s == "through") return WriteMode::kThrough;
  if (s == "async") return WriteMode::kAsync;
  if (s == "cache-only") return WriteMode::kCacheOnly;
  return Status::InvalidArgument("bad write mode '" + s + "': use through, async or cache-only");
}

const char* WriteModeName(WriteMode m) {
  switch (m) {
    case WriteMode::kThrough: return "through";
    case WriteMode::kAsync: return "async";
    case WriteMode::kCacheOnly: return "cache-only";
  }
  return "?";
}

struct Writer::File {
  std::mutex upload_mu;  // one upload at a time; renames and unlinks wait for it
  std::shared_mutex mu;

  // Guarded by mu.
  size_t mount = 0;
  uint64_t seq = 0;
  uint8_t kind = kFile;
  std::string link_target;
  Fd fd;
  uint64_t size = 0;
  ufs::Attrs attrs;
  FileRef base;  // the store version under the blocks not written here (file_id 0: none)
  uint64_t base_size = 0;
  std::vector<bool> present;  // per block: the staging file holds it
  uint64_t version = 0;          // bumped by every change
  uint64_t durable_version = 0;  // in the store
  uint64_t journaled_version = 0;  // in the journal row (0: no row)
  bool in_store = false;  // the path exists in the store (this file replaces it)
  bool detached = false;  // unlinked or replaced: never uploaded again
  int attempts = 0;
  // Through mode, a file written from empty: its parts go to the store as it
  // grows (see Writer::AdvanceStreamLocked); null when not (or no longer).
  std::unique_ptr<ufs::StreamUpload> stream;
  bool no_stream = false;      // a change the stream cannot carry came: upload whole
  bool restamp_mtime = false;  // an explicit mtime came after the stream started

  // Guarded by Writer::mu_.
  std::string path;
  int handles = 0;
  bool queued = false;
  bool uploading = false;
  bool dropped = false;
  struct Snap {
    uint64_t size = 0;
    ufs::Attrs attrs;
    uint8_t kind = kFile;
    std::string link_target;
    int64_t committed_ms = 0;  // oldest committed change not yet uploaded
    bool failing = false;
  } snap;
};

Writer::Writer(WriterOptions opts, MountTable* mounts, index::Index* index, Engine* engine, Metadata* meta)
    : opts_(std::move(opts)), mounts_(mounts), index_(index), engine_(engine), meta_(meta) {}

Writer::~Writer() { Stop(); }

WriteMode Writer::ModeOf(size_t mount) const {
  return mount < opts_.modes.size() ? opts_.modes[mount] : WriteMode::kThrough;
}

ufs::Ufs* Writer::StoreOf(size_t mount) { return mounts_->at(mount).ufs.get(); }

std::string Writer::StagingPath(uint64_t seq) const {
  char name[32];
  std::snprintf(name, sizeof(name), "%016llx.stage", static_cast<unsigned long long>(seq));
  return opts_.staging_dir + "/" + name;
}

Status Writer::Start() {
  STRATA_RETURN_IF_ERROR(MakeDirs(opts_.staging_dir, 0700));
  std::vector<index::JournalEntry> journal;
  STRATA_RETURN_IF_ERROR(index_->LoadJournal(&journal));
  std::unordered_set<std::string> keep;
  size_t recovered = 0;
  for (const index::JournalEntry& e : journal) {
    std::string staging = StagingPath(e.seq);
    MountTable::Resolved r = mounts_->Resolve(e.path);
    if (mounts_->at(r.mount).ufs->uri() != e.store_uri) {
      // Never drop committed data: keep the file and say where it is.
      LOG_ERROR("journal: /%s was written for store %s, which is not mounted there now; its data is "
                "kept in %s (mount that store again to upload it)",
                e.path.c_str(), e.store_uri.c_str(), staging.c_str());
      keep.insert(staging);
      continue;
    }
    auto f = std::make_shared<File>();
    f->mount = r.mount;
    f->seq = e.seq;
    f->kind = e.kind;
    f->link_target = e.link_target;
    f->path = e.path;
    f->attrs = {e.mode, e.uid, e.gid, e.mtime_ns};
    if (e.kind == kFile) {
      f->fd.Reset(::open(staging.c_str(), O_RDWR | O_CLOEXEC));
      struct stat st;
      if (!f->fd.valid() || ::fstat(f->fd.get(), &st) != 0) {
        LOG_ERROR("journal: staging file %s of /%s is missing (%s): the change is lost",
                  staging.c_str(), e.path.c_str(), std::strerror(errno));
        Status s = index_->DeleteJournal(e.seq);
        (void)s;
        continue;
      }
      f->size = static_cast<uint64_t>(st.st_size);
      if (e.base_file_id != 0) {
        // The blocks it never wrote are still the stored version's.
        f->base.file_id = e.base_file_id;
        f->base.mount = r.mount;
        f->base.path = e.path;
        f->base.store_uri = e.store_uri;
        f->base.ufs_path = e.base_ufs_path;
        f->base.etag = e.base_etag;
        f->base.size = e.base_object_size;
        f->base_size = e.base_size;
        f->present.assign(e.present.size() * 8, false);
        for (size_t b = 0; b < f->present.size(); b++) f->present[b] = (e.present[b / 8] >> (b % 8)) & 1;
      }
    }
    f->version = 1;
    f->journaled_version = 1;
    f->in_store = e.upload;  // it may be there already: unlink and rename treat it so
    f->snap.committed_ms = e.committed_ms;
    keep.insert(staging);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto old = by_path_.find(f->path);
      if (old != by_path_.end()) old->second->dropped = true;  // a later commit of the same path wins
      MapLocked(f);
    }
    {
      std::unique_lock<std::shared_mutex> lock(f->mu);
      SnapshotLocked(*f);
    }
    if (e.upload && ModeOf(r.mount) != WriteMode::kCacheOnly) Queue(f, NowMonoMs());
    recovered++;
  }
  if (recovered > 0) LOG_INFO("journal: %zu staged change(s) recovered; uploading", recovered);
  // Staging files nobody committed hold no acknowledged data.
  if (DIR* d = ::opendir(opts_.staging_dir.c_str())) {
    while (struct dirent* de = ::readdir(d)) {
      std::string path = opts_.staging_dir + "/" + de->d_name;
      if (de->d_name[0] != '.' && !keep.count(path)) ::unlink(path.c_str());
    }
    ::closedir(d);
  }
  for (int i = 0; i < std::max(1, opts_.upload_threads); i++) uploaders_.emplace_back([this] { UploadLoop(); });
  return Status::OK();
}

void Writer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : uploaders_) t.join();
  uploaders_.clear();
  std::vector<std::unique_ptr<ufs::StreamUpload>> retired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired.swap(retired_streams_);
  }
}

// --- staging ---

void Writer::SnapshotLocked(File& f) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!f.dropped) staged_bytes_ = staged_bytes_ + f.size - f.snap.size;
  f.snap.size = f.size;
  f.snap.attrs = f.attrs;
  f.snap.kind = f.kind;
  f.snap.link_target = f.link_target;
  f.snap.failing = f.attempts > 0;
}

Status Writer::CheckRoom(uint64_t grow) {
  if (grow == 0 || opts_.staging_limit == 0) return Status::OK();
  std::unique_lock<std::mutex> lock(mu_);
  int64_t deadline = NowMonoMs() + opts_.full_wait_ms;
  while (staged_bytes_ + grow > opts_.staging_limit) {
    int64_t left = deadline - NowMonoMs();
    if (left <= 0 || stop_) {
      int64_t now = NowMonoMs();
      if (now - last_full_warning_ms_.exchange(now) > 10000)
        LOG_WARN("staging area full (%s of %s staged): writes get ENOSPC until uploads drain "
                 "(raise --staging-size)",
                 FormatSize(staged_bytes_).c_str(), FormatSize(opts_.staging_limit).c_str());
      return Status::NoSpace("staging area full (" + FormatSize(staged_bytes_) + " of " +
                             FormatSize(opts_.staging_limit) + ")");
    }
    cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(left, 200)));
  }
  return Status::OK();
}

Status Writer::ReadBase(File& f, uint64_t off, size_t len, char* buf) { return ReadVersion(f.base, off, len, buf); }

Status Writer::ReadVersion(const FileRef& base, uint64_t off, size_t len, char* buf) {
  if (base.file_id == 0 || len == 0) {
    std::memset(buf, 0, len);
    return Status::OK();
  }
  std::promise<Status> done;
  engine_->Read(base, off, len, [&](Status s, std::vector<Slice> parts) {
    size_t at = 0;
    for (const Slice& p : parts) {
      if (!s.ok()) break;
      s = CopySlice(p, buf + at);
      at += p.length;
    }
    if (s.ok()) std::memset(buf + at, 0, len - at);
    done.set_value(s);
  });
  return done.get_future().get();
}

Status Writer::ReadLocked(File& f, uint64_t off, size_t len, char* buf) {
  const uint64_t bs = opts_.block_size;
  while (len > 0) {
    uint64_t b = off / bs;
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, (b + 1) * bs - off));
    size_t from_base = 0;
    if ((b >= f.present.size() || !f.present[b]) && off < f.base_size)
      from_base = static_cast<size_t>(std::min<uint64_t>(n, f.base_size - off));
    if (from_base > 0) STRATA_RETURN_IF_ERROR(ReadBase(f, off, from_base, buf));
    if (n > from_base) {
      size_t got = 0;
      STRATA_RETURN_IF_ERROR(PreadFull(f.fd.get(), buf + from_base, n - from_base, off + from_base, &got)
                                 .With(StagingPath(f.seq)));
      std::memset(buf + from_base + got, 0, n - from_base - got);  // a sparse tail
    }
    off += n;
    buf += n;
    len -= n;
  }
  return Status::OK();
}

std::vector<Writer::Prefill> Writer::PrefillFor(const FilePtr& f, uint64_t off, size_t len, bool append) {
  std::vector<Prefill> fills;
  FileRef base;
  uint64_t base_size;
  {
    std::shared_lock<std::shared_mutex> lock(f->mu);
    if (append) off = f->size;
    base = f->base;
    base_size = f->base_size;
    if (len == 0 || base.file_id == 0) return fills;
    for (uint64_t b : PartialBlocks(off, off + len, opts_.block_size, base_size))
      if (b >= f->present.size() || !f->present[b]) fills.push_back({b, base.file_id, {}});
  }
  for (Prefill& p : fills) {
    uint64_t start = p.block * opts_.block_size;
    p.bytes.resize(static_cast<size_t>(std::min<uint64_t>(opts_.block_size, base_size - start)));
    if (!ReadVersion(base, start, p.bytes.size(), p.bytes.data()).ok()) p.bytes.clear();  // retried under the lock
  }
  return fills;
}

Status Writer::FillBlockLocked(File& f, uint64_t b, const std::vector<Prefill>& fills) {
  const uint64_t bs = opts_.block_size;
  if (b < f.present.size() && f.present[b]) return Status::OK();
  if (f.present.size() <= b) f.present.resize(b + 1, false);
  uint64_t start = b * bs;
  if (start < f.base_size) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(bs, f.base_size - start));
    const std::vector<char>* ready = nullptr;
    for (const Prefill& p : fills)
      if (p.block == b && p.file_id == f.base.file_id && p.bytes.size() >= n) ready = &p.bytes;
    std::vector<char> buf;
    if (ready == nullptr) {
      // The file changed between the read and the lock (rare): read now.
      buf.resize(n);
      STRATA_RETURN_IF_ERROR(ReadBase(f, start, n, buf.data()).With("read the store's copy to change it"));
      ready = &buf;
    }
    STRATA_RETURN_IF_ERROR(PwriteFull(f.fd.get(), ready->data(), n, start).With(StagingPath(f.seq)));
  }
  f.present[b] = true;
  return Status::OK();
}

Result<uint64_t> Writer::NextSeq() {
  // Reserved from the index in ranges: a created file costs no LMDB commit
  // (each one is a sync to disk). Unused numbers of a range are skipped.
  std::lock_guard<std::mutex> lock(seq_mu_);
  if (next_seq_ == seq_end_) {
    Result<uint64_t> first = index_->ReserveJournalSeqs(kSeqBatch);
    if (!first.ok()) return first.status();
    next_seq_ = *first;
    seq_end_ = *first + kSeqBatch;
  }
  return next_seq_++;
}

Result<Writer::FilePtr> Writer::NewFile(const std::string& path, size_t mount, uint8_t kind) {
  Result<uint64_t> seq = NextSeq();
  if (!seq.ok()) return seq.status();
  auto f = std::make_shared<File>();
  f->mount = mount;
  f->seq = *seq;
  f->kind = kind;
  f->path = path;
  if (kind == kFile) {
    std::string staging = StagingPath(*seq);
    f->fd.Reset(::open(staging.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!f->fd.valid()) return Status::FromErrno(errno, "create staging file " + staging);
  }
  return f;
}

Result<Writer::FilePtr> Writer::Open(const std::string& path, int flags, const ufs::Attrs& create_attrs) {
  const bool truncate = flags & O_TRUNC;
  // One open of a path at a time: the staged file, or else the store's
  // version, is looked up and adopted as one step (a staged file being
  // dropped by its last close has been recorded in the index first).
  std::lock_guard<std::mutex> creating(open_mu_[std::hash<std::string>()(path) % kOpenLocks]);
  if (FilePtr f = OpenStaged(path)) {
    if ((flags & O_CREAT) && (flags & O_EXCL)) {
      Close(f);
      return Status::AlreadyExists("/" + path + " exists");
    }
    if (truncate) {
      Status s = Truncate(f, 0);
      if (!s.ok()) {
        Close(f);
        return s;
      }
    }
    return f;
  }
  std::optional<index::FileMeta> existing;
  Result<index::FileMeta> m = meta_->Stat(path);
  if (m.ok()) {
    if ((flags & O_CREAT) && (flags & O_EXCL)) return Status::AlreadyExists("/" + path + " exists");
    if (m->is_dir) return Status::IsADirectory("/" + path + " is a directory");
    if (m->file_id == 0) return Status::IsADirectory("/" + path + " is not a regular file");
    existing = *m;
  } else if (!m.status().IsNotFound() || !(flags & O_CREAT)) {
    return m.status();
  }
  MountTable::Resolved r = mounts_->Resolve(path);
  if (ModeOf(r.mount) == WriteMode::kCacheOnly && existing.has_value())
    return Status::ReadOnly("/" + path + " is in the store and this mount is cache-only (it never changes the store)");
  Result<FilePtr> made = NewFile(path, r.mount, kFile);
  if (!made.ok()) return made.status();
  FilePtr f = *made;
  {
    std::unique_lock<std::shared_mutex> lock(f->mu);
    if (existing.has_value()) {
      f->in_store = true;
      f->attrs = {existing->mode, existing->uid, existing->gid, existing->mtime_ns};
      if (!truncate) {
        f->base = meta_->RefOf(*existing);
        f->base_size = f->size = existing->size;
      }
    } else {
      f->attrs = create_attrs;
      if (f->attrs.mtime_ns == 0) f->attrs.mtime_ns = NowNs();
    }
    // A new or truncated file is a change even if nothing is written.
    f->version = (!existing.has_value() || truncate) ? 1 : 0;
    if (truncate) f->attrs.mtime_ns = NowNs();
    if (::ftruncate(f->fd.get(), static_cast<off_t>(f->size)) != 0)
      return Status::FromErrno(errno, "size staging file for /" + path);
    {
      std::lock_guard<std::mutex> maps(mu_);
      MapLocked(f);
      f->handles = 1;
    }
    SnapshotLocked(*f);
  }
  return f;
}

Writer::FilePtr Writer::OpenStaged(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_path_.find(path);
  if (it == by_path_.end() || it->second->snap.kind != kFile) return nullptr;
  it->second->handles++;
  return it->second;
}

Writer::FilePtr Writer::Peek(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_path_.find(path);
  return it == by_path_.end() ? nullptr : it->second;
}

Result<size_t> Writer::Read(const FilePtr& f, uint64_t off, size_t len, char* buf) {
  std::shared_lock<std::shared_mutex> lock(f->mu);
  if (off >= f->size) return size_t{0};
  len = static_cast<size_t>(std::min<uint64_t>(len, f->size - off));
  STRATA_RETURN_IF_ERROR(ReadLocked(*f, off, len, buf));
  return len;
}

Status Writer::Write(const FilePtr& f, uint64_t off, const char* data, size_t len, bool append, uint64_t* at) {
  // The stored bytes of blocks this write changes in part are read first,
  // without the file's exclusive lock: readers and the FUSE worker do not
  // wait on the store while others hold the file.
  std::vector<Prefill> fills = PrefillFor(f, off, len, append);
  std::unique_lock<std::shared_mutex> lock(f->mu);
  if (append) off = f->size;
  *at = off;
  if (len == 0) return Status::OK();
  uint64_t end = off + len;
  STRATA_RETURN_IF_ERROR(CheckRoom(end > f->size ? end - f->size : 0));
  const uint64_t bs = opts_.block_size;
  uint64_t first = off / bs, last = (end - 1) / bs;
  // A block written only in part keeps the rest of its store bytes.
  for (uint64_t b : PartialBlocks(off, end, bs, f->base_size)) STRATA_RETURN_IF_ERROR(FillBlockLocked(*f, b, fills));
  Status s = PwriteFull(f->fd.get(), data, len, off);
  if (!s.ok()) {
    if (s.code() == Status::Code::kNoSpace) return Status::NoSpace("cache disk full: " + s.message());
    return s.With(StagingPath(f->seq));
  }
  if (f->present.size() <= last) f->present.resize(last + 1, false);
  for (uint64_t b = first; b <= last; b++) f->present[b] = true;
  f->size = std::max(f->size, end);
  f->version++;
  f->attrs.mtime_ns = NowNs();
  SnapshotLocked(*f);
  AdvanceStreamLocked(*f, off);
  return Status::OK();
}

void Writer::AdvanceStreamLocked(File& f, uint64_t changed_from) {
  if (f.stream && changed_from < f.stream->sent_end()) {
    RetireStreamLocked(f);  // bytes already sent changed: the upload at close sends the whole file
    return;
  }
  if (!f.stream) {
    if (f.no_stream || f.detached || f.kind != kFile || f.base_size != 0 || ModeOf(f.mount) != WriteMode::kThrough)
      return;
    Fd dup(::dup(f.fd.get()));
    if (!dup.valid()) return;
    auto fd = std::make_shared<Fd>(std::move(dup));
    ufs::ReadAt src = [fd](uint64_t off, size_t len, char* buf) {
      size_t got = 0;
      Status s = PreadFull(fd->get(), buf, len, off, &got);
      if (s.ok() && got != len) s = Status::IOError("staging file shorter than its upload");
      return s;
    };
    std::string path;
    {
      std::lock_guard<std::mutex> maps(mu_);
      path = f.path;
    }
    f.stream = StoreOf(f.mount)->StartStream(mounts_->Resolve(path).ufs_path, std::move(src), f.attrs);
    if (!f.stream) {
      f.no_stream = true;
      return;
    }
  }
  if (!f.stream->status().ok()) {
    RetireStreamLocked(f);
    return;
  }
  f.stream->Advance(f.size);
}

void Writer::RetireStreamLocked(File& f) {
  f.no_stream = true;
  if (!f.stream) return;
  // Aborting waits for the parts in flight: an uploader does it, not the
  // caller (a FUSE worker holding the file's lock).
  {
    std::lock_guard<std::mutex> lock(mu_);
    retired_streams_.push_back(std::move(f.stream));
  }
  cv_.notify_all();
}

Status Writer::Truncate(const FilePtr& f, uint64_t size) {
  std::unique_lock<std::shared_mutex> lock(f->mu);
  if (f->kind != kFile) return Status::InvalidArgument("not a regular file");
  STRATA_RETURN_IF_ERROR(CheckRoom(size > f->size ? size - f->size : 0));
  // Bytes past the new end read as zeros from now on, even after growing again.
  f->base_size = std::min(f->base_size, size);
  if (::ftruncate(f->fd.get(), static_cast<off_t>(size)) != 0)
    return Status::FromErrno(errno, "truncate " + StagingPath(f->seq));
  if (f->stream && size < f->stream->sent_end()) RetireStreamLocked(*f);
  f->size = size;
  f->version++;
  f->attrs.mtime_ns = NowNs();
  SnapshotLocked(*f);
  return Status::OK();
}

Status Writer::SetAttrs(const FilePtr& f, const ufs::Attrs& attrs) {
  std::unique_lock<std::shared_mutex> lock(f->mu);
  bool clean = f->version == f->durable_version && f->in_store && f->journaled_version == 0;
  if (clean && ModeOf(f->mount) != WriteMode::kCacheOnly && !f->detached) {
    // Already in the store as it is: change the store's attributes only.
    std::string path;
    {
      std::lock_guard<std::mutex> maps(mu_);
      path = f->path;
    }
    Result<ufs::Entry> e = StoreOf(f->mount)->SetAttrs(mounts_->Resolve(path).ufs_path, attrs);
    if (!e.ok()) return e.status();
    MergeAttrs(attrs, &f->attrs);
    Result<index::FileMeta> m = meta_->Record(path, *e);
    if (m.ok() && f->base.file_id != 0) f->base = meta_->RefOf(*m);
  } else {
    if (f->stream) {
      // Mode and owner go with the upload's start; a time alone is set after it.
      bool owner_or_mode = (attrs.mode && attrs.mode != f->attrs.mode) || (attrs.uid != ufs::kNoId && attrs.uid != f->attrs.uid) ||
                           (attrs.gid != ufs::kNoId && attrs.gid != f->attrs.gid);
      if (owner_or_mode) RetireStreamLocked(*f);
      else if (attrs.mtime_ns) f->restamp_mtime = true;
    }
    MergeAttrs(attrs, &f->attrs);
    f->version++;
  }
  SnapshotLocked(*f);
  return Status::OK();
}

Status Writer::JournalLocked(File& f) {
  index::JournalEntry e;
  if (f.kind == kFile) {
    // Blocks never written stay the stored version's: the row names that
    // version (pinned by its ETag) instead of copying it into staging, so
    // appending a byte to a large object costs a byte, not the object. The
    // upload copies those parts server-side where the store can.
    if (f.base.file_id != 0 && f.base_size > 0) {
      e.base_file_id = f.base.file_id;
      e.base_ufs_path = f.base.ufs_path;
      e.base_etag = f.base.etag;
      e.base_object_size = f.base.size;
      e.base_size = f.base_size;
      e.present.assign((f.present.size() + 7) / 8, '\0');
      for (size_t b = 0; b < f.present.size(); b++)
        if (f.present[b]) e.present[b / 8] = static_cast<char>(e.present[b / 8] | (1 << (b % 8)));
    }
    if (::fdatasync(f.fd.get()) != 0) return Status::FromErrno(errno, "sync " + StagingPath(f.seq));
    Fd dir(::open(opts_.staging_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.valid()) ::fsync(dir.get());
  }
  e.seq = f.seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    e.path = f.path;
  }
  e.store_uri = StoreOf(f.mount)->uri();
  e.kind = f.kind;
  e.upload = ModeOf(f.mount) != WriteMode::kCacheOnly;
  e.size = f.size;
  e.mode = f.attrs.mode;
  e.uid = f.attrs.uid;
  e.gid = f.attrs.gid;
  e.mtime_ns = f.attrs.mtime_ns;
  e.link_target = f.link_target;
  e.committed_ms = NowUnixMs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (f.snap.committed_ms != 0) e.committed_ms = f.snap.committed_ms;
    f.snap.committed_ms = e.committed_ms;
  }
  STRATA_RETURN_IF_ERROR(index_->PutJournal(e));
  f.journaled_version = f.version;
  return Status::OK();
}

Status Writer::Commit(const FilePtr& f) {
  WriteMode mode = ModeOf(f->mount);
  {
    // Nothing new since the last commit (the common close after an fsync):
    // answer without waiting for an upload of this file in progress.
    std::shared_lock<std::shared_mutex> lock(f->mu);
    if (f->detached || f->version == f->durable_version || f->version == f->journaled_version)
      return Status::OK();
  }
  {
    std::unique_lock<std::shared_mutex> lock(f->mu);
    if (f->detached || f->version == f->durable_version || f->version == f->journaled_version)
      return Status::OK();
    if (mode != WriteMode::kThrough) {
      STRATA_RETURN_IF_ERROR(JournalLocked(*f));
      if (mode == WriteMode::kAsync) Queue(f, NowMonoMs());
      return Status::OK();
    }
  }
  Status s = Upload(f);
  if (s.ok()) return s;
  // The caller hears of the failure; the bytes stay staged and are retried.
  std::string path;
  {
    std::unique_lock<std::shared_mutex> lock(f->mu);
    Status j = JournalLocked(*f);
    path = f->path;
    if (!j.ok())
      LOG_ERROR("/%s: upload failed and the file could not be journaled (%s): it is kept in the "
                "staging area and retried while the agent runs", path.c_str(), j.message().c_str());
  }
  LOG_WARN("/%s: upload failed, kept staged and retried in the background: %s", path.c_str(), s.message().c_str());
  Queue(f, NowMonoMs() + 1000);
  return s;
}

Status Writer::Upload(const FilePtr& f) {
  std::lock_guard<std::mutex> serial(f->upload_mu);
  std::shared_lock<std::shared_mutex> lock(f->mu);
  if (f->detached || f->version == f->durable_version || f->kind != kFile) return Status::OK();
  const uint64_t v = f->version, size = f->size;
  const ufs::Attrs attrs = f->attrs;
  std::string path;
  {
    std::lock_guard<std::mutex> maps(mu_);
    path = f->path;
  }
  ufs::ReadAt src = [&](uint64_t off, size_t len, char* buf) { return ReadLocked(*f, off, len, buf); };
  // Parts of the new object no block of which was written here are the
  // stored version's bytes: the store may copy them without us sending them.
  ufs::CopyBase base;
  if (f->base.file_id != 0 && f->base_size > 0) {
    base.path = f->base.ufs_path;
    base.etag = f->base.etag;
    base.unchanged = [&](uint64_t off, uint64_t len) {
      if (off + len > f->base_size) return false;
      const uint64_t bs = opts_.block_size;
      for (uint64_t b = off / bs; b * bs < off + len; b++)
        if (b < f->present.size() && f->present[b]) return false;
      return true;
    };
  }
  const std::string ufs_path = mounts_->Resolve(path).ufs_path;
  ufs::Ufs* store = StoreOf(f->mount);
  // Only uploads hold upload_mu, and writers wait for our shared lock.
  std::unique_ptr<ufs::StreamUpload> stream = std::move(f->stream);
  std::optional<Result<ufs::Entry>> streamed;
  if (stream && stream->sent_end() > 0) {
    streamed = stream->Finish(size, attrs);
    if (streamed->ok() && f->restamp_mtime) {
      ufs::Attrs when;
      when.mtime_ns = attrs.mtime_ns;
      streamed = store->SetAttrs(ufs_path, when);
    }
    if (streamed->ok()) {
      streamed_uploads_++;
    } else {
      LOG_WARN("/%s: the upload sent while writing failed (%s): sending the file whole", path.c_str(),
               streamed->status().message().c_str());
    }
  }
  Result<ufs::Entry> e = streamed.has_value() && streamed->ok()
                             ? std::move(*streamed)
                             : store->Put(ufs_path, size, src, attrs, base.unchanged ? &base : nullptr);
  stream.reset();  // finished, or aborted here
  lock.unlock();

  std::unique_lock<std::shared_mutex> x(f->mu);
  if (!e.ok()) {
    f->attempts++;
    upload_failures_++;
    SnapshotLocked(*f);
    return e.status().With("upload /" + path);
  }
  uploads_++;
  uploaded_bytes_ += size;
  f->attempts = 0;
  f->in_store = true;
  f->durable_version = std::max(f->durable_version, v);
  Result<index::FileMeta> m = meta_->Record(path, *e);
  if (m.ok()) {
    // The new object holds what the staging file held at v: blocks not
    // written since read from it.
    f->base = meta_->RefOf(*m);
    f->base_size = std::min(size, f->size);
    if (f->version == v && size <= kAdoptMax) AdoptLocked(*f);
  } else {
    LOG_WARN("index: cannot record the upload of /%s: %s", path.c_str(), m.status().message().c_str());
  }
  if (f->version == v && f->journaled_version != 0) {
    Status s = index_->DeleteJournal(f->seq);
    if (!s.ok()) LOG_WARN("journal: %s", s.message().c_str());
    f->journaled_version = 0;
  }
  bool again = f->journaled_version > v;
  {
    std::lock_guard<std::mutex> maps(mu_);
    if (f->version == v) f->snap.committed_ms = 0;
  }
  SnapshotLocked(*f);
  if (f->version == v) DropIfUnusedLocked(*f);
  x.unlock();
  if (again) Queue(f, NowMonoMs());
  cv_.notify_all();
  return Status::OK();
}

void Writer::UnmapLocked(File& f) {
  auto it = by_path_.find(f.path);
  if (it != by_path_.end() && it->second.get() == &f) {
    by_path_.erase(it);
    auto [parent, name] = SplitPath(f.path);
    children_[parent].erase(name);
    if (children_[parent].empty()) children_.erase(parent);
  }
}

void Writer::AdoptLocked(File& f) {
  const uint64_t bs = opts_.block_size;
  for (uint64_t b = 0; b * bs < f.size; b++) {
    if (b >= f.present.size() || !f.present[b]) continue;  // not written here: not in hand
    size_t len = static_cast<size_t>(std::min(bs, f.size - b * bs));
    std::shared_ptr<Buffer> buf = Buffer::Make(len);
    size_t got = 0;
    if (!PreadFull(f.fd.get(), buf->data(), len, b * bs, &got).ok() || got != len) return;
    engine_->Adopt(f.base, b, std::move(buf));
  }
}

void Writer::DetachLocked(File& f) {
  f.detached = true;
  RetireStreamLocked(f);
  if (f.journaled_version != 0) {
    Status s = index_->DeleteJournal(f.seq);
    if (!s.ok()) LOG_WARN("journal: %s", s.message().c_str());
    f.journaled_version = 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  UnmapLocked(f);
}

void Writer::DropIfUnusedLocked(File& f) {
  bool clean = f.detached || (f.version == f.durable_version && f.journaled_version == 0 &&
                              ModeOf(f.mount) != WriteMode::kCacheOnly && f.kind == kFile);
  {
    // Checked and taken out of the maps at once: an open either finds it
    // (and keeps it) or does not see it at all.
    std::lock_guard<std::mutex> lock(mu_);
    if (f.handles > 0 || !clean || f.dropped) return;
    f.dropped = true;
    UnmapLocked(f);
    staged_bytes_ -= std::min(staged_bytes_, f.snap.size);
  }
  f.detached = true;
  RetireStreamLocked(f);
  if (f.kind == kFile) ::unlink(StagingPath(f.seq).c_str());
  f.fd.Reset();
  cv_.notify_all();
}

void Writer::Close(const FilePtr& f) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (--f->handles > 0) return;
  }
  bool dirty;
  {
    std::shared_lock<std::shared_mutex> lock(f->mu);
    dirty = !f->detached && f->version != f->durable_version && f->version != f->journaled_version;
  }
  // A last close without a flush (a failed one, or writes through mmap).
  if (dirty) {
    Status s = Commit(f);
    (void)s;
  }
  std::unique_lock<std::shared_mutex> lock(f->mu);
  DropIfUnusedLocked(*f);
}

uint64_t Writer::UnchangedBase(const FilePtr& f) {
  std::shared_lock<std::shared_mutex> lock(f->mu);
  bool unchanged = f->version == 0 && f->kind == kFile && f->base_size == f->size && f->size == f->base.size;
  return unchanged ? f->base.file_id : 0;
}

index::FileMeta Writer::MetaOf(const FilePtr& f) {
  std::lock_guard<std::mutex> lock(mu_);
  index::FileMeta m;
  m.path = f->path;
  m.size = f->snap.size;
  m.mtime_ns = f->snap.attrs.mtime_ns;
  m.mode = f->snap.attrs.mode;
  m.uid = f->snap.attrs.uid;
  m.gid = f->snap.attrs.gid;
  m.is_dir = f->snap.kind == kDir;
  m.link_target = f->snap.link_target;
  if (f->snap.kind == kLink) m.size = m.link_target.size();
  return m;
}

// --- the namespace ---

std::optional<index::FileMeta> Writer::Overlay(const std::string& path) {
  FilePtr f;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_path_.find(path);
    if (it == by_path_.end()) return std::nullopt;
    f = it->second;
  }
  return MetaOf(f);
}

void Writer::MergeListing(const std::string& dir, std::vector<index::DirEntry>* entries) {
  std::vector<FilePtr> files;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = children_.find(dir);
    if (it == children_.end()) return;
    for (const std::string& name : it->second) {
      auto f = by_path_.find(JoinPath(dir, name));
      if (f != by_path_.end()) files.push_back(f->second);
    }
  }
  for (const FilePtr& f : files) {
    index::FileMeta m = MetaOf(f);
    index::DirEntry d;
    static_cast<index::PosixAttrs&>(d) = m;
    d.name = SplitPath(m.path).second;
    d.is_dir = m.is_dir;
    d.size = m.size;
    d.mtime_ns = m.mtime_ns;
    auto same = std::find_if(entries->begin(), entries->end(), [&](const index::DirEntry& e) { return e.name == d.name; });
    if (same != entries->end()) *same = std::move(d);
    else entries->push_back(std::move(d));
  }
}

namespace {
Status NotInCacheOnly(const std::string& path) {
  return Status::ReadOnly("/" + path + " is in the store and this mount is cache-only (it never changes the store)");
}
}  // namespace

Status Writer::Unlink(const std::string& path) {
  if (mounts_->IsSyntheticDir(path)) return Status::Busy("/" + path + " is a mount point");
  MountTable::Resolved r = mounts_->Resolve(path);
  FilePtr f;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_path_.find(path);
    if (it != by_path_.end()) f = it->second;
  }
  if (f) {
    std::lock_guard<std::mutex> serial(f->upload_mu);
    std::unique_lock<std::shared_mutex> lock(f->mu);
    if (f->kind == kDir) return Status::IsADirectory("/" + path + " is a directory");
    if (f->in_store && ModeOf(r.mount) != WriteMode::kCacheOnly) {
      Status s = StoreOf(r.mount)->Delete(r.ufs_path);
      if (!s.ok() && !s.IsNotFound()) return s;
    }
    DetachLocked(*f);
    DropIfUnusedLocked(*f);
  } else {
    if (ModeOf(r.mount) == WriteMode::kCacheOnly) return NotInCacheOnly(path);
    STRATA_RETURN_IF_ERROR(StoreOf(r.mount)->Delete(r.ufs_path));
  }
  meta_->Forget(path);
  return Status::OK();
}

Status Writer::Mkdir(const std::string& path, const ufs::Attrs& attrs) {
  MountTable::Resolved r = mounts_->Resolve(path);
  if (ModeOf(r.mount) == WriteMode::kCacheOnly) {
    ufs::Attrs a = attrs;
    a.mode = S_IFDIR | (attrs.mode & 07777);
    return AddLocal(path, r.mount, kDir, a, "");
  }
  STRATA_RETURN_IF_ERROR(StoreOf(r.mount)->Mkdir(r.ufs_path, attrs));
  ufs::Entry e;
  e.name = SplitPath(path).second;
  e.is_dir = true;
  e.attrs = attrs;
  e.attrs.mode = S_IFDIR | (attrs.mode & 07777);
  e.mtime_ns = attrs.mtime_ns ? attrs.mtime_ns : NowNs();
  Result<index::FileMeta> m = meta_->Record(path, e);
  return m.status();
}

Status Writer::AddLocal(const std::string& path, size_t mount, uint8_t kind, const ufs::Attrs& attrs,
                        const std::string& link_target) {
  Result<FilePtr> f = NewFile(path, mount, kind);
  if (!f.ok()) return f.status();
  std::unique_lock<std::shared_mutex> lock((*f)->mu);
  (*f)->attrs = attrs;
  if ((*f)->attrs.mtime_ns == 0) (*f)->attrs.mtime_ns = NowNs();
  (*f)->link_target = link_target;
  (*f)->version = 1;
  STRATA_RETURN_IF_ERROR(JournalLocked(**f));
  {
    std::lock_guard<std::mutex> maps(mu_);
    MapLocked(*f);
  }
  SnapshotLocked(**f);
  return Status::OK();
}

void Writer::MapLocked(const FilePtr& f) {
  by_path_[f->path] = f;
  auto [parent, name] = SplitPath(f->path);
  children_[parent].insert(name);
}

Status Writer::Rmdir(const std::string& path) {
  if (mounts_->IsSyntheticDir(path)) return Status::Busy("/" + path + " is a mount point");
  MountTable::Resolved r = mounts_->Resolve(path);
  FilePtr f;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto kids = children_.find(path);
    if (kids != children_.end() && !kids->second.empty())
      return Status::NotEmpty("/" + path + " is not empty");
    auto it = by_path_.find(path);
    if (it != by_path_.end()) f = it->second;
  }
  if (f) {
    std::unique_lock<std::shared_mutex> lock(f->mu);
    if (f->kind != kDir) return Status::NotADirectory("/" + path + " is not a directory");
    DetachLocked(*f);
    DropIfUnusedLocked(*f);
  } else {
    if (ModeOf(r.mount) == WriteMode::kCacheOnly) return NotInCacheOnly(path);
    STRATA_RETURN_IF_ERROR(StoreOf(r.mount)->Rmdir(r.ufs_path));
  }
  meta_->Forget(path);
  return Status::OK();
}

Status Writer::Rename(const std::string& from, const std::string& to, bool noreplace) {
  if (mounts_->IsSyntheticDir(from) || mounts_->IsSyntheticDir(to))
    return Status::Busy("a mount point cannot be renamed or replaced");
  MountTable::Resolved rf = mounts_->Resolve(from), rt = mounts_->Resolve(to);
  if (rf.mount != rt.mount) return Status::CrossDevice("/" + from + " and /" + to + " are in different stores");
  if (IsUnder(to, from)) return Status::InvalidArgument("cannot move /" + from + " into itself");
  const bool cache_only = ModeOf(rf.mount) == WriteMode::kCacheOnly;
  ufs::Ufs* store = StoreOf(rf.mount);

  Result<index::FileMeta> src = meta_->Stat(from);
  if (!src.ok()) return src.status();
  Result<index::FileMeta> dst = meta_->Stat(to);
  if (dst.ok() && noreplace) return Status::AlreadyExists("/" + to + " exists");
  if (dst.ok() && dst->is_dir != src->is_dir)
    return dst->is_dir ? Status::IsADirectory("/" + to + " is a directory")
                       : Status::NotADirectory("/" + to + " is not a directory");

  FilePtr ff, ft;
  std::vector<FilePtr> below;  // staged entries below a renamed directory
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = by_path_.find(from); it != by_path_.end()) ff = it->second;
    if (auto it = by_path_.find(to); it != by_path_.end()) ft = it->second;
    if (src->is_dir) {
      for (auto& [p, f] : by_path_)
        if (p != from && IsUnder(p, from)) below.push_back(f);
      auto kids = children_.find(to);
      if (dst.ok() && kids != children_.end() && !kids->second.empty())
        return Status::NotEmpty("/" + to + " is not empty");
    }
  }
  bool from_in_store = !ff;
  if (ff) {
    std::shared_lock<std::shared_mutex> lock(ff->mu);
    from_in_store = ff->in_store;
  }
  if (cache_only && from_in_store) return NotInCacheOnly(from);
  if (cache_only && dst.ok() && !ft) return NotInCacheOnly(to);

  // The source and a staged target are locked together (std::lock orders
  // them), so no upload of either runs between the store's rename and ours.
  if (ft == ff) ft = nullptr;
  std::unique_lock<std::mutex> serial, tserial;
  std::unique_lock<std::shared_mutex> lock, tlock;
  if (ff) serial = std::unique_lock<std::mutex>(ff->upload_mu, std::defer_lock);
  if (ft) tserial = std::unique_lock<std::mutex>(ft->upload_mu, std::defer_lock);
  if (ff) lock = std::unique_lock<std::shared_mutex>(ff->mu, std::defer_lock);
  if (ft) tlock = std::unique_lock<std::shared_mutex>(ft->mu, std::defer_lock);
  if (ff && ft) {
    std::lock(serial, tserial);
    std::lock(lock, tlock);
  } else if (ff || ft) {
    (ff ? serial : tserial).lock();
    (ff ? lock : tlock).lock();
  }
  if (from_in_store && !cache_only) STRATA_RETURN_IF_ERROR(store->Rename(rf.ufs_path, rt.ufs_path));
  if (ft) {
    // The target is replaced: its staged bytes must never be uploaded.
    DetachLocked(*ft);
    DropIfUnusedLocked(*ft);
    tlock = {};
    tserial = {};
  }
  auto move = [&](const FilePtr& f, const std::string& new_path) {
    {
      std::lock_guard<std::mutex> maps(mu_);
      UnmapLocked(*f);
      f->path = new_path;
      MapLocked(f);
    }
  };
  auto rejournal = [&](File& f) {
    if (f.journaled_version == 0) return;
    Status s = JournalLocked(f);
    if (!s.ok()) LOG_ERROR("journal: cannot record the rename of /%s: %s", f.path.c_str(), s.message().c_str());
  };
  if (ff) {
    RetireStreamLocked(*ff);  // its parts went under the old name
    move(ff, to);
    rejournal(*ff);
  }
  lock = {};
  serial = {};
  for (const FilePtr& f : below) {
    std::lock_guard<std::mutex> s(f->upload_mu);
    std::unique_lock<std::shared_mutex> l(f->mu);
    std::string p;
    {
      std::lock_guard<std::mutex> maps(mu_);
      p = f->path;
    }
    if (!IsUnder(p, from)) continue;
    move(f, to + p.substr(from.size()));
    rejournal(*f);
  }
  meta_->Forget(from);
  meta_->Forget(to);
  if (from_in_store && !cache_only) {
    Result<ufs::Entry> e = store->Stat(rt.ufs_path);
    if (e.ok()) {
      Result<index::FileMeta> m = meta_->Record(to, *e);
      if (ff && m.ok()) {
        std::unique_lock<std::shared_mutex> l(ff->mu);
        if (ff->base.file_id != 0) ff->base = meta_->RefOf(*m);
      }
    }
  }
  return Status::OK();
}

Status Writer::SetPathAttrs(const std::string& path, const ufs::Attrs& attrs, std::optional<uint64_t> size) {
  MountTable::Resolved r = mounts_->Resolve(path);
  FilePtr f = OpenStaged(path);
  if (!f && size.has_value()) {
    Result<FilePtr> opened = Open(path, O_WRONLY, {});
    if (!opened.ok()) return opened.status();
    f = *opened;
  }
  if (f) {
    Status s = size.has_value() ? Truncate(f, *size) : Status::OK();
    if (s.ok() && (attrs.mode || attrs.uid != ufs::kNoId || attrs.gid != ufs::kNoId || attrs.mtime_ns))
      s = SetAttrs(f, attrs);
    // No close follows a setattr on a path: commit now if nobody else has it open.
    bool alone;
    {
      std::lock_guard<std::mutex> lock(mu_);
      alone = f->handles == 1;
    }
    if (s.ok() && alone) s = Commit(f);
    Close(f);
    return s;
  }
  FilePtr local;  // a cache-only directory or link
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_path_.find(path);
    if (it != by_path_.end()) local = it->second;
  }
  if (local) {
    std::unique_lock<std::shared_mutex> l(local->mu);
    MergeAttrs(attrs, &local->attrs);
    local->version++;
    Status s = JournalLocked(*local);
    SnapshotLocked(*local);
    return s;
  }
  if (ModeOf(r.mount) == WriteMode::kCacheOnly) return NotInCacheOnly(path);
  if (mounts_->IsSyntheticDir(path)) return Status::OK();  // nothing to keep them in
  Result<ufs::Entry> e = StoreOf(r.mount)->SetAttrs(r.ufs_path, attrs);
  if (!e.ok()) return e.status();
  return meta_->Record(path, *e).status();
}

Status Writer::Symlink(const std::string& path, const std::string& target, const ufs::Attrs& attrs) {
  MountTable::Resolved r = mounts_->Resolve(path);
  if (ModeOf(r.mount) == WriteMode::kCacheOnly) {
    ufs::Attrs a = attrs;
    a.mode = S_IFLNK | 0777;
    return AddLocal(path, r.mount, kLink, a, target);
  }
  STRATA_RETURN_IF_ERROR(StoreOf(r.mount)->Symlink(r.ufs_path, target, attrs));
  Result<ufs::Entry> e = StoreOf(r.mount)->Stat(r.ufs_path);
  if (!e.ok()) return e.status();
  return meta_->Record(path, *e).status();
}

// --- uploads ---

void Writer::Queue(const FilePtr& f, int64_t due_ms) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (f->queued || f->dropped) return;
    f->queued = true;
    queue_.emplace(due_ms, f);
  }
  cv_.notify_all();
}

void Writer::UploadLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (!retired_streams_.empty()) {
      std::vector<std::unique_ptr<ufs::StreamUpload>> retired;
      retired.swap(retired_streams_);
      lock.unlock();
      retired.clear();  // aborts them
      lock.lock();
      continue;
    }
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto it = queue_.begin();
    int64_t now = NowMonoMs();
    if (it->first > now) {
      cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(it->first - now, 1000)));
      continue;
    }
    FilePtr f = it->second;
    queue_.erase(it);
    f->queued = false;
    f->uploading = true;
    lock.unlock();
    Status s = Upload(f);
    int attempts;
    {
      std::shared_lock<std::shared_mutex> l(f->mu);
      attempts = f->attempts;
    }
    lock.lock();
    f->uploading = false;
    if (!s.ok()) {
      last_error_ = s.message();
      // Backoff 0.5 s doubling to a minute; a flush retries at once.
      int64_t delay = std::min<int64_t>(60000, 500LL << std::min(attempts, 7));
      if ((attempts & (attempts - 1)) == 0)
        LOG_WARN("%s (attempt %d, next in %lld ms)", s.message().c_str(), attempts, static_cast<long long>(delay));
      if (!f->queued && !f->dropped) {
        f->queued = true;
        queue_.emplace(NowMonoMs() + delay, f);
      }
    }
    cv_.notify_all();
  }
}

Status Writer::Flush(const std::string& prefix, int64_t timeout_ms, uint64_t* files_flushed) {
  int64_t deadline = NowMonoMs() + timeout_ms;
  std::unique_lock<std::mutex> lock(mu_);
  std::unordered_set<File*> seen;
  for (;;) {
    std::vector<FilePtr> due;
    size_t pending = 0;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (!IsUnder(it->second->path, prefix)) {
        ++it;
        continue;
      }
      pending++;
      seen.insert(it->second.get());
      if (it->first > NowMonoMs()) {
        due.push_back(it->second);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    for (const FilePtr& f : due) queue_.emplace(NowMonoMs(), f);
    for (auto& [p, f] : by_path_)
      if (f->uploading && IsUnder(p, prefix)) {
        pending++;
        seen.insert(f.get());
      }
    if (!due.empty()) cv_.notify_all();
    if (pending == 0) {
      *files_flushed = seen.size();
      return Status::OK();
    }
    if (NowMonoMs() >= deadline || stop_) {
      *files_flushed = 0;
      return Status::Timeout(std::to_string(pending) + " file(s) still waiting for upload" +
                             (last_error_.empty() ? "" : "; last error: " + last_error_));
    }
    cv_.wait_for(lock, std::chrono::milliseconds(200));
  }
}

WriterStats Writer::Stats() {
  WriterStats st;
  std::lock_guard<std::mutex> lock(mu_);
  int64_t now = NowUnixMs();
  std::unordered_set<File*> pending;
  for (auto& [due, f] : queue_) pending.insert(f.get());
  for (auto& [p, f] : by_path_) {
    if (f->uploading) pending.insert(f.get());
    if (ModeOf(f->mount) == WriteMode::kCacheOnly && f->snap.kind == kFile) {
      st.cache_only_files++;
      st.cache_only_bytes += f->snap.size;
    }
  }
  for (File* f : pending) {
    st.pending_files++;
    st.pending_bytes += f->snap.size;
    if (f->snap.failing) st.failing_files++;
    if (f->snap.committed_ms) st.oldest_pending_ms = std::max(st.oldest_pending_ms, now - f->snap.committed_ms);
  }
  st.last_error = st.failing_files ? last_error_ : "";
  st.open_files = by_path_.size();
  st.staged_bytes = staged_bytes_;
  st.staging_limit = opts_.staging_limit;
  st.uploads = uploads_;
  st.uploaded_bytes = uploaded_bytes_;
  st.upload_failures = upload_failures_;
  st.streamed_uploads = streamed_uploads_;
  return st;
}

}  // namespace strata::cache
