#include "agent/cache/staging.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "agent/base/clock.h"
#include "agent/base/log.h"
#include "agent/base/paths.h"
#include "agent/base/units.h"

namespace strata::cache {

// --- StagedFile ---

std::vector<StagedFile::Piece> StagedFile::Plan(uint64_t off, size_t len, uint64_t bs) const {
  std::vector<Piece> out;
  auto add = [&](uint64_t at, size_t n, bool from_base) {
    if (n == 0) return;
    if (!out.empty() && out.back().from_base == from_base && out.back().off + out.back().len == at)
      out.back().len += n;
    else
      out.push_back({at, n, from_base});
  };
  while (len > 0) {
    uint64_t b = off / bs;
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, (b + 1) * bs - off));
    size_t from_base = 0;
    if (!Holds(b) && off < base_size) from_base = static_cast<size_t>(std::min<uint64_t>(n, base_size - off));
    add(off, from_base, true);
    add(off + from_base, n - from_base, false);
    off += n;
    len -= n;
  }
  return out;
}

std::vector<uint64_t> StagedFile::NeedsFill(uint64_t off, uint64_t end, uint64_t bs) const {
  std::vector<uint64_t> out;
  if (end <= off || base.file_id == 0) return out;
  auto partial = [&](uint64_t b) {
    return !Holds(b) && b * bs < base_size && !(off <= b * bs && end >= std::min((b + 1) * bs, base_size));
  };
  uint64_t first = off / bs, last = (end - 1) / bs;
  if (partial(first)) out.push_back(first);
  if (last != first && partial(last)) out.push_back(last);
  return out;
}

bool StagedFile::Unchanged(uint64_t off, uint64_t len, uint64_t bs) const {
  if (off + len > base_size) return false;
  for (uint64_t b = off / bs; b * bs < off + len; b++)
    if (Holds(b)) return false;
  return true;
}

Status StagedFile::ReadStaged(uint64_t off, size_t len, char* buf) const {
  size_t got = 0;
  STRATA_RETURN_IF_ERROR(PreadFull(fd.get(), buf, len, off, &got));
  std::memset(buf + got, 0, len - got);  // a sparse tail
  return Status::OK();
}

Status StagedFile::Write(uint64_t off, const char* data, size_t len, uint64_t bs) {
  if (len == 0) return Status::OK();
  Status s = PwriteFull(fd.get(), data, len, off);
  if (!s.ok()) return s.code() == Status::Code::kNoSpace ? Status::NoSpace("cache disk full: " + s.message()) : s;
  uint64_t last = (off + len - 1) / bs;
  if (present.size() <= last) present.resize(last + 1, false);
  for (uint64_t b = off / bs; b <= last; b++) present[b] = true;
  size = std::max(size, off + len);
  return Status::OK();
}

Status StagedFile::Fill(uint64_t block, const char* bytes, size_t n, uint64_t bs) {
  STRATA_RETURN_IF_ERROR(PwriteFull(fd.get(), bytes, n, block * bs));
  if (present.size() <= block) present.resize(block + 1, false);
  present[block] = true;
  return Status::OK();
}

Status StagedFile::Truncate(uint64_t new_size) {
  if (::ftruncate(fd.get(), static_cast<off_t>(new_size)) != 0) return Status::FromErrno(errno, "truncate");
  // Bytes past the new end read as zeros from now on, even after growing again.
  base_size = std::min(base_size, new_size);
  size = new_size;
  return Status::OK();
}

void StagedFile::ToRow(index::JournalEntry* e) const {
  // Blocks never written stay the stored version's: the row names that
  // version (pinned by its ETag) instead of copying it into staging.
  if (base.file_id == 0 || base_size == 0) return;
  e->base_file_id = base.file_id;
  e->base_ufs_path = base.ufs_path;
  e->base_etag = base.etag;
  e->base_object_size = base.size;
  e->base_size = base_size;
  e->present.assign((present.size() + 7) / 8, '\0');
  for (size_t b = 0; b < present.size(); b++)
    if (present[b]) e->present[b / 8] = static_cast<char>(e->present[b / 8] | (1 << (b % 8)));
}

