#include "agent/index/index.h"
#include "agent/base/paths.h"

#include <lmdb.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "agent/index/codec.h"

namespace strata::index {
namespace {

constexpr uint32_t kSchemaVersion = 2;  // 2: POSIX attributes, journal

// The one translation of MDB_* codes.
Status FromMdb(int rc, const std::string& what) {
  if (rc == 0) return Status::OK();
  std::string msg = "index: " + what + ": " + mdb_strerror(rc);
  if (rc == ENOSPC) return Status::NoSpace(msg);
  if (rc == MDB_NOTFOUND) return Status::NotFound(msg);
  if (rc == MDB_CORRUPTED || rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH) return Status::Corrupt(msg);
  if (rc == EACCES || rc == EROFS) return Status::PermissionDenied(msg);
  return Status::IOError(msg);
}

std::string U64Key(uint64_t v) {
  Writer w;
  w.U64(v);
  return std::move(w.data());
}
std::string BlockKeyBytes(const BlockKey& k) {
  Writer w;
  w.U64(k.file_id);
  w.U64(k.index);
  return std::move(w.data());
}

void EncodeAttrs(Writer& w, const PosixAttrs& a) {
  w.U32(a.mode);
  w.U32(a.uid);
  w.U32(a.gid);
  w.U8(a.attrs_known);
  w.Str(a.link_target);
}
void DecodeAttrs(Reader& r, PosixAttrs* a) {
  a->mode = r.U32();
  a->uid = r.U32();
  a->gid = r.U32();
  a->attrs_known = r.U8();
  a->link_target = r.Str();
}

// User metadata is appended to a row (rows written before it end earlier).
void EncodeUser(Writer& w, const ufs::UserMeta& u) {
  w.Str(u.content_type);
  w.U32(static_cast<uint32_t>(u.pairs.size()));
  for (const auto& [k, v] : u.pairs) {
    w.Str(k);
    w.Str(v);
  }
}
void DecodeUser(Reader& r, ufs::UserMeta* u) {
  u->content_type = r.Str();
  uint32_t n = r.U32();
  for (uint32_t i = 0; i < n && r.ok(); i++) {
    std::string k = r.Str();
    u->pairs.emplace_back(std::move(k), r.Str());
  }
}

std::string EncodeMeta(const FileMeta& m) {
  Writer w;
  EncodeAttrs(w, m);
  w.Str(m.path);
  w.U8(m.is_dir);
  w.U64(m.size);
  w.I64(m.mtime_ns);
  w.Str(m.etag);
  w.U64(m.file_id);
  w.I64(m.validated_ms);
  if (!m.user.empty()) EncodeUser(w, m.user);
  return std::move(w.data());
}
bool DecodeMeta(std::string_view v, FileMeta* m) {
  Reader r(v);
  DecodeAttrs(r, m);
  m->path = r.Str();
  m->is_dir = r.U8();
  m->size = r.U64();
  m->mtime_ns = r.I64();
  m->etag = r.Str();
  m->file_id = r.U64();
  m->validated_ms = r.I64();
  if (r.ok() && !r.done()) DecodeUser(r, &m->user);
  return r.ok();
}

std::string EncodeDir(const DirListing& d) {
  Writer w;
  w.Str(d.path);
  w.I64(d.fetched_ms);
  w.U32(static_cast<uint32_t>(d.entries.size()));
  for (const DirEntry& e : d.entries) {
    EncodeAttrs(w, e);
    w.Str(e.name);
    w.U8(e.is_dir);
    w.U64(e.size);
    w.I64(e.mtime_ns);
    w.Str(e.etag);
  }
  return std::move(w.data());
}
bool DecodeDir(std::string_view v, DirListing* d) {
  Reader r(v);
  d->path = r.Str();
  d->fetched_ms = r.I64();
  uint32_t n = r.U32();
  d->entries.clear();
  for (uint32_t i = 0; i < n && r.ok(); i++) {
    DirEntry e;
    DecodeAttrs(r, &e);
    e.name = r.Str();
    e.is_dir = r.U8();
    e.size = r.U64();
    e.mtime_ns = r.I64();
    e.etag = r.Str();
    d->entries.push_back(std::move(e));
  }
  return r.ok();
}

std::string EncodeBlock(const BlockRecord& b) {
  Writer w;
  w.U32(b.length);
  w.I64(b.atime_ms);
  w.U32(static_cast<uint32_t>(b.checksums.size()));
  for (uint64_t c : b.checksums) w.U64(c);
  return std::move(w.data());
}
bool DecodeBlock(std::string_view v, BlockRecord* b) {
  Reader r(v);
  b->length = r.U32();
  b->atime_ms = r.I64();
  uint32_t n = r.U32();
  if (n > 4096) return false;
  b->checksums.resize(n);
  for (uint32_t i = 0; i < n; i++) b->checksums[i] = r.U64();
  return r.ok();
}

std::string EncodeJournal(const JournalEntry& e) {
  Writer w;
  w.U64(e.seq);
  w.Str(e.path);
  w.Str(e.store_uri);
  w.U8(e.kind);
  w.U8(e.upload);
  w.U64(e.size);
  w.U32(e.mode);
  w.U32(e.uid);
  w.U32(e.gid);
  w.I64(e.mtime_ns);
  w.I64(e.committed_ms);
  w.Str(e.link_target);
  // Optional tails, in order: the base version (file id 0 = none), then
  // user metadata.
  if (e.base_file_id != 0 || !e.user.empty()) {
    w.U64(e.base_file_id);
    w.Str(e.base_ufs_path);
    w.Str(e.base_etag);
    w.U64(e.base_object_size);
    w.U64(e.base_size);
    w.Str(e.present);
  }
  if (!e.user.empty()) EncodeUser(w, e.user);
  return std::move(w.data());
}
bool DecodeJournal(std::string_view v, JournalEntry* e) {
  Reader r(v);
  e->seq = r.U64();
  e->path = r.Str();
  e->store_uri = r.Str();
  e->kind = r.U8();
  e->upload = r.U8();
  e->size = r.U64();
  e->mode = r.U32();
  e->uid = r.U32();
  e->gid = r.U32();
  e->mtime_ns = r.I64();
  e->committed_ms = r.I64();
  e->link_target = r.Str();
  if (r.ok() && !r.done()) {
    e->base_file_id = r.U64();
    e->base_ufs_path = r.Str();
    e->base_etag = r.Str();
    e->base_object_size = r.U64();
    e->base_size = r.U64();
    e->present = r.Str();
  }
  if (r.ok() && !r.done()) DecodeUser(r, &e->user);
  return r.ok();
}

MDB_val Val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view View(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

}  // namespace

// A transaction that aborts unless committed; the first error sticks.
class Index::Txn {
 public:
  Txn(MDB_env* env, bool write) : write_(write) {
    rc_ = mdb_txn_begin(env, nullptr, write ? 0 : MDB_RDONLY, &txn_);
    if (rc_ != 0) txn_ = nullptr;
  }
  ~Txn() {
    if (txn_) mdb_txn_abort(txn_);
  }
  int rc() const { return rc_; }
  MDB_txn* get() { return txn_; }

