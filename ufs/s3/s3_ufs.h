// s3:// store: one bucket, optionally below a key prefix.
#pragma once

#include "ufs/ufs.h"

namespace strata::ufs {

// Directory semantics (as mountpoint-s3 and s3fs do it): a directory exists
// when a marker object "dir/" exists or any key lies below "dir/"; a key "a"
// next to keys under "a/" is shadowed by the directory; names "." / ".." /
// longer than 255 bytes are hidden. Markers' Content-Type does not matter.
std::unique_ptr<Ufs> NewS3Ufs(const std::string& uri, const std::string& bucket,
                              const std::string& prefix, const S3Options& opts);

}  // namespace strata::ufs
