#include "agent/tier/ssd_tier.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "agent/base/hash.h"
#include "agent/base/log.h"

namespace strata::tier {

Result<std::unique_ptr<SsdTier>> SsdTier::Open(const std::string& dir) {
  STRATA_RETURN_IF_ERROR(MakeDirs(dir));
  for (int i = 0; i < 256; i++) {
    char sub[8];
    std::snprintf(sub, sizeof(sub), "/%02x", i);
    std::string p = dir + sub;
    if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(errno, "mkdir " + p);
  }
  return std::unique_ptr<SsdTier>(new SsdTier(dir));
}

std::vector<uint64_t> SsdTier::ChunkSums(const char* data, size_t len, uint64_t chunk) {
  std::vector<uint64_t> sums;
  for (uint64_t c = 0; c * chunk < len; c++) sums.push_back(Xxh64(data + c * chunk, std::min<uint64_t>(chunk, len - c * chunk)));
  return sums;
}

std::string SsdTier::ReadChecked(const Fd* fd, const std::vector<uint64_t>& sums, uint64_t chunk, uint64_t c0,
                                 uint64_t c1, uint32_t blen, Buffer* out, bool* bad_checksum) {
  if (fd == nullptr) return "block file missing";
  uint64_t start = c0 * chunk;
  size_t got = 0;
  Status s = PreadFull(fd->get(), out->data(), out->size(), start, &got);
  if (!s.ok()) return s.message();
  if (got != out->size()) return "block file is short";
  for (uint64_t c = c0; c <= c1; c++) {
    uint64_t cs = (c - c0) * chunk;
    uint64_t clen = std::min<uint64_t>(chunk, blen - start - cs);
    if (Xxh64(out->data() + cs, clen) != sums[c - c0]) {
      *bad_checksum = true;
      return "checksum mismatch in chunk " + std::to_string(c);
    }
  }
  return "";
}

std::shared_ptr<Fd> SsdTier::OpenShared(const BlockKey& key, uint64_t gen) {
  {
    std::lock_guard<std::mutex> lock(fd_mu_);
    auto it = fds_.find(key);
    if (it != fds_.end() && it->second.gen == gen) return it->second.fd;
  }
  Result<Fd> fd = OpenBlock(key);
  if (!fd.ok()) return nullptr;
  auto shared = std::make_shared<Fd>(std::move(fd).value());
  std::lock_guard<std::mutex> lock(fd_mu_);
  auto it = fds_.find(key);
  // Never let a descriptor of an older copy replace a newer one.
  if (it != fds_.end() && it->second.gen > gen) return shared;
  if (it == fds_.end() && fds_.size() >= kMaxOpenFds) fds_.erase(fds_.begin());
  fds_[key] = KeptFd{gen, shared};
  return shared;
}

void SsdTier::Forget(const BlockKey& key) {
  std::lock_guard<std::mutex> lock(fd_mu_);
  fds_.erase(key);
}

std::string SsdTier::PathOf(const BlockKey& key) const {
  char name[64];
  std::snprintf(name, sizeof(name), "/%02x/%016" PRIx64 "-%016" PRIx64 ".blk",
                static_cast<unsigned>(key.file_id & 0xff), key.file_id, key.index);
  return dir_ + name;
}

Status SsdTier::Put(const BlockKey& key, const char* data, size_t len) {
  // No fsync: a block that did not reach the disk before a power loss fails
  // its checksum and is fetched again, which costs less than syncing each one.
  // Written with O_DIRECT where the buffer and the file system allow: copying
  // every fetched byte into the page cache was the largest CPU cost of a
  // cold read. The unaligned tail (last block of a file) goes through the
  // page cache.
  std::string path = PathOf(key), tmp = path + ".tmp";
  bool aligned = reinterpret_cast<uintptr_t>(data) % kDirectAlign == 0;
  size_t direct_len = aligned && direct_ok_ ? len / kDirectAlign * kDirectAlign : 0;
  int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  Fd fd(::open(tmp.c_str(), flags | (direct_len ? O_DIRECT : 0), 0644));
  if (!fd.valid() && direct_len && errno == EINVAL) {  // e.g. tmpfs
    direct_ok_ = false;
    direct_len = 0;
    fd = Fd(::open(tmp.c_str(), flags, 0644));
  }
  if (!fd.valid()) return Status::FromErrno(errno, "create " + tmp);
  Status s;
  if (direct_len) {
    s = PwriteFull(fd.get(), data, direct_len, 0);
    if (s.code() == Status::Code::kInvalidArgument) {
      direct_ok_ = false;
      direct_len = 0;
      s = Status::OK();
    }
  }
  if (s.ok() && direct_len < len) {
    int fl = ::fcntl(fd.get(), F_GETFL);
    if (fl >= 0 && (fl & O_DIRECT)) ::fcntl(fd.get(), F_SETFL, fl & ~O_DIRECT);
    s = PwriteFull(fd.get(), data + direct_len, len - direct_len, direct_len);
  }
  fd.Reset();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::FromErrno(errno, "rename " + tmp);
  if (!s.ok()) ::unlink(tmp.c_str());
  return s.With(path);
}

Result<Fd> SsdTier::OpenBlock(const BlockKey& key) {
  std::string path = PathOf(key);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open block " + path);
  return fd;
}

Status SsdTier::Remove(const BlockKey& key) {
  std::string path = PathOf(key);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(errno, "unlink " + path);
  return Status::OK();
}

Status SsdTier::Scan(const std::function<bool(const BlockKey&, uint64_t)>& fn, int64_t leftovers_before_ns,
                     const std::atomic<bool>* cancel) {
  for (int i = 0; i < 256; i++) {
    if (cancel != nullptr && *cancel) return Status::Unavailable("block scan cancelled");
    char sub[8];
    std::snprintf(sub, sizeof(sub), "/%02x", i);
    std::string d = dir_ + sub;
    DIR* dir = ::opendir(d.c_str());
    if (dir == nullptr) continue;
    while (struct dirent* de = ::readdir(dir)) {
      if (de->d_name[0] == '.') continue;
      std::string path = d + "/" + de->d_name;
      BlockKey key;
      char tail[8] = {0};
      bool named = std::sscanf(de->d_name, "%16" SCNx64 "-%16" SCNx64 "%5s", &key.file_id,
                               &key.index, tail) == 3 &&
                   std::strcmp(tail, ".blk") == 0 && std::strlen(de->d_name) == 37;
      struct stat st;
      if (::stat(path.c_str(), &st) != 0) continue;  // gone meanwhile
      bool keep = named ? S_ISREG(st.st_mode) && fn(key, static_cast<uint64_t>(st.st_size))
                        : st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec >= leftovers_before_ns;
      if (!keep && ::unlink(path.c_str()) != 0 && errno != ENOENT)
        LOG_WARN("cache: cannot remove stray %s: %s", path.c_str(), std::strerror(errno));
    }
    ::closedir(dir);
  }
  return Status::OK();
}

}  // namespace strata::tier
