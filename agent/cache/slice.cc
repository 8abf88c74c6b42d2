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

Status CopySlices(const std::vector<Slice>& parts, char* dst, size_t cap, size_t* copied) {
  *copied = 0;
  for (const Slice& p : parts) {
    if (*copied + p.length > cap) return Status::IOError("cache: a read returned more than was asked");
    STRATA_RETURN_IF_ERROR(CopySlice(p, dst + *copied));
    *copied += p.length;
  }
  return Status::OK();
}

}  // namespace strata::cache
