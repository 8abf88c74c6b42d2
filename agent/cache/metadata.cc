#include "agent/cache/metadata.h"
#include "agent/base/paths.h"

#include <algorithm>

#include "agent/base/clock.h"
#include "agent/base/log.h"

namespace strata::cache {
namespace {

bool NetworkTrouble(const Status& s) {
  return s.code() == Status::Code::kUnavailable || s.code() == Status::Code::kTimeout;
}

}  // namespace

Metadata::Metadata(MountTable* mounts, index::Index* index, Engine* engine, int64_t ttl_ms)
    : mounts_(mounts), index_(index), engine_(engine), ttl_ms_(ttl_ms), started_ns_(NowUnixMs() * 1000000) {}

bool Metadata::Offline(size_t mount) const {
  return mounts_->at(mount).offline_until_ms.load() > NowUnixMs();
}

void Metadata::MarkOffline(size_t mount, const Status& why) {
  Mount& m = mounts_->at(mount);
  if (!Offline(mount))
    LOG_WARN("store %s unreachable, serving cached metadata for %lld s: %s", m.ufs->uri().c_str(),
             static_cast<long long>(kOfflineMs / 1000), why.message().c_str());
  m.offline_until_ms = NowUnixMs() + kOfflineMs;
}

FileRef Metadata::RefOf(const index::FileMeta& meta) const {
  MountTable::Resolved r = mounts_->Resolve(meta.path);
  FileRef f;
  f.file_id = meta.file_id;
  f.mount = r.mount;
  f.path = meta.path;
  f.store_uri = mounts_->at(r.mount).ufs->uri();
  f.ufs_path = r.ufs_path;
  f.etag = meta.etag;
  f.size = meta.size;
  return f;
}

Result<index::FileMeta> Metadata::Stat(const std::string& path) {
  MountTable::Resolved r = mounts_->Resolve(path);
  // The root, mount points and the directories on the way to them always exist.
  if (staged_ != nullptr) {
    if (std::optional<index::FileMeta> staged = staged_->Overlay(path)) return *staged;
  }
  if (mounts_->IsSyntheticDir(path)) {
    index::FileMeta m;
    m.path = path;
    m.is_dir = true;
    m.mtime_ns = started_ns_;
    return m;
  }
  Result<std::optional<index::FileMeta>> cached = index_->GetMeta(path);
  if (!cached.ok()) return cached.status();
  int64_t now = NowUnixMs();
  if (cached->has_value() && now - (*cached)->validated_ms < ttl_ms_ &&
      ((*cached)->attrs_known || attrs_from_listing_))
    return **cached;
  if (!cached->has_value()) {
    // A fresh listing of the parent that lacks the name answers without a request.
    auto [parent, name] = SplitPath(path);
    Result<std::optional<index::DirListing>> dir = index_->GetDir(parent);
    if (dir.ok() && dir->has_value() && now - (*dir)->fetched_ms < ttl_ms_) {
      const auto& entries = (*dir)->entries;
      bool listed = std::any_of(entries.begin(), entries.end(),
                                [&](const index::DirEntry& e) { return e.name == name; });
      if (!listed) return Status::NotFound("no such file: /" + path);
    }
  }
  if (cached->has_value() && Offline(r.mount)) return **cached;

  // A file a fresh listing showed (attributes to complete, as for ls -l on
  // S3) has no same-named directory: one HEAD, without the directory check.
  bool listed_file = cached->has_value() && !(*cached)->is_dir && now - (*cached)->validated_ms < ttl_ms_;
  ufs::Ufs* store = mounts_->at(r.mount).ufs.get();
  Result<ufs::Entry> e = listed_file ? store->StatListedFile(r.ufs_path) : store->Stat(r.ufs_path);
  if (!e.ok()) {
    if (e.status().IsNotFound()) {
      uint64_t retired = 0;
      STRATA_RETURN_IF_ERROR(index_->DeleteMeta(path, &retired));
      engine_->Retire(retired);
      return e.status();
    }
    if (NetworkTrouble(e.status())) {
      MarkOffline(r.mount, e.status());
      if (cached->has_value()) return **cached;
    }
    return e.status();
  }
  index::FileMeta m = MetaOf(path, *e, now);
  uint64_t retired = 0;
  Result<index::FileMeta> stored = index_->PutMeta(m, &retired);
  if (retired) {
    LOG_INFO("/%s changed in the store: dropping the cached copy", path.c_str());
    engine_->Retire(retired);
  }
  if (!stored.ok()) {
    // A full or failing index disk: the file is still served, from its
    // store, under an id of this process's whose blocks are never kept.
    // Said at most every 10 s.
    int64_t mono = NowMonoMs(), last = last_index_warning_ms_.load();
    if (mono - last >= 10000 && last_index_warning_ms_.compare_exchange_strong(last, mono))
      LOG_WARN("index: cannot record /%s (serving such files from the store, uncached): %s", path.c_str(),
               stored.status().message().c_str());
    m.file_id = next_unindexed_++;
    return m;
  }
  return stored;
}

index::FileMeta Metadata::MetaOf(const std::string& path, const ufs::Entry& e, int64_t now_ms) const {
  index::FileMeta m;
  m.path = path;
  m.is_dir = e.is_dir;
  m.size = e.size;
  m.mtime_ns = e.mtime_ns > 0 ? e.mtime_ns : started_ns_;  // implied S3 dirs have no time
  m.etag = e.etag;
  m.mode = e.attrs.mode;
  m.uid = e.attrs.uid;
  m.gid = e.attrs.gid;
  m.attrs_known = e.attrs_known;
  m.link_target = e.link_target;
  m.user = e.attrs.user;
  m.validated_ms = now_ms;
  return m;
}

Result<index::FileMeta> Metadata::Record(const std::string& path, const ufs::Entry& e) {
  Result<index::FileMeta> stored = RecordOnly(path, e);
  TouchParent(path);
  return stored;
}

void Metadata::TouchParent(const std::string& path) {
  if (path.empty()) return;
  std::string parent = SplitPath(path).first;
  MountTable::Resolved r = mounts_->Resolve(parent);
  if (mounts_->IsSyntheticDir(parent) || !mounts_->at(r.mount).ufs->dir_times_follow_entries()) return;
  Result<ufs::Entry> e = mounts_->at(r.mount).ufs->Stat(r.ufs_path);
  if (e.ok()) {
    Result<index::FileMeta> m = RecordOnly(parent, *e);
    (void)m;
  }
}

Result<index::FileMeta> Metadata::RecordOnly(const std::string& path, const ufs::Entry& e) {
  index::FileMeta m = MetaOf(path, e, NowUnixMs());
  m.attrs_known = true;
  uint64_t retired = 0;
  Result<index::FileMeta> stored = index_->PutMeta(m, &retired);
  if (retired) engine_->Retire(retired);
  if (!stored.ok()) return stored;
  auto [parent, name] = SplitPath(path);
  index::DirEntry d;
  static_cast<index::PosixAttrs&>(d) = *stored;
  d.name = name;
  d.is_dir = stored->is_dir;
  d.size = stored->size;
  d.mtime_ns = stored->mtime_ns;
  d.etag = stored->etag;
  Status s = index_->PatchDir(parent, name, &d);
  if (!s.ok()) LOG_WARN("index: cannot update the listing of /%s: %s", parent.c_str(), s.message().c_str());
  return stored;
}

void Metadata::Forget(const std::string& path) {
  std::vector<uint64_t> retired;
  Status s = index_->DeleteTree(path, &retired);
  auto [parent, name] = SplitPath(path);
  if (s.ok()) s = index_->PatchDir(parent, name, nullptr);
  if (!s.ok()) LOG_WARN("index: cannot forget /%s: %s", path.c_str(), s.message().c_str());
  for (uint64_t id : retired) engine_->Retire(id);
  TouchParent(path);
}

Result<std::vector<index::DirEntry>> Metadata::List(const std::string& dir) {
  MountTable::Resolved r = mounts_->Resolve(dir);
  std::vector<std::string> mount_points = mounts_->MountPointsUnder(dir);
  auto with_mount_points = [&](std::vector<index::DirEntry> entries) {
    for (const std::string& name : mount_points) {
      entries.erase(std::remove_if(entries.begin(), entries.end(),
                                   [&](const index::DirEntry& e) { return e.name == name; }),
                    entries.end());
      index::DirEntry e;
      e.name = name;
      e.is_dir = true;
      e.mtime_ns = started_ns_;
      entries.push_back(std::move(e));
    }
    return entries;
  };
  auto with_staged = [&](std::vector<index::DirEntry> entries) {
    if (staged_ != nullptr) staged_->MergeListing(dir, &entries);
    return with_mount_points(std::move(entries));
  };
  Result<std::optional<index::DirListing>> cached = index_->GetDir(dir);
  if (!cached.ok()) return cached.status();
  int64_t now = NowUnixMs();
  if (cached->has_value() && (now - (*cached)->fetched_ms < ttl_ms_ || Offline(r.mount)))
    return with_staged((*cached)->entries);

  Result<std::vector<ufs::Entry>> listed = mounts_->at(r.mount).ufs->List(r.ufs_path);
  if (!listed.ok()) {
    // A directory that exists only on the way to a mount point.
    if (!mount_points.empty() && !NetworkTrouble(listed.status())) return with_staged({});
    if (NetworkTrouble(listed.status())) {
      MarkOffline(r.mount, listed.status());
      if (cached->has_value()) return with_staged((*cached)->entries);
    }
    // A directory that so far exists only on this host (cache-only mounts).
    if (listed.status().IsNotFound() && staged_ != nullptr && staged_->Overlay(dir).has_value())
      return with_staged({});
    return listed.status();
  }
  index::DirListing listing;
  listing.path = dir;
  listing.fetched_ms = now;
  listing.entries.reserve(listed->size());
  for (ufs::Entry& e : *listed) {
    index::DirEntry d;
    d.name = std::move(e.name);
    d.is_dir = e.is_dir;
    d.size = e.size;
    d.mtime_ns = e.mtime_ns > 0 ? e.mtime_ns : started_ns_;
    d.etag = std::move(e.etag);
    d.mode = e.attrs.mode;
    d.uid = e.attrs.uid;
    d.gid = e.attrs.gid;
    // Listing rows keep no user metadata: a file that has some is Stat'ed.
    d.attrs_known = e.attrs_known && e.attrs.user.empty();
    d.link_target = std::move(e.link_target);
    listing.entries.push_back(std::move(d));
  }
  std::vector<uint64_t> retired;
  Status s = index_->PutDir(listing, &retired);
  if (!s.ok()) LOG_WARN("index: cannot store the listing of /%s: %s", dir.c_str(), s.message().c_str());
  for (uint64_t id : retired) engine_->Retire(id);
  return with_staged(std::move(listing.entries));
}

}  // namespace strata::cache
