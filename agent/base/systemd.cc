#include "agent/base/systemd.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "agent/base/fd.h"

namespace strata::systemd {

bool Notify(const std::string& state) {
  const char* sock = std::getenv("NOTIFY_SOCKET");
  if (sock == nullptr || (sock[0] != '/' && sock[0] != '@')) return false;
  size_t n = std::strlen(sock);
  sockaddr_un addr = {};
  if (n >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, sock, n);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // an abstract socket
  Fd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  return ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len) ==
         static_cast<ssize_t>(state.size());
}

std::string MonotonicUsec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return "MONOTONIC_USEC=" + std::to_string(static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000);
}

int64_t WatchdogIntervalMs() {
  const char* pid = std::getenv("WATCHDOG_PID");
  if (pid != nullptr && std::strtoll(pid, nullptr, 10) != ::getpid()) return 0;
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return 0;
  long long v = std::strtoll(usec, nullptr, 10);
  return v > 0 ? v / 1000 : 0;
}

bool StderrIsJournal() {
  // "DEV:INO" of the stream journald handed us; a redirected stderr (a log
  // file, a pipe of our own) no longer matches.
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  return dev == static_cast<unsigned long long>(st.st_dev) && ino == static_cast<unsigned long long>(st.st_ino);
}

}  // namespace strata::systemd
