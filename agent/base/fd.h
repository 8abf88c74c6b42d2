// RAII owner of a file descriptor, plus the few file helpers used everywhere.
#pragma once

#include <unistd.h>

#include <string>
#include <utility>

#include "agent/base/status.h"

namespace strata {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) Reset(std::exchange(o.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// pread/pwrite until done or EOF; retries EINTR. *got = bytes actually read.
Status PreadFull(int fd, char* buf, size_t len, uint64_t off, size_t* got);
Status PwriteFull(int fd, const char* buf, size_t len, uint64_t off);
// Writes `len` bytes to `path` atomically: temp file in the same dir, optional
// fdatasync, rename. The temp name ends in ".tmp" so start-up reconciliation
// can delete leftovers.
Status WriteFileAtomic(const std::string& path, const char* data, size_t len, bool sync);
// Sends all of [p, p+n) on a non-blocking socket by `deadline_ms`
// (NowMonoMs); Timeout when it stalls past it. No SIGPIPE.
Status SendAllBy(int fd, const char* p, size_t n, int64_t deadline_ms);
// mkdir -p.
Status MakeDirs(const std::string& path, int mode = 0755);

}  // namespace strata
