// An S3-shaped TCP proxy for benchmarks: every connection is capped at a rate
// (both ways) and each response's first byte waits a fixed delay after the
// request that asked for it, so one connection is slow and parallel ones add
// up, as on a real S3 endpoint. This kernel has no netem/fq qdisc, hence user
// space.
//
//   shaper LISTEN_PORT UPSTREAM_PORT [RATE_MB_PER_S=90] [FIRST_BYTE_MS=30] [PUT_FIRST_BYTE_MS]
//
// With PUT_FIRST_BYTE_MS, answers to PUT requests wait that long instead (a
// store slow to take uploads, for tests that need an upload backlog).
//
// Both ports are on 127.0.0.1. A response starts with the first bytes that
// come from the upstream after the client sent bytes (HTTP/1.1 without
// pipelining, as curl and libcurl send). Two threads per connection.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

double g_rate = 90e6;                      // bytes per second per direction
std::chrono::microseconds g_first_byte{30000};
std::chrono::microseconds g_put_first_byte{-1};  // < 0: as g_first_byte

struct Conn {
  int client = -1, upstream = -1;
  std::atomic<bool> awaiting{false};  // a request was sent, its response has not begun
  std::atomic<int64_t> request_ns{0};
  std::atomic<bool> put{false};  // the request awaiting its answer is a PUT
  ~Conn() {
    ::close(client);
    ::close(upstream);
  }
};

int64_t NowNs() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

void SleepUntilNs(int64_t t) {
  int64_t d = t - NowNs();
  if (d > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(d));
}

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Copies from -> to at g_rate. `request`: this is the client side (marks
// requests); else the upstream side (delays each response's first byte).
void Pump(std::shared_ptr<Conn> c, bool request) {
  int from = request ? c->client : c->upstream, to = request ? c->upstream : c->client;
  static thread_local char buf[64 * 1024];
  int64_t next_free = NowNs();
  for (;;) {
    ssize_t n = ::recv(from, buf, sizeof buf, 0);
    if (n <= 0) break;
    if (request) {
      if (!c->awaiting.exchange(true)) {
        c->request_ns = NowNs();
        c->put = n >= 4 && std::memcmp(buf, "PUT ", 4) == 0;
      }
    } else if (c->awaiting.exchange(false)) {
      auto delay = c->put && g_put_first_byte.count() >= 0 ? g_put_first_byte : g_first_byte;
      SleepUntilNs(c->request_ns + std::chrono::duration_cast<std::chrono::nanoseconds>(delay).count());
      next_free = std::max(next_free, NowNs());
    }
    // Token bucket of one chunk: this chunk may leave at next_free.
    next_free = std::max(next_free, NowNs() - 2'000'000);  // at most 2 ms of credit
    SleepUntilNs(next_free);
    if (!SendAll(to, buf, static_cast<size_t>(n))) break;
    next_free += static_cast<int64_t>(n / g_rate * 1e9);
  }
  ::shutdown(to, SHUT_WR);
  ::shutdown(from, SHUT_RD);
}

int Listen(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 256) != 0) {
    std::perror("shaper: listen");
    std::exit(1);
  }
  return fd;
}

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: shaper LISTEN_PORT UPSTREAM_PORT [RATE_MB_PER_S] [FIRST_BYTE_MS]\n");
    return 2;
  }
  int listen_port = std::atoi(argv[1]), upstream_port = std::atoi(argv[2]);
  if (argc > 3) g_rate = std::atof(argv[3]) * 1e6;
  if (argc > 4) g_first_byte = std::chrono::microseconds(static_cast<int64_t>(std::atof(argv[4]) * 1000));
  if (argc > 5) g_put_first_byte = std::chrono::microseconds(static_cast<int64_t>(std::atof(argv[5]) * 1000));
  int lfd = Listen(listen_port);
  for (;;) {
    int cfd = ::accept(lfd, nullptr, nullptr);
    if (cfd < 0) continue;
    int ufd = Connect(upstream_port);
    if (ufd < 0) {
      ::close(cfd);
      continue;
    }
    int one = 1;
    ::setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_shared<Conn>();
    c->client = cfd;
    c->upstream = ufd;
    std::thread(Pump, c, true).detach();
    std::thread(Pump, c, false).detach();
  }
}
