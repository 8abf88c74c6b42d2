#include "agent/base/status.h"

#include <cstring>

namespace strata {

Status Status::FromErrno(int err, const std::string& context) {
  std::string msg = context + ": " + std::strerror(err);
  switch (err) {
    case ENOENT: return NotFound(msg);
    case EACCES:
    case EPERM: return PermissionDenied(msg);
    case ENOSPC:
    case EDQUOT: return NoSpace(msg);
    case ENOTDIR: return NotADirectory(msg);
    case EISDIR: return IsADirectory(msg);
    case EEXIST: return AlreadyExists(msg);
    case EROFS: return ReadOnly(msg);
    case EINVAL: return InvalidArgument(msg);
    case ETIMEDOUT: return Timeout(msg);
    case ENOTEMPTY: return NotEmpty(msg);
    case ENOTSUP: return NotSupported(msg);
    default: return IOError(msg);
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return message_;
}

}  // namespace strata
