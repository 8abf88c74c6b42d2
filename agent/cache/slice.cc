#include "agent/cache/slice.h"

#include <cstring>

namespace strata::cache {

Status CopySlice(const Slice& s, char* dst) {
  if (s.data != nullptr) {
    std::memcpy(dst, s.data->data() + s.offset, s.length);
    return Status::OK();
  }
  size_t got = 0;
  STRATA_RETURN_IF_ERROR(PreadFull(s.fd->get(), dst, s.length, s.offset, &got));
  if (got != s.length) return Status::IOError("cache: block file is short");
  return Status::OK();
}

}  // namespace strata::cache
