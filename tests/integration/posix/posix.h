// The POSIX conformance set of the mount (issue 13, item 4), organised like a
// file-system test suite: one file per syscall, each case asserting the errno
// Linux defines, as root and as an unprivileged user (`nobody`, through the
// mount's default_permissions). One agent serves a file:// store at its root
// and an S3 store at /s, so every case runs on both and EXDEV can be seen between
// them; on the Ceph RGW pass only /s runs.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"

namespace strata::it::posix {

constexpr uid_t kNobody = 65534;

// errno as its name ("ENOENT"; "0" for success), so a failure reads plainly.
inline std::string Err(int rc) {
  if (rc >= 0) return "0";
  const char* name = strerrorname_np(errno);
  return name ? name : std::to_string(errno);
}

// Runs `fn` in a child process as uid/gid `nobody`; returns what Err() made
// of its result there.
inline std::string AsNobody(const std::function<int()>& fn) {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    std::string out = "setuid failed";
    if (::setgroups(0, nullptr) == 0 && ::setresgid(kNobody, kNobody, kNobody) == 0 &&
        ::setresuid(kNobody, kNobody, kNobody) == 0)
      out = Err(fn());
    (void)!::write(p[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(p[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof(buf))) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  ::waitpid(pid, nullptr, 0);
  return out;
}

inline int WriteText(const std::string& path, const std::string& text, int flags = O_WRONLY | O_CREAT | O_TRUNC) {
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return -1;
  ssize_t n = ::write(fd, text.data(), text.size());
  int saved = errno;
  int rc = ::close(fd);
  errno = n < 0 ? saved : errno;
  return n < 0 || rc != 0 ? -1 : 0;
}

// The agent over a directory (the root) and an S3 bucket (/s).
struct Rig {
  std::unique_ptr<Store> file = MakeStore("file");
  std::unique_ptr<Store> s3 = MakeStore("s3");
  Agent agent;
  Rig() {
    std::vector<std::string> args = s3->agent_args();
    args.insert(args.end(), {"--ufs", "s=" + s3->uri(), "--metadata-ttl", "0"});
    // mkdtemp made the directory 0700: open it as a shared tree would be.
    ::chmod(file->uri().substr(7).c_str(), 0755);
    agent.Start(file->uri(), args);
    // The agent's directory (mkdtemp, 0700) holds the mount point: nobody must reach it.
    ::chmod(agent.mnt().substr(0, agent.mnt().rfind('/')).c_str(), 0755);
  }
  // The roots every case runs under.
  std::vector<std::string> roots() const {
    if (UsingRgw()) return {agent.mnt("s")};
    return {agent.mnt(), agent.mnt("s")};
  }
};

}  // namespace strata::it::posix
