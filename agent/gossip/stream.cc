#include "agent/gossip/stream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "agent/base/clock.h"

namespace strata::gossip {

Status SplitHostPort(const std::string& addr, std::string* host, uint16_t* port) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 >= addr.size())
    return Status::InvalidArgument("'" + addr + "' is not HOST:PORT");
  std::string h = addr.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  char* end = nullptr;
  long p = std::strtol(addr.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p <= 0 || p > 65535) return Status::InvalidArgument("bad port in '" + addr + "'");
  *host = h.empty() ? "0.0.0.0" : h;
  *port = static_cast<uint16_t>(p);
  return Status::OK();
}

Result<std::vector<sockaddr_storage>> ResolveAll(const std::string& addr) {
  std::string host;
  uint16_t port = 0;
  STRATA_RETURN_IF_ERROR(SplitHostPort(addr, &host, &port));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return Status::NotFound("cannot resolve '" + host + "': " + ::gai_strerror(rc));
  std::vector<sockaddr_storage> out;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    out.push_back(ss);
  }
  ::freeaddrinfo(res);
  return out;
}

Result<StreamConn> StreamConn::Dial(const std::string& addr, const Keyring* keyring, std::string aad, int timeout_ms,
                                    const std::string& source_host) {
  Result<std::vector<sockaddr_storage>> addrs = ResolveAll(addr);
  if (!addrs.ok()) return addrs.status();
  Status last = Status::Unavailable("no address for " + addr);
  for (const sockaddr_storage& ss : *addrs) {
    Fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Status::FromErrno(errno, "socket");
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!source_host.empty() && source_host != "0.0.0.0" && source_host != "::") {
      sockaddr_storage src{};
      bool v4 = ss.ss_family == AF_INET;
      bool parsed = v4 ? ::inet_pton(AF_INET, source_host.c_str(), &reinterpret_cast<sockaddr_in*>(&src)->sin_addr) == 1
                       : ::inet_pton(AF_INET6, source_host.c_str(), &reinterpret_cast<sockaddr_in6*>(&src)->sin6_addr) == 1;
      src.ss_family = ss.ss_family;
      if (parsed && ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&src), v4 ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)) != 0)
        return Status::FromErrno(errno, "bind to " + source_host);
    }
    socklen_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
      last = Status::FromErrno(errno, "connect to " + addr);
      continue;
    }
    pollfd p{fd.get(), POLLOUT, 0};
    int rc = ::poll(&p, 1, timeout_ms);
    if (rc == 0) {
      last = Status::Timeout("connect to " + addr + ": no answer in " + std::to_string(timeout_ms) + " ms");
      continue;
    }
    int err = 0;
    socklen_t el = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &el);
    if (rc < 0 || err != 0) {
      last = Status::FromErrno(rc < 0 ? errno : err, "connect to " + addr);
      continue;
    }
    return StreamConn(std::move(fd), keyring, std::move(aad));
  }
  return last;
}

Status StreamConn::WriteAll(const char* p, size_t n, int64_t deadline) {
  return SendAllBy(fd_.get(), p, n, deadline).With("peer stream");
}

Status StreamConn::ReadAll(char* p, size_t n, int64_t deadline) {
  while (n > 0) {
    ssize_t r = ::recv(fd_.get(), p, n, 0);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return Status::Unavailable("peer stream closed");
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Status::FromErrno(errno, "recv");
    int64_t left = deadline - NowMonoMs();
    if (left <= 0) return Status::Timeout("peer stream: nothing came in time");
    pollfd pf{fd_.get(), POLLIN, 0};
    ::poll(&pf, 1, static_cast<int>(left));
  }
  return Status::OK();
}

// A frame on the wire: length u32 | version | nonce | type | body | tag.
constexpr size_t kLenBytes = 4;

void StreamConn::NewFrame(std::string* frame, FrameType type, size_t body_len) {
  frame->resize(kLenBytes + Keyring::kOverhead + 1 + body_len);
  frame->replace(kLenBytes + Keyring::kHead, 1, 1, static_cast<char>(type));
}

char* StreamConn::BodyOf(std::string& frame) { return frame.data() + kLenBytes + Keyring::kHead + 1; }

Status StreamConn::SendFrame(std::string& frame, int timeout_ms) {
  const size_t sealed = frame.size() - kLenBytes;
  const size_t plain = sealed - Keyring::kOverhead;
  STRATA_RETURN_IF_ERROR(keyring_->SealInPlace(frame.data() + kLenBytes, plain, aad_));
  uint32_t n = static_cast<uint32_t>(sealed);
  for (size_t i = 0; i < kLenBytes; i++) frame[i] = static_cast<char>(n >> (8 * i));
  return WriteAll(frame.data(), frame.size(), NowMonoMs() + timeout_ms);
}

Status StreamConn::Send(FrameType type, std::string_view body, int timeout_ms) {
  std::string frame;
  NewFrame(&frame, type, body.size());
  std::copy(body.begin(), body.end(), BodyOf(frame));
  return SendFrame(frame, timeout_ms);
}

Status StreamConn::Receive(FrameType* type, std::string_view* body, int timeout_ms) {
  bool tailed = false;
  return ReceiveTail(type, body, nullptr, 0, &tailed, timeout_ms);
}

Status StreamConn::ReceiveTail(FrameType* type, std::string_view* body, char* tail, size_t tail_len, bool* tailed,
                               int timeout_ms) {
  int64_t deadline = NowMonoMs() + timeout_ms;
  unsigned char hdr[kLenBytes];
  STRATA_RETURN_IF_ERROR(ReadAll(reinterpret_cast<char*>(hdr), kLenBytes, deadline));
  uint32_t n = hdr[0] | (hdr[1] << 8) | (hdr[2] << 16) | (static_cast<uint32_t>(hdr[3]) << 24);
  if (n < Keyring::kOverhead + 1 || n > kMaxFrame) return Status::InvalidArgument("peer stream: bad frame length " + std::to_string(n));
  // version | nonce | type | body[0, L - t) into rx_, body[L - t, L) into
  // tail, then the tag into rx_ after the rest.
  const size_t body_len = n - Keyring::kOverhead - 1;
  *tailed = body_len >= tail_len;
  const size_t t = *tailed ? tail_len : 0;
  const size_t front = Keyring::kHead + 1 + body_len - t;
  rx_.resize(front + Keyring::kTag);
  STRATA_RETURN_IF_ERROR(ReadAll(rx_.data(), front, deadline));
  if (t > 0) STRATA_RETURN_IF_ERROR(ReadAll(tail, t, deadline));
  STRATA_RETURN_IF_ERROR(ReadAll(rx_.data() + front, Keyring::kTag, deadline));
  std::vector<Keyring::Span> text{{rx_.data() + Keyring::kHead, front - Keyring::kHead}};
  if (t > 0) text.push_back({tail, t});
  STRATA_RETURN_IF_ERROR(keyring_->OpenSpans(rx_.data(), text, rx_.data() + front, aad_));
  *type = static_cast<FrameType>(static_cast<uint8_t>(rx_[Keyring::kHead]));
  *body = std::string_view(rx_.data() + Keyring::kHead + 1, front - Keyring::kHead - 1);
  return Status::OK();
}

}  // namespace strata::gossip
