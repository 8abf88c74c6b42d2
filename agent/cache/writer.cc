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

struct Writer::File : Uploader::Item {
  std::mutex upload_mu;  // one upload at a time; renames and unlinks wait for it
  std::shared_mutex mu;

  // Guarded by mu.
  size_t mount = 0;
  uint8_t kind = kFile;
  std::string link_target;
  StagedFile staged;  // a file's bytes (seq names a directory's or link's row too)
  ufs::Attrs attrs;
  uint64_t version = 0;          // bumped by every change
  uint64_t durable_version = 0;  // in the store
  uint64_t journaled_version = 0;  // in the journal row (0: no row)
  // The smallest size since the running upload read the file's size: the
  // new object's bytes past it are not this file's.
  uint64_t low_water = 0;
  bool in_store = false;  // the path exists in the store (this file replaces it)
  bool detached = false;  // unlinked or replaced: never uploaded again
  int attempts = 0;       // failed uploads in a row
  // Through mode, a file written from empty: its parts go to the store as it
  // grows (see Writer::AdvanceStreamLocked); null when not (or no longer).
  std::unique_ptr<ufs::StreamUpload> stream;
  bool no_stream = false;      // a change the stream cannot carry came: upload whole
  std::string stream_as;       // guarded by mu: the path the stream uploads to ("" = path)
  bool restamp_mtime = false;  // an explicit mtime came after the stream started

  // Guarded by Writer::mu_.
  std::string path;
  int handles = 0;
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
    : opts_(std::move(opts)),
      mounts_(mounts),
      engine_(engine),
      meta_(meta),
      staging_(opts_.staging_dir, opts_.staging_limit, opts_.full_wait_ms),
      journal_(index, &staging_),
      uploader_(opts_.upload_threads, [this](const Uploader::ItemPtr& item) {
        return Upload(std::static_pointer_cast<File>(item));
      }) {}

Writer::~Writer() { Stop(); }

WriteMode Writer::ModeOf(size_t mount) const {
  return mount < opts_.modes.size() ? opts_.modes[mount] : WriteMode::kThrough;
}

ufs::Ufs* Writer::StoreOf(size_t mount) { return mounts_->at(mount).ufs.get(); }


Status Writer::Start() {
  STRATA_RETURN_IF_ERROR(staging_.Open());
  Result<std::vector<Journal::Recovered>> rows = journal_.Recover([this](const index::JournalEntry& e) {
    return StoreOf(mounts_->Resolve(e.path).mount)->uri() == e.store_uri;
  });
  if (!rows.ok()) return rows.status();
  for (Journal::Recovered& r : *rows) {
    const index::JournalEntry& e = r.row;
    size_t mount = mounts_->Resolve(e.path).mount;
    auto f = std::make_shared<File>();
    f->mount = mount;
    f->kind = e.kind;
    f->link_target = e.link_target;
    f->path = e.path;
    f->attrs = {e.mode, e.uid, e.gid, e.mtime_ns, e.user};
    f->staged.FromRow(e, mount, e.path);
    if (e.kind == kFile) {
      struct stat st;
      if (::fstat(r.fd.get(), &st) != 0) return Status::FromErrno(errno, "stat " + staging_.PathOf(e.seq));
      f->staged.fd = std::move(r.fd);
      f->staged.size = static_cast<uint64_t>(st.st_size);
    }
    f->version = 1;
    f->journaled_version = 1;
    f->in_store = e.upload;  // it may be there already: unlink and rename treat it so
    f->snap.committed_ms = e.committed_ms;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto old = by_path_.find(f->path);
      if (old != by_path_.end()) {  // a later commit of the same path wins
        old->second->dropped = true;
        uploader_.Cancel(old->second.get());
      }
      MapLocked(f);
    }
    {
      std::unique_lock<std::shared_mutex> lock(f->mu);
      SnapshotLocked(*f);
    }
    if (e.upload && ModeOf(mount) != WriteMode::kCacheOnly) uploader_.Queue(f, NowMonoMs());
  }
  if (!rows->empty()) LOG_INFO("journal: %zu staged change(s) recovered; uploading", rows->size());
  uploader_.Start();
  return Status::OK();
}
void Writer::Stop() {
  staging_.Wake();
  uploader_.Stop();
}
// --- staging ---

