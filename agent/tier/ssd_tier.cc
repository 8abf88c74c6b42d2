#include "agent/tier/ssd_tier.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

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

std::string SsdTier::PathOf(const BlockKey& key) const {
  char name[64];
  std::snprintf(name, sizeof(name), "/%02x/%016" PRIx64 "-%016" PRIx64 ".blk",
                static_cast<unsigned>(key.file_id & 0xff), key.file_id, key.index);
  return dir_ + name;
}

Status SsdTier::Put(const BlockKey& key, const char* data, size_t len) {
  // No fsync: a block that did not reach the disk before a power loss fails
  // its checksum and is fetched again, which costs less than syncing each one.
  return WriteFileAtomic(PathOf(key), data, len, /*sync=*/false);
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

Status SsdTier::Scan(const std::function<bool(const BlockKey&, uint64_t)>& fn) {
  for (int i = 0; i < 256; i++) {
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
      bool keep = named && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                  fn(key, static_cast<uint64_t>(st.st_size));
      if (!keep && ::unlink(path.c_str()) != 0 && errno != ENOENT)
        LOG_WARN("cache: cannot remove stray %s: %s", path.c_str(), std::strerror(errno));
    }
    ::closedir(dir);
  }
  return Status::OK();
}

}  // namespace strata::tier
