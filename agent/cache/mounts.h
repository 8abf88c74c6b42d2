// The namespace: several stores mounted at paths of one tree. The first
// store is the root; others sit at sub-paths ("ref=file:///nfs/ref").
//
// Thread safety: immutable after construction; the stores themselves are
// thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ufs/ufs.h"

namespace strata::cache {

struct Mount {
  std::string path;  // mount-relative, "" for the root store
  std::unique_ptr<ufs::Ufs> ufs;
  // Wall time (ms) until which the store is considered offline after a
  // network failure: metadata is served from the index without asking it.
  std::atomic<int64_t> offline_until_ms{0};
};

class MountTable {
 public:
  // Takes (path, store) pairs; paths are normalised ("/a/b/" -> "a/b").
  Status Add(std::string path, std::unique_ptr<ufs::Ufs> store);
  size_t size() const { return mounts_.size(); }
  Mount& at(size_t i) { return *mounts_[i]; }
  // The store opened from `uri`; nullptr when none is mounted here.
  ufs::Ufs* ByUri(const std::string& uri) const;

  struct Resolved {
    size_t mount = 0;
    std::string ufs_path;  // path inside that store
  };
  // The store that owns `path` (longest mount path that is a prefix).
  Resolved Resolve(const std::string& path) const;
  // Names of mount points directly below `dir` (they show up in listings
  // even when the parent store has no such directory).
  std::vector<std::string> MountPointsUnder(const std::string& dir) const;
  // True when `path` is a mount point or lies on the way to one.
  bool IsSyntheticDir(const std::string& path) const;

 private:
  std::vector<std::unique_ptr<Mount>> mounts_;
};

// "/a//b/" -> "a/b"; rejects "." and ".." components.
Result<std::string> NormalizePath(const std::string& path);

}  // namespace strata::cache
