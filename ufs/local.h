// file:// store: a plain directory (local disk or an NFS mount).
#pragma once

#include "ufs/ufs.h"

namespace strata::ufs {

// `root` is an absolute directory path. The ETag of a file is derived from its
// size, mtime (ns) and inode, so a rewrite in place is seen as a new version.
std::unique_ptr<Ufs> NewLocalUfs(const std::string& uri, const std::string& root);

}  // namespace strata::ufs