void Writer::SnapshotLocked(File& f) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!f.dropped) staging_.Resize(f.snap.size, f.staged.size);
  f.snap.size = f.staged.size;
  f.snap.attrs = f.attrs;
  f.snap.kind = f.kind;
  f.snap.link_target = f.link_target;
  f.snap.failing = f.attempts > 0;
}



Status Writer::ReadVersion(const FileRef& base, uint64_t off, size_t len, char* buf) {
  if (base.file_id == 0 || len == 0) {
    std::memset(buf, 0, len);
    return Status::OK();
  }
  std::promise<Status> done;
  engine_->Read(base, off, len, [&](Status s, std::vector<Slice> parts) {
    size_t at = 0;
    if (s.ok()) s = CopySlices(parts, buf, len, &at);
    if (s.ok()) std::memset(buf + at, 0, len - at);
    done.set_value(s);
  });
  return done.get_future().get();
}

Result<size_t> Writer::ReadAt(const FilePtr& f, uint64_t off, size_t len, char* buf, bool clamp) {
  // Staged bytes are read under the shared lock; the base version's (an
  // immutable object version, maybe a network fetch) after it is dropped,
  // so a write never waits behind the store.
  std::vector<StagedFile::Piece> from_base;
  FileRef base;
  {
    std::shared_lock<std::shared_mutex> lock(f->mu);
    if (clamp) {
      if (off >= f->staged.size) return size_t{0};
      len = static_cast<size_t>(std::min<uint64_t>(len, f->staged.size - off));
    }
    for (const StagedFile::Piece& p : f->staged.Plan(off, len, opts_.block_size)) {
      if (p.from_base) {
        from_base.push_back(p);
        continue;
      }
      STRATA_RETURN_IF_ERROR(f->staged.ReadStaged(p.off, p.len, buf + (p.off - off)).With(staging_.PathOf(f->staged.seq)));
    }
    if (!from_base.empty()) base = f->staged.base;
  }
  for (const StagedFile::Piece& p : from_base)
    STRATA_RETURN_IF_ERROR(ReadVersion(base, p.off, p.len, buf + (p.off - off)));
  return len;
}
std::vector<Writer::Prefill> Writer::PrefillFor(const FilePtr& f, uint64_t off, size_t len, bool append) {
  std::vector<Prefill> fills;
  FileRef base;
  uint64_t base_size;
  {
    std::shared_lock<std::shared_mutex> lock(f->mu);
    if (append) off = f->staged.size;
    base = f->staged.base;
    base_size = f->staged.base_size;
    for (uint64_t b : f->staged.NeedsFill(off, off + len, opts_.block_size)) fills.push_back({b, base.file_id, {}});
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
  size_t n = static_cast<size_t>(std::min<uint64_t>(bs, f.staged.base_size - b * bs));
  const std::vector<char>* ready = nullptr;
  for (const Prefill& p : fills)
    if (p.block == b && p.file_id == f.staged.base.file_id && p.bytes.size() >= n) ready = &p.bytes;
  std::vector<char> buf;
  if (ready == nullptr) {
    // The file changed between the read and the lock (rare): read now.
    buf.resize(n);
    STRATA_RETURN_IF_ERROR(ReadVersion(f.staged.base, b * bs, n, buf.data()).With("read the store's copy to change it"));
    ready = &buf;
  }
  return f.staged.Fill(b, ready->data(), n, bs).With(staging_.PathOf(f.staged.seq));
}

Result<Writer::FilePtr> Writer::NewFile(const std::string& path, size_t mount, uint8_t kind) {
  Result<uint64_t> seq = journal_.NextSeq();
  if (!seq.ok()) return seq.status();
  auto f = std::make_shared<File>();
  f->mount = mount;
  f->staged.seq = *seq;
  f->kind = kind;
  f->path = path;
  if (kind == kFile) {
    Result<Fd> fd = staging_.Create(*seq);
    if (!fd.ok()) return fd.status();
    f->staged.fd = std::move(*fd);
  }
  return f;
}
Result<Writer::FilePtr> Writer::Open(const std::string& path, int flags, const ufs::Attrs& create_attrs) {
  return OpenImpl(path, flags, create_attrs, false);
}

Result<Writer::FilePtr> Writer::OpenNew(const std::string& path, const ufs::Attrs& create_attrs) {
  return OpenImpl(path, O_CREAT | O_EXCL | O_WRONLY, create_attrs, true);
}

Result<Writer::FilePtr> Writer::OpenImpl(const std::string& path, int flags, const ufs::Attrs& create_attrs,
                                         bool known_new) {
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
  Result<index::FileMeta> m = known_new ? Result<index::FileMeta>(Status::NotFound("new")) : meta_->Stat(path);
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
      // Edited in place, the file keeps its content type and user metadata.
      f->attrs = {existing->mode, existing->uid, existing->gid, existing->mtime_ns, existing->user};
      if (!truncate) {
        f->staged.base = meta_->RefOf(*existing);
        f->staged.base_size = f->staged.size = existing->size;
      }
    } else {
      f->attrs = create_attrs;
      if (f->attrs.mtime_ns == 0) f->attrs.mtime_ns = NowNs();
    }
    // A new or truncated file is a change even if nothing is written.
    f->version = (!existing.has_value() || truncate) ? 1 : 0;
    if (truncate) f->attrs.mtime_ns = NowNs();
    if (::ftruncate(f->staged.fd.get(), static_cast<off_t>(f->staged.size)) != 0)
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
  return ReadAt(f, off, len, buf, /*clamp=*/true);
}
Status Writer::Write(const FilePtr& f, uint64_t off, const char* data, size_t len, bool append, uint64_t* at) {
  // The stored bytes of blocks this write changes in part are read first,
  // without the file's exclusive lock: readers and the FUSE worker do not
  // wait on the store while others hold the file.
  std::vector<Prefill> fills = PrefillFor(f, off, len, append);
  std::unique_lock<std::shared_mutex> lock(f->mu);
  StagedFile& st = f->staged;
  if (append) off = st.size;
  *at = off;
  if (len == 0) return Status::OK();
  uint64_t end = off + len;
  STRATA_RETURN_IF_ERROR(staging_.Reserve(end > st.size ? end - st.size : 0));
  for (uint64_t b : st.NeedsFill(off, end, opts_.block_size)) STRATA_RETURN_IF_ERROR(FillBlockLocked(*f, b, fills));
  STRATA_RETURN_IF_ERROR(st.Write(off, data, len, opts_.block_size).With(staging_.PathOf(st.seq)));
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
    if (f.no_stream || f.detached || f.kind != kFile || f.staged.base_size != 0 || ModeOf(f.mount) != WriteMode::kThrough)
      return;
    Fd dup(::dup(f.staged.fd.get()));
    if (!dup.valid()) return;
    auto fd = std::make_shared<Fd>(std::move(dup));
    ufs::ReadAt src = [fd](uint64_t off, size_t len, char* buf) {
      size_t got = 0;
      Status s = PreadFull(fd->get(), buf, len, off, &got);
      if (s.ok() && got != len) s = Status::IOError("staging file shorter than its upload");
      return s;
    };
    std::string path = f.stream_as;
    if (path.empty()) {
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
  f.stream->Advance(f.staged.size);
}

void Writer::RetireStreamLocked(File& f) {
  f.no_stream = true;
  // Aborting waits for the parts in flight: an uploader does it, not the
  // caller (a FUSE worker holding the file's lock).
  uploader_.Dispose(std::move(f.stream));
}
Status Writer::Truncate(const FilePtr& f, uint64_t size) {
  std::unique_lock<std::shared_mutex> lock(f->mu);
  if (f->kind != kFile) return Status::InvalidArgument("not a regular file");
  STRATA_RETURN_IF_ERROR(staging_.Reserve(size > f->staged.size ? size - f->staged.size : 0));
  STRATA_RETURN_IF_ERROR(f->staged.Truncate(size).With(staging_.PathOf(f->staged.seq)));
  f->low_water = std::min(f->low_water, size);
  if (f->stream && size < f->stream->sent_end()) RetireStreamLocked(*f);
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
    if (m.ok() && f->staged.base.file_id != 0) f->staged.base = meta_->RefOf(*m);
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
  if (f.kind == kFile) f.staged.ToRow(&e);
  e.seq = f.staged.seq;
  e.store_uri = StoreOf(f.mount)->uri();
  e.kind = f.kind;
  e.upload = ModeOf(f.mount) != WriteMode::kCacheOnly;
  e.size = f.staged.size;
  e.mode = f.attrs.mode;
  e.uid = f.attrs.uid;
  e.gid = f.attrs.gid;
  e.mtime_ns = f.attrs.mtime_ns;
  e.user = f.attrs.user;
  e.link_target = f.link_target;
  e.committed_ms = NowUnixMs();
  {
    std::lock_guard<std::mutex> lock(mu_);
    e.path = f.path;
    if (f.snap.committed_ms != 0) e.committed_ms = f.snap.committed_ms;
    f.snap.committed_ms = e.committed_ms;
  }
  STRATA_RETURN_IF_ERROR(journal_.Put(e, f.kind == kFile ? &f.staged : nullptr));
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
      if (mode == WriteMode::kAsync) uploader_.Queue(f, NowMonoMs());
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
  uploader_.Queue(f, NowMonoMs() + 1000);
  return s;
}

Status Writer::Upload(const FilePtr& f) {
  // The file stays writable while it uploads: parts are read under the
  // file's shared lock one at a time. A write meanwhile makes the object a
  // mix of two versions for a moment; the file then is not durable at its
  // new version and uploads again at its next commit.
  std::lock_guard<std::mutex> serial(f->upload_mu);
  uint64_t v, size;
  ufs::Attrs attrs;
  std::string path;
  std::unique_ptr<ufs::StreamUpload> stream;
  bool restamp;
  ufs::CopyBase base;
  {
    std::unique_lock<std::shared_mutex> lock(f->mu);
    if (f->detached || f->version == f->durable_version || f->kind != kFile) return Status::OK();
    v = f->version;
    size = f->low_water = f->staged.size;
    attrs = f->attrs;
    stream = std::move(f->stream);
    f->no_stream = true;  // a write from now on starts no second stream
    restamp = f->restamp_mtime;
    if (f->staged.base.file_id != 0 && f->staged.base_size > 0) {
      // Parts of the new object no block of which was written here are the
      // stored version's bytes: the store may copy them without us sending them.
      base.path = f->staged.base.ufs_path;
      base.etag = f->staged.base.etag;
      base.unchanged = [&f, this, id = f->staged.base.file_id](uint64_t off, uint64_t len) {
        std::shared_lock<std::shared_mutex> l(f->mu);
        return f->staged.base.file_id == id && f->staged.Unchanged(off, len, opts_.block_size);
      };
    }
    std::lock_guard<std::mutex> maps(mu_);
    path = f->path;
  }
  ufs::ReadAt src = [&](uint64_t off, size_t len, char* buf) { return ReadAt(f, off, len, buf, false).status(); };
  const std::string ufs_path = mounts_->Resolve(path).ufs_path;
  ufs::Ufs* store = StoreOf(f->mount);
  std::optional<Result<ufs::Entry>> streamed;
  if (stream && stream->sent_end() > 0) {
    streamed = stream->Finish(size, attrs);
    if (streamed->ok() && restamp) {
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
    // The new object holds the blocks not written here up to the smallest
    // size the file had meanwhile: they are read from it from now on.
    f->staged.base = meta_->RefOf(*m);
    f->staged.base_size = std::min(size, f->low_water);
    if (f->version == v && size <= kAdoptMax) AdoptLocked(*f);
  } else {
    LOG_WARN("index: cannot record the upload of /%s: %s", path.c_str(), m.status().message().c_str());
  }
  if (f->version == v && f->journaled_version != 0) {
    journal_.Delete(f->staged.seq);
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
  if (again) uploader_.Queue(f, NowMonoMs());
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
  const StagedFile& st = f.staged;
  for (uint64_t b = 0; b * bs < st.size; b++) {
    if (!st.Holds(b)) continue;  // not written here: not in hand
    size_t len = static_cast<size_t>(std::min(bs, st.size - b * bs));
    std::shared_ptr<Buffer> buf = Buffer::Make(len);
    size_t got = 0;
    if (!PreadFull(st.fd.get(), buf->data(), len, b * bs, &got).ok() || got != len) return;
    engine_->Adopt(st.base, b, std::move(buf));
  }
}
void Writer::DetachLocked(File& f) {
  f.detached = true;
  RetireStreamLocked(f);
  if (f.journaled_version != 0) {
    journal_.Delete(f.staged.seq);
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
    staging_.Resize(f.snap.size, 0);
  }
  uploader_.Cancel(&f);
  f.detached = true;
  RetireStreamLocked(f);
  if (f.kind == kFile) staging_.Remove(f.staged.seq);
  f.staged.fd.Reset();
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

void Writer::StreamAs(const FilePtr& f, const std::string& final_path) {
  std::unique_lock<std::shared_mutex> lock(f->mu);
  if (f->stream || f->staged.size > 0) return;  // too late: the stream (if any) has its name
  if (mounts_->Resolve(final_path).mount != f->mount) return;
  f->stream_as = final_path;
}

uint64_t Writer::UnchangedBase(const FilePtr& f) {
  std::shared_lock<std::shared_mutex> lock(f->mu);
  const StagedFile& st = f->staged;
  bool unchanged = f->version == 0 && f->kind == kFile && st.base_size == st.size && st.size == st.base.size;
  return unchanged ? st.base.file_id : 0;
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
  m.user = f->snap.attrs.user;
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
  if (src->is_dir && dst.ok() && !cache_only && !store->rename_is_atomic()) {
    // A directory replaces only an empty one. A file system's rename(2)
    // says so itself; an object store's copy-then-delete would merge the two.
    Result<std::vector<ufs::Entry>> entries = store->List(rt.ufs_path);
    if (!entries.ok()) return entries.status();
    if (!entries->empty()) return Status::NotEmpty("/" + to + " is not empty");
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
    // Its parts went under the old name, unless they were sent as `to`.
    if (ff->stream_as != to) RetireStreamLocked(*ff);
    ff->stream_as.clear();
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
        if (ff->staged.base.file_id != 0) ff->staged.base = meta_->RefOf(*m);
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



Status Writer::Flush(const std::string& prefix, int64_t timeout_ms, uint64_t* files_flushed) {
  auto below = [&](const Uploader::ItemPtr& item) {
    std::lock_guard<std::mutex> lock(mu_);
    return IsUnder(static_cast<File&>(*item).path, prefix);
  };
  return uploader_.Flush(below, timeout_ms, files_flushed);
}
std::pair<uint64_t, uint64_t> Writer::StagingUse() { return {staging_.used(), staging_.limit()}; }

WriterStats Writer::Stats() {
  WriterStats st;
  std::vector<Uploader::ItemPtr> pending = uploader_.Pending();
  std::string last_error = uploader_.last_error();
  std::lock_guard<std::mutex> lock(mu_);
  int64_t now = NowUnixMs();
  for (auto& [p, f] : by_path_) {
    if (ModeOf(f->mount) == WriteMode::kCacheOnly && f->snap.kind == kFile) {
      st.cache_only_files++;
      st.cache_only_bytes += f->snap.size;
    }
  }
  for (const Uploader::ItemPtr& item : pending) {
    const File& f = static_cast<const File&>(*item);
    st.pending_files++;
    st.pending_bytes += f.snap.size;
    if (f.snap.failing) st.failing_files++;
    if (f.snap.committed_ms) st.oldest_pending_ms = std::max(st.oldest_pending_ms, now - f.snap.committed_ms);
  }
  st.last_error = st.failing_files ? last_error : "";
  st.open_files = by_path_.size();
  st.staged_bytes = staging_.used();
  st.staging_limit = staging_.limit();
  st.uploads = uploads_;
  st.uploaded_bytes = uploaded_bytes_;
  st.upload_failures = upload_failures_;
  st.streamed_uploads = streamed_uploads_;
  return st;
}
}  // namespace strata::cache