  // Returns false when absent (or after an error; see rc()).
  bool Get(MDB_dbi db, std::string_view key, std::string_view* value) {
    if (rc_ != 0) return false;
    MDB_val k = Val(key), v;
    int rc = mdb_get(txn_, db, &k, &v);
    if (rc == MDB_NOTFOUND) return false;
    if (rc != 0) {
      rc_ = rc;
      return false;
    }
    *value = View(v);
    return true;
  }
  void Put(MDB_dbi db, std::string_view key, std::string_view value) {
    if (rc_ != 0) return;
    MDB_val k = Val(key), v = Val(value);
    rc_ = mdb_put(txn_, db, &k, &v, 0);
  }
  void Del(MDB_dbi db, std::string_view key) {
    if (rc_ != 0) return;
    MDB_val k = Val(key);
    int rc = mdb_del(txn_, db, &k, nullptr);
    if (rc != MDB_NOTFOUND) rc_ = rc;
  }
  int Commit() {
    if (rc_ == 0) rc_ = mdb_txn_commit(txn_);
    else mdb_txn_abort(txn_);
    txn_ = nullptr;
    return rc_;
  }
  void Fail(int rc) {
    if (rc_ == 0) rc_ = rc;
  }

 private:
  MDB_txn* txn_ = nullptr;
  int rc_ = 0;
  bool write_;
};

Result<std::unique_ptr<Index>> Index::Open(const std::string& dir, uint64_t block_size,
                                           size_t map_size) {
  std::unique_ptr<Index> idx(new Index());
  idx->dir_ = dir;
  int rc = mdb_env_create(&idx->env_);
  if (rc != 0) return FromMdb(rc, "create environment");
  mdb_env_set_maxdbs(idx->env_, 8);
  mdb_env_set_maxreaders(idx->env_, 254);
  mdb_env_set_mapsize(idx->env_, map_size);
  rc = mdb_env_open(idx->env_, dir.c_str(), MDB_NOTLS | MDB_NOMETASYNC, 0644);
  if (rc != 0) {
    Status st = FromMdb(rc, "open " + dir);
    if (st.code() == Status::Code::kCorrupt)
      return Status::Corrupt(st.message() + " (the cache index is damaged: remove " + dir +
                             " to start with an empty cache; nothing in the stores is affected)");
    return st;
  }
  // Slots left by a process killed mid-read would pin old pages forever.
  int dead = 0;
  mdb_reader_check(idx->env_, &dead);
  if (dead > 0) LOG_INFO("index: cleared %d stale reader slot(s)", dead);
  // A map grown by an earlier run is larger than our default: adopt it.
  MDB_envinfo info;
  mdb_env_info(idx->env_, &info);

  Status s = idx->Write([&](Txn& t) -> Status {
    const char* names[] = {"info", "meta", "dirs", "blocks", "files", "journal"};
    MDB_dbi* dbis[] = {&idx->info_, &idx->meta_, &idx->dirs_, &idx->blocks_, &idx->files_, &idx->journal_};
    for (int i = 0; i < 6; i++) {
      int r = mdb_dbi_open(t.get(), names[i], MDB_CREATE, dbis[i]);
      if (r != 0) return FromMdb(r, std::string("open table ") + names[i]);
    }
    std::string_view v;
    if (t.Get(idx->info_, "schema", &v)) {
      Reader r(v);
      uint32_t version = r.U32();
      if (version > kSchemaVersion)
        return Status::Corrupt("index: schema version " + std::to_string(version) + " in " + dir +
                               " is newer than this agent's (" + std::to_string(kSchemaVersion) +
                               "): run the newer agent, or remove the cache directory to start fresh");
      if (version < kSchemaVersion) {
        // Version 1 held only cached reads (no journal): drop them and start over.
        LOG_WARN("index: upgrading the schema from version %u to %u: dropping cached metadata and blocks",
                 version, kSchemaVersion);
        for (MDB_dbi db : {idx->meta_, idx->dirs_, idx->blocks_, idx->files_}) t.Fail(mdb_drop(t.get(), db, 0));
        Writer w;
        w.U32(kSchemaVersion);
        t.Put(idx->info_, "schema", w.data());
      }
    } else {
      Writer w;
      w.U32(kSchemaVersion);
      t.Put(idx->info_, "schema", w.data());
    }
    uint64_t stored_bs = 0;
    if (t.Get(idx->info_, "block_size", &v)) stored_bs = Reader(v).U64();
    if (stored_bs != block_size) {
      if (stored_bs != 0)
        LOG_WARN("index: block size changed (%llu -> %llu): dropping cached blocks",
                 static_cast<unsigned long long>(stored_bs), static_cast<unsigned long long>(block_size));
      t.Fail(mdb_drop(t.get(), idx->blocks_, 0));
      Writer w;
      w.U64(block_size);
      t.Put(idx->info_, "block_size", w.data());
    }
    return Status::OK();
  });
  if (!s.ok()) return s;
  return idx;
}

Index::~Index() {
  if (env_) mdb_env_close(env_);
}

Status Index::Grow() {
  std::unique_lock<std::shared_mutex> lock(gate_);
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  size_t next = info.me_mapsize * 2;
  int rc = mdb_env_set_mapsize(env_, next);
  if (rc != 0) return FromMdb(rc, "grow map");
  LOG_INFO("index: map grown to %zu MiB", next >> 20);
  return Status::OK();
}

Status Index::Write(const std::function<Status(Txn&)>& fn) {
  for (int attempt = 0; attempt < 8; attempt++) {
    int rc;
    Status s;
    {
      std::shared_lock<std::shared_mutex> lock(gate_);
      Txn t(env_, true);
      if (t.rc() != 0) return FromMdb(t.rc(), "begin write");
      s = fn(t);
      if (!s.ok()) return s;
      rc = t.Commit();
    }
    if (rc == MDB_MAP_FULL) {
      STRATA_RETURN_IF_ERROR(Grow());
      continue;
    }
    return FromMdb(rc, "commit");
  }
  return Status::NoSpace("index: map full after growing it 8 times");
}

Status Index::Read(const std::function<Status(Txn&)>& fn) {
  std::shared_lock<std::shared_mutex> lock(gate_);
  Txn t(env_, false);
  if (t.rc() != 0) return FromMdb(t.rc(), "begin read");
  Status s = fn(t);
  if (s.ok() && t.rc() != 0) return FromMdb(t.rc(), "read");
  return s;
}

Result<std::optional<FileMeta>> Index::GetMeta(const std::string& path) {
  std::optional<FileMeta> out;
  Status s = Read([&](Txn& t) -> Status {
    std::string_view v;
    if (!t.Get(meta_, KeyHash128(path), &v)) return Status::OK();
    FileMeta m;
    if (!DecodeMeta(v, &m)) return Status::Corrupt("index: bad meta row for " + path);
    if (m.path == path) out = std::move(m);  // else a hash collision: treat as absent
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

namespace {
// The bytes are the same (an S3 listing and a HEAD may disagree on the time:
// Last-Modified vs x-amz-meta-mtime; the ETag of a file:// store includes it).
bool SameVersion(const FileMeta& a, const FileMeta& b) {
  return a.is_dir == b.is_dir && a.etag == b.etag && a.size == b.size;
}
}  // namespace

// Inside a write txn: stores meta, keeping or assigning the file_id.
// `from_listing`: the row comes from a listing, which carries no user
// metadata; the same version keeps what a Stat learnt.
static void PutMetaIn(Index::Txn& t, MDB_dbi meta_db, MDB_dbi files_db, MDB_dbi info_db,
                      FileMeta* meta, uint64_t* retired, bool from_listing = false) {
  *retired = 0;
  std::string key = KeyHash128(meta->path);
  std::string_view v;
  FileMeta old;
  bool have_old = t.Get(meta_db, key, &v) && DecodeMeta(v, &old) && old.path == meta->path;
  if (have_old && SameVersion(old, *meta)) {
    meta->file_id = old.file_id;
    if (from_listing) meta->user = old.user;
    if (!meta->attrs_known && old.attrs_known) {  // a listing does not undo what a Stat learnt
      static_cast<PosixAttrs&>(*meta) = old;
      meta->mtime_ns = old.mtime_ns;
    }
  } else {
    if (have_old && old.file_id != 0) {
      *retired = old.file_id;
      t.Del(files_db, U64Key(old.file_id));
    }
    meta->file_id = 0;
    if (!meta->is_dir) {
      uint64_t next = 1;
      if (t.Get(info_db, "next_file_id", &v)) next = Reader(v).U64();
      meta->file_id = next;
      Writer w;
      w.U64(next + 1);
      t.Put(info_db, "next_file_id", w.data());
      t.Put(files_db, U64Key(next), meta->path);
    }
  }
  t.Put(meta_db, key, EncodeMeta(*meta));
}

Result<FileMeta> Index::PutMeta(FileMeta meta, uint64_t* retired_id) {
  Status s = Write([&](Txn& t) -> Status {
    PutMetaIn(t, meta_, files_, info_, &meta, retired_id);
    return Status::OK();
  });
  if (!s.ok()) return s;
  return meta;
}

Status Index::DeleteMeta(const std::string& path, uint64_t* retired_id) {
  *retired_id = 0;
  return Write([&](Txn& t) -> Status {
    std::string key = KeyHash128(path);
    std::string_view v;
    FileMeta old;
    if (t.Get(meta_, key, &v) && DecodeMeta(v, &old) && old.path == path) {
      *retired_id = old.file_id;
      if (old.file_id) t.Del(files_, U64Key(old.file_id));
      t.Del(meta_, key);
    }
    // A deleted directory's listing goes too.
    t.Del(dirs_, key);
    return Status::OK();
  });
}

Result<std::optional<DirListing>> Index::GetDir(const std::string& path) {
  std::optional<DirListing> out;
  Status s = Read([&](Txn& t) -> Status {
    std::string_view v;
    if (!t.Get(dirs_, KeyHash128(path), &v)) return Status::OK();
    DirListing d;
    if (!DecodeDir(v, &d)) return Status::Corrupt("index: bad listing row for " + path);
    if (d.path == path) out = std::move(d);
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

Status Index::PutDir(const DirListing& listing, std::vector<uint64_t>* retired) {
  return Write([&](Txn& t) -> Status {
    std::string key = KeyHash128(listing.path);
    // Children that disappeared since the last listing lose their rows.
    std::string_view v;
    DirListing old;
    if (t.Get(dirs_, key, &v) && DecodeDir(v, &old) && old.path == listing.path) {
      std::unordered_set<std::string> now;
      for (const DirEntry& e : listing.entries) now.insert(e.name);
      for (const DirEntry& e : old.entries) {
        if (now.count(e.name)) continue;
        std::string child = JoinPath(listing.path, e.name);
        std::string ck = KeyHash128(child);
        FileMeta m;
        if (t.Get(meta_, ck, &v) && DecodeMeta(v, &m) && m.path == child) {
          if (m.file_id) {
            retired->push_back(m.file_id);
            t.Del(files_, U64Key(m.file_id));
          }
          t.Del(meta_, ck);
        }
      }
    }
    for (const DirEntry& e : listing.entries) {
      FileMeta m;
      m.path = JoinPath(listing.path, e.name);
      m.is_dir = e.is_dir;
      m.size = e.size;
      m.mtime_ns = e.mtime_ns;
      m.etag = e.etag;
      static_cast<PosixAttrs&>(m) = e;
      m.validated_ms = listing.fetched_ms;
      uint64_t r = 0;
      PutMetaIn(t, meta_, files_, info_, &m, &r, /*from_listing=*/true);
      if (r) retired->push_back(r);
    }
    t.Put(dirs_, key, EncodeDir(listing));
    return Status::OK();
  });
}

Status Index::PatchDir(const std::string& dir, const std::string& name, const DirEntry* entry) {
  return Write([&](Txn& t) -> Status {
    std::string key = KeyHash128(dir);
    std::string_view v;
    DirListing d;
    if (!t.Get(dirs_, key, &v) || !DecodeDir(v, &d) || d.path != dir) return Status::OK();
    auto it = std::find_if(d.entries.begin(), d.entries.end(), [&](const DirEntry& e) { return e.name == name; });
    if (entry == nullptr) {
      if (it == d.entries.end()) return Status::OK();
      d.entries.erase(it);
    } else if (it != d.entries.end()) {
      *it = *entry;
    } else {
      d.entries.push_back(*entry);
    }
    t.Put(dirs_, key, EncodeDir(d));
    return Status::OK();
  });
}

Status Index::DeleteTree(const std::string& path, std::vector<uint64_t>* retired) {
  return Write([&](Txn& t) -> Status {
    std::vector<std::string> todo = {path};
    while (!todo.empty()) {
      std::string p = std::move(todo.back());
      todo.pop_back();
      std::string key = KeyHash128(p);
      std::string_view v;
      FileMeta m;
      if (t.Get(meta_, key, &v) && DecodeMeta(v, &m) && m.path == p) {
        if (m.file_id) {
          retired->push_back(m.file_id);
          t.Del(files_, U64Key(m.file_id));
        }
        t.Del(meta_, key);
      }
      DirListing d;
      if (t.Get(dirs_, key, &v) && DecodeDir(v, &d) && d.path == p) {
        for (const DirEntry& e : d.entries) todo.push_back(JoinPath(p, e.name));
        t.Del(dirs_, key);
      }
    }
    return Status::OK();
  });
}

Status Index::PutJournal(const JournalEntry& e) {
  STRATA_RETURN_IF_ERROR(Write([&](Txn& t) -> Status {
    t.Put(journal_, U64Key(e.seq), EncodeJournal(e));
    return Status::OK();
  }));
  // MDB_NOMETASYNC leaves the last commit's meta page to the OS: force it,
  // the writer was told its data is safe.
  std::shared_lock<std::shared_mutex> lock(gate_);
  return FromMdb(mdb_env_sync(env_, 1), "sync journal");
}

Status Index::DeleteJournal(uint64_t seq) {
  return Write([&](Txn& t) -> Status {
    t.Del(journal_, U64Key(seq));
    return Status::OK();
  });
}

Status Index::LoadJournal(std::vector<JournalEntry>* out) {
  return Read([&](Txn& t) -> Status {
    MDB_cursor* cur = nullptr;
    int rc = mdb_cursor_open(t.get(), journal_, &cur);
    if (rc != 0) return FromMdb(rc, "open cursor");
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      JournalEntry e;
      if (!DecodeJournal(View(v), &e)) {
        mdb_cursor_close(cur);
        return Status::Corrupt("index: bad journal row");
      }
      out->push_back(std::move(e));
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) return FromMdb(rc, "scan journal");
    return Status::OK();
  });
}

Result<uint64_t> Index::ReserveJournalSeqs(uint64_t count) {
  uint64_t seq = 0;
  Status s = Write([&](Txn& t) -> Status {
    std::string_view v;
    seq = 1;
    if (t.Get(info_, "next_journal_seq", &v)) seq = Reader(v).U64();
    Writer w;
    w.U64(seq + count);
    t.Put(info_, "next_journal_seq", w.data());
    return Status::OK();
  });
  if (!s.ok()) return s;
  return seq;
}

Result<std::optional<std::string>> Index::GetSetting(const std::string& key) {
  std::optional<std::string> out;
  Status s = Read([&](Txn& t) -> Status {
    std::string_view v;
    if (t.Get(info_, "setting:" + key, &v)) out = std::string(v);
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

Status Index::PutSetting(const std::string& key, const std::string& value) {
  return Write([&](Txn& t) -> Status {
    t.Put(info_, "setting:" + key, value);
    return Status::OK();
  });
}

Status Index::ApplyBlockOps(const std::vector<BlockOp>& ops) {
  if (ops.empty()) return Status::OK();
  return Write([&](Txn& t) -> Status {
    for (const BlockOp& op : ops) {
      if (op.erase) t.Del(blocks_, BlockKeyBytes(op.key));
      else t.Put(blocks_, BlockKeyBytes(op.key), EncodeBlock(op.record));
    }
    return Status::OK();
  });
}

Status Index::LoadBlocks(const std::function<void(const BlockKey&, const BlockRecord&)>& fn) {
  std::vector<BlockKey> dead;
  Status s = Read([&](Txn& t) -> Status {
    MDB_cursor* cur = nullptr;
    int rc = mdb_cursor_open(t.get(), blocks_, &cur);
    if (rc != 0) return FromMdb(rc, "open cursor");
    MDB_val k, v;
    uint64_t last_id = 0;
    bool last_live = false;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      Reader kr(View(k));
      BlockKey key{kr.U64(), kr.U64()};
      if (key.file_id != last_id) {
        std::string_view pv;
        last_id = key.file_id;
        last_live = t.Get(files_, U64Key(key.file_id), &pv);
      }
      BlockRecord rec;
      if (!kr.ok() || !last_live || !DecodeBlock(View(v), &rec)) {
        dead.push_back(key);
        continue;
      }
      fn(key, rec);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) return FromMdb(rc, "scan blocks");
    return Status::OK();
  });
  if (!s.ok()) return s;
  if (!dead.empty()) {
    LOG_INFO("index: dropping %zu block row(s) of stale file versions", dead.size());
    std::vector<BlockOp> ops;
    for (const BlockKey& k : dead) ops.push_back({k, true, {}});
    return ApplyBlockOps(ops);
  }
  return Status::OK();
}

Result<std::optional<std::string>> Index::PathOf(uint64_t file_id) {
  std::optional<std::string> out;
  Status s = Read([&](Txn& t) -> Status {
    std::string_view v;
    if (t.Get(files_, U64Key(file_id), &v)) out = std::string(v);
    return Status::OK();
  });
  if (!s.ok()) return s;
  return out;
}

Index::Stats Index::GetStats() {
  Stats st;
  std::shared_lock<std::shared_mutex> lock(gate_);
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  MDB_stat ms;
  mdb_env_stat(env_, &ms);
  st.map_size = info.me_mapsize;
  st.used_bytes = (info.me_last_pgno + 1) * static_cast<uint64_t>(ms.ms_psize);
  Txn t(env_, false);
  if (t.rc() == 0) {
    MDB_stat s;
    if (mdb_stat(t.get(), meta_, &s) == 0) st.meta_rows = s.ms_entries;
    if (mdb_stat(t.get(), blocks_, &s) == 0) st.block_rows = s.ms_entries;
  }
  return st;
}

}  // namespace strata::index
