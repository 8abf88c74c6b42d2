#include "agent/cache/mounts.h"

#include "agent/base/paths.h"

namespace strata::cache {

Result<std::string> NormalizePath(const std::string& path) {
  std::string out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string part = path.substr(i, j - i);
    if (part == "." || part == "..") return Status::InvalidArgument("path '" + path + "' has . or .. in it");
    if (!part.empty()) {
      if (!out.empty()) out.push_back('/');
      out += part;
    }
    i = j + 1;
  }
  return out;
}

Status MountTable::Add(std::string path, std::unique_ptr<ufs::Ufs> store) {
  Result<std::string> norm = NormalizePath(path);
  if (!norm.ok()) return norm.status();
  for (const auto& m : mounts_)
    if (m->path == *norm) return Status::InvalidArgument("two stores mounted at '/" + *norm + "'");
  if (mounts_.empty() && !norm->empty())
    return Status::InvalidArgument("the first --ufs must be the root store (no PATH=)");
  auto m = std::make_unique<Mount>();
  m->path = *norm;
  m->ufs = std::move(store);
  mounts_.push_back(std::move(m));
  return Status::OK();
}

ufs::Ufs* MountTable::ByUri(const std::string& uri) const {
  for (const auto& m : mounts_)
    if (m->ufs->uri() == uri) return m->ufs.get();
  return nullptr;
}

MountTable::Resolved MountTable::Resolve(const std::string& path) const {
  Resolved best;
  size_t best_len = 0;
  for (size_t i = 1; i < mounts_.size(); i++) {
    const std::string& mp = mounts_[i]->path;
    if (IsUnder(path, mp) && mp.size() >= best_len) {
      best.mount = i;
      best_len = mp.size();
    }
  }
  if (best.mount == 0) {
    best.ufs_path = path;
  } else {
    best.ufs_path = path.size() == best_len ? "" : path.substr(best_len + 1);
  }
  return best;
}

std::vector<std::string> MountTable::MountPointsUnder(const std::string& dir) const {
  std::vector<std::string> out;
  for (size_t i = 1; i < mounts_.size(); i++) {
    const std::string& mp = mounts_[i]->path;
    if (mp == dir || !IsUnder(mp, dir)) continue;
    std::string rest = mp.substr(dir.empty() ? 0 : dir.size() + 1);
    std::string name = rest.substr(0, rest.find('/'));
    bool seen = false;
    for (const std::string& n : out) seen |= n == name;
    if (!seen) out.push_back(name);
  }
  return out;
}

bool MountTable::IsSyntheticDir(const std::string& path) const {
  if (path.empty()) return true;
  for (size_t i = 1; i < mounts_.size(); i++) {
    if (IsUnder(mounts_[i]->path, path)) return true;
  }
  return false;
}

}  // namespace strata::cache