void StagedFile::FromRow(const index::JournalEntry& e, size_t mount, const std::string& path) {
  seq = e.seq;
  if (e.base_file_id == 0) return;
  base.file_id = e.base_file_id;
  base.mount = mount;
  base.path = path;
  base.store_uri = e.store_uri;
  base.ufs_path = e.base_ufs_path;
  base.etag = e.base_etag;
  base.size = e.base_object_size;
  base_size = e.base_size;
  present.assign(e.present.size() * 8, false);
  for (size_t b = 0; b < present.size(); b++) present[b] = (e.present[b / 8] >> (b % 8)) & 1;
}

// --- StagingArea ---

StagingArea::StagingArea(std::string dir, uint64_t limit, int full_wait_ms)
    : dir_(std::move(dir)), limit_(limit), full_wait_ms_(full_wait_ms) {}

Status StagingArea::Open() { return MakeDirs(dir_, 0700); }

std::string StagingArea::PathOf(uint64_t seq) const {
  char name[32];
  std::snprintf(name, sizeof(name), "%016llx.stage", static_cast<unsigned long long>(seq));
  return dir_ + "/" + name;
}

Result<Fd> StagingArea::Create(uint64_t seq) {
  std::string path = PathOf(seq);
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return Status::FromErrno(errno, "create staging file " + path);
  return fd;
}

Result<Fd> StagingArea::Reopen(uint64_t seq) {
  std::string path = PathOf(seq);
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open staging file " + path);
  return fd;
}

void StagingArea::Remove(uint64_t seq) { ::unlink(PathOf(seq).c_str()); }

void StagingArea::RemoveAllBut(const std::unordered_set<uint64_t>& keep) {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return;
  while (struct dirent* de = ::readdir(d)) {
    if (de->d_name[0] == '.') continue;
    char* end = nullptr;
    uint64_t seq = std::strtoull(de->d_name, &end, 16);
    bool ours = end != nullptr && std::strcmp(end, ".stage") == 0;
    if (!ours || !keep.count(seq)) ::unlink((dir_ + "/" + de->d_name).c_str());
  }
  ::closedir(d);
}

Status StagingArea::Sync(const StagedFile& f) {
  if (::fdatasync(f.fd.get()) != 0) return Status::FromErrno(errno, "sync " + PathOf(f.seq));
  Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) ::fsync(dir.get());
  return Status::OK();
}

Status StagingArea::Reserve(uint64_t grow) {
  if (grow == 0 || limit_ == 0) return Status::OK();
  std::unique_lock<std::mutex> lock(mu_);
  int64_t deadline = NowMonoMs() + full_wait_ms_;
  while (used_ + grow > limit_) {
    int64_t left = deadline - NowMonoMs();
    if (left <= 0 || stopping_) {
      int64_t now = NowMonoMs();
      if (now - last_warning_ms_ > 10000) {
        last_warning_ms_ = now;
        LOG_WARN("staging area full (%s of %s staged): writes get ENOSPC until uploads drain "
                 "(raise --staging-size)",
                 FormatSize(used_).c_str(), FormatSize(limit_).c_str());
      }
      return Status::NoSpace("staging area full (" + FormatSize(used_) + " of " + FormatSize(limit_) + ")");
    }
    cv_.wait_for(lock, std::chrono::milliseconds(std::min<int64_t>(left, 200)));
  }
  return Status::OK();
}

void StagingArea::Resize(uint64_t from, uint64_t to) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    used_ = used_ + to >= from ? used_ + to - from : 0;
  }
  if (to < from) cv_.notify_all();
}

void StagingArea::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

uint64_t StagingArea::used() {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

}  // namespace strata::cache
