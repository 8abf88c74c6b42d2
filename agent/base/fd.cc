#include "agent/base/fd.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>

#include "agent/base/clock.h"

namespace strata {

Status PreadFull(int fd, char* buf, size_t len, uint64_t off, size_t* got) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      *got = done;
      return Status::FromErrno(errno, "pread");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  *got = done;
  return Status::OK();
}

Status PwriteFull(int fd, const char* buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, buf + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "pwrite");
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status WriteFileAtomic(const std::string& path, const char* data, size_t len, bool sync) {
  std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(errno, "create " + tmp);
  Status s = PwriteFull(fd.get(), data, len, 0);
  if (s.ok() && sync && ::fdatasync(fd.get()) != 0) s = Status::FromErrno(errno, "fdatasync " + tmp);
  fd.Reset();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0)
    s = Status::FromErrno(errno, "rename " + tmp);
  if (!s.ok()) ::unlink(tmp.c_str());
  return s.With(path);
}

Status MakeDirs(const std::string& path, int mode) {
  if (path.empty()) return Status::OK();
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST)
      return Status::FromErrno(errno, "mkdir " + cur);
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return Status::NotADirectory("not a directory: " + path);
  return Status::OK();
}

Status SendAllBy(int fd, const char* p, size_t n, int64_t deadline_ms) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Status::FromErrno(errno, "send");
    int64_t left = deadline_ms - NowMonoMs();
    if (left <= 0) return Status::Timeout("send stalled");
    pollfd pf{fd, POLLOUT, 0};
    ::poll(&pf, 1, static_cast<int>(left));
  }
  return Status::OK();
}

}  // namespace strata
