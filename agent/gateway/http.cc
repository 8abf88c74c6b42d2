#include "agent/gateway/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "agent/base/clock.h"
#include "agent/base/hash.h"
#include "agent/base/log.h"
#include "agent/gossip/stream.h"

namespace strata::gateway {

namespace {

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Status";
  }
}

}  // namespace

// One client connection: the socket (and TLS session), a read buffer, and
// deadline-bound reads and writes.
class Conn {
 public:
  Conn(Fd fd, SSL* ssl, std::string remote) : fd_(std::move(fd)), ssl_(ssl), remote_(std::move(remote)) {}
  ~Conn() {
    if (ssl_ != nullptr) SSL_free(ssl_);
  }
  // Wakes a blocked read or write (Server::Stop).
  void Shutdown() { ::shutdown(fd_.get(), SHUT_RDWR); }
  // Closes without losing the answer: a client still sending a body it
  // was refused reads our response only if the connection is not reset,
  // so stop writing, then read and drop what it sends for a while.
  void LingerClose() {
    if (ssl_ != nullptr) (void)SSL_shutdown(ssl_);
    ::shutdown(fd_.get(), SHUT_WR);
    const int64_t until = NowMonoMs() + 5000;
    char tmp[64 * 1024];
    uint64_t dropped = 0;
    while (dropped < (256u << 20)) {
      int64_t left = until - NowMonoMs();
      if (left <= 0) break;
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      ssize_t n = ::recv(fd_.get(), tmp, sizeof(tmp), 0);
      if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) break;
      if (n > 0) dropped += static_cast<uint64_t>(n);
    }
  }
  const std::string& remote() const { return remote_; }
  bool tls() const { return ssl_ != nullptr; }

  Status Handshake(int64_t deadline) {
    for (;;) {
      int r = SSL_accept(ssl_);
      if (r == 1) return Status::OK();
      STRATA_RETURN_IF_ERROR(WaitTls(r, deadline, "TLS handshake"));
    }
  }

  // Some bytes into buf_ (appended); Unavailable when the peer closed.
  Status Fill(int64_t deadline) {
    char tmp[64 * 1024];
    for (;;) {
      ssize_t n;
      if (ssl_ != nullptr) {
        int r = SSL_read(ssl_, tmp, sizeof(tmp));
        if (r > 0) {
          buf_.append(tmp, static_cast<size_t>(r));
          return Status::OK();
        }
        if (SSL_get_error(ssl_, r) == SSL_ERROR_ZERO_RETURN) return Status::Unavailable("client closed");
        STRATA_RETURN_IF_ERROR(WaitTls(r, deadline, "read"));
        continue;
      }
      n = ::recv(fd_.get(), tmp, sizeof(tmp), 0);
      if (n > 0) {
        buf_.append(tmp, static_cast<size_t>(n));
        return Status::OK();
      }
      if (n == 0) return Status::Unavailable("client closed");
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Status::FromErrno(errno, "recv");
      STRATA_RETURN_IF_ERROR(WaitFor(POLLIN, deadline, "read"));
    }
  }

  Status WriteAll(const char* p, size_t n, int64_t deadline) {
    while (n > 0) {
      if (ssl_ != nullptr) {
        int r = SSL_write(ssl_, p, static_cast<int>(std::min<size_t>(n, 1 << 30)));
        if (r > 0) {
          p += r;
          n -= static_cast<size_t>(r);
          continue;
        }
        STRATA_RETURN_IF_ERROR(WaitTls(r, deadline, "write"));
        continue;
      }
      return SendAllBy(fd_.get(), p, n, deadline).With("client write");
    }
    return Status::OK();
  }

  Status SendFile(int fd, uint64_t off, uint64_t len, int64_t deadline) {
    if (ssl_ != nullptr) {
      std::string chunk(std::min<uint64_t>(len, 1 << 20), '\0');
      while (len > 0) {
        size_t n = std::min<uint64_t>(len, chunk.size()), got = 0;
        STRATA_RETURN_IF_ERROR(PreadFull(fd, chunk.data(), n, off, &got));
        if (got != n) return Status::IOError("block file shorter than expected");
        STRATA_RETURN_IF_ERROR(WriteAll(chunk.data(), n, deadline));
        off += n;
        len -= n;
      }
      return Status::OK();
    }
    off_t pos = static_cast<off_t>(off);
    while (len > 0) {
      ssize_t w = ::sendfile(fd_.get(), fd, &pos, std::min<uint64_t>(len, 1 << 30));
      if (w > 0) {
        len -= static_cast<uint64_t>(w);
        continue;
      }
      if (w == 0) return Status::IOError("block file shorter than expected");
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Status::FromErrno(errno, "sendfile");
      STRATA_RETURN_IF_ERROR(WaitFor(POLLOUT, deadline, "write"));
    }
    return Status::OK();
  }

  std::string& buf() { return buf_; }

 private:
  Status WaitFor(short events, int64_t deadline, const char* what) {
    int64_t left = deadline - NowMonoMs();
    if (left <= 0) return Status::Timeout(std::string("client ") + what + " timed out");
    pollfd p{fd_.get(), events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r == 0) return Status::Timeout(std::string("client ") + what + " timed out");
    return Status::OK();
  }
  Status WaitTls(int r, int64_t deadline, const char* what) {
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) return WaitFor(POLLIN, deadline, what);
    if (e == SSL_ERROR_WANT_WRITE) return WaitFor(POLLOUT, deadline, what);
    unsigned long err = ERR_get_error();
    char msg[256] = "connection closed";
    if (err != 0) ERR_error_string_n(err, msg, sizeof(msg));
    return Status::IOError(std::string("TLS ") + what + ": " + msg);
  }

  Fd fd_;
  SSL* ssl_;
  std::string remote_;
  std::string buf_;  // bytes read and not consumed yet
};

// --- body ---

Status Body::ReadChunkHeader() {
  // "<hex size>[;ext]\r\n"; after the last (0) chunk, trailers and "\r\n".
  for (;;) {
    std::string& b = conn_->buf();
    size_t eol = b.find("\r\n");
    if (eol != std::string::npos) {
      std::string line = b.substr(0, eol);
      b.erase(0, eol + 2);
      size_t semi = line.find(';');
      if (semi != std::string::npos) line.resize(semi);
      line = TrimSpaces(line);
      if (line.empty() || line.size() > 16) return Status::InvalidArgument("bad chunk size");
      uint64_t size = 0;
      for (char c : line) {
        int v = HexValue(c);
        if (v < 0) return Status::InvalidArgument("bad chunk size");
        size = size * 16 + static_cast<uint64_t>(v);
      }
      if (size == 0) {
        // Trailers until an empty line.
        for (;;) {
          std::string& t = conn_->buf();
          size_t e = t.find("\r\n");
          if (e == 0) {
            t.erase(0, 2);
            break;
          }
          if (e != std::string::npos) {
            t.erase(0, e + 2);
            continue;
          }
          if (t.size() > Server::kMaxHead) return Status::InvalidArgument("trailers too long");
          STRATA_RETURN_IF_ERROR(conn_->Fill(NowMonoMs() + Server::kIoMs));
        }
        done_ = true;
        return Status::OK();
      }
      left_ = size;
      in_chunk_ = true;
      return Status::OK();
    }
    if (b.size() > 1024) return Status::InvalidArgument("chunk header too long");
    STRATA_RETURN_IF_ERROR(conn_->Fill(NowMonoMs() + Server::kIoMs));
  }
}

Status Body::SendContinue() {
  expect_continue_ = false;
  static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
  return conn_->WriteAll(kContinue, sizeof(kContinue) - 1, NowMonoMs() + Server::kIoMs);
}

Result<size_t> Body::Read(char* out, size_t n) {
  if (done_ || n == 0) return size_t{0};
  if (expect_continue_) STRATA_RETURN_IF_ERROR(SendContinue());
  if (chunked_ && !in_chunk_) {
    STRATA_RETURN_IF_ERROR(ReadChunkHeader());
    if (done_) return size_t{0};
  }
  std::string& b = conn_->buf();
  if (b.empty()) STRATA_RETURN_IF_ERROR(conn_->Fill(NowMonoMs() + Server::kIoMs));
  size_t take = std::min<uint64_t>({n, left_, b.size()});
  std::memcpy(out, b.data(), take);
  b.erase(0, take);
  left_ -= take;
  if (left_ == 0) {
    if (chunked_) {
      // The chunk's trailing CRLF.
      while (conn_->buf().size() < 2) STRATA_RETURN_IF_ERROR(conn_->Fill(NowMonoMs() + Server::kIoMs));
      if (conn_->buf().compare(0, 2, "\r\n") != 0) return Status::InvalidArgument("chunk not followed by CRLF");
      conn_->buf().erase(0, 2);
      in_chunk_ = false;
    } else {
      done_ = true;
    }
  }
  return take;
}

bool Body::Drain(uint64_t limit) {
  char tmp[64 * 1024];
  uint64_t total = 0;
  while (!done_) {
    Result<size_t> n = Read(tmp, sizeof(tmp));
    if (!n.ok()) return false;
    total += *n;
    if (total > limit) return false;
  }
  return true;
}

// --- response ---

Status Response::SendHead(int status, const Headers& headers, uint64_t length) {
  started_ = true;
  status_ = status;
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  bool has_length = false;
  for (const auto& [k, v] : headers) {
    if (k == "Content-Length") has_length = true;
    h += k + ": " + v + "\r\n";
  }
  if (!has_length && status != 204 && status != 304) h += "Content-Length: " + std::to_string(length) + "\r\n";
  h += close_ ? "Connection: close\r\n\r\n" : "\r\n";
  return conn_->WriteAll(h.data(), h.size(), NowMonoMs() + Server::kIoMs);
}

Status Response::Send(int status, const Headers& headers, std::string_view body) {
  STRATA_RETURN_IF_ERROR(SendHead(status, headers, body.size()));
  return Write(body);
}

Status Response::Write(std::string_view data) {
  if (head_only_ || data.empty()) return Status::OK();
  bytes_out_ += data.size();
  return conn_->WriteAll(data.data(), data.size(), NowMonoMs() + Server::kIoMs);
}

Status Response::SendFile(int fd, uint64_t off, uint64_t len) {
  if (head_only_ || len == 0) return Status::OK();
  bytes_out_ += len;
  return conn_->SendFile(fd, off, len, NowMonoMs() + Server::kIoMs);
}

// --- server ---

Server::Server(ServerOptions opts, Handler handler) : opts_(std::move(opts)), handler_(std::move(handler)) {}

Server::~Server() {
  Stop();
  if (tls_ != nullptr) SSL_CTX_free(tls_);
}

Status Server::Start() {
  if (opts_.tls_cert.empty() != opts_.tls_key.empty())
    return Status::InvalidArgument("gateway TLS needs both --gateway-tls-cert and --gateway-tls-key");
  if (!opts_.tls_cert.empty()) {
    tls_ = SSL_CTX_new(TLS_server_method());
    if (tls_ == nullptr) return Status::IOError("gateway: no TLS context");
    SSL_CTX_set_min_proto_version(tls_, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(tls_, opts_.tls_cert.c_str()) != 1)
      return Status::InvalidArgument("gateway: cannot load the TLS certificate " + opts_.tls_cert);
    if (SSL_CTX_use_PrivateKey_file(tls_, opts_.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(tls_) != 1)
      return Status::InvalidArgument("gateway: the TLS key " + opts_.tls_key + " does not load or match the certificate");
  }
  std::string host;
  uint16_t port = 0;
  STRATA_RETURN_IF_ERROR(gossip::SplitHostPort(opts_.addr, &host, &port).With("--gateway-addr"));
  Result<std::vector<sockaddr_storage>> addrs = gossip::ResolveAll(opts_.addr);
  if (!addrs.ok() || addrs->empty()) return Status::InvalidArgument("--gateway-addr " + opts_.addr + ": does not resolve");
  const sockaddr_storage& ss = addrs->front();
  Fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, "gateway socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0)
    return Status::FromErrno(errno, "gateway: bind " + opts_.addr + (errno == EADDRINUSE ? " (the port is in use)" : ""));
  if (::listen(fd.get(), 512) != 0) return Status::FromErrno(errno, "gateway: listen");
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int p[2];
  if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return Status::FromErrno(errno, "pipe");
  wake_[0].Reset(p[0]);
  wake_[1].Reset(p[1]);
  listen_ = std::move(fd);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return Status::OK();
}

void Server::Stop() {
  if (!acceptor_.joinable()) return;
  stopping_ = true;
  char c = 1;
  (void)!::write(wake_[1].get(), &c, 1);
  acceptor_.join();
  std::unique_lock<std::mutex> lock(mu_);
  for (auto& w : conns_)
    if (auto c = w.lock()) c->Shutdown();
  idle_.wait(lock, [this] { return live_ == 0; });
}

void Server::AcceptLoop() {
  while (!stopping_) {
    pollfd p[2] = {{listen_.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    if (::poll(p, 2, 1000) <= 0 || (p[1].revents & POLLIN)) continue;
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    int cfd = ::accept4(listen_.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0) continue;
    Fd fd(cfd);
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char host[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, host, sizeof(host));
    else if (ss.ss_family == AF_INET6) ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, host, sizeof(host));
    SSL* ssl = nullptr;
    if (tls_ != nullptr) {
      ssl = SSL_new(tls_);
      if (ssl == nullptr) continue;
      SSL_set_fd(ssl, fd.get());
    }
    auto conn = std::make_shared<Conn>(std::move(fd), ssl, host);
    std::lock_guard<std::mutex> lock(mu_);
    // Gone connections leave the list here, so it stays as long as the live ones.
    conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [](const auto& w) { return w.expired(); }), conns_.end());
    if (live_ >= opts_.max_connections) {
      static const char kBusy[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nConnection: close\r\n"
          "Content-Length: 120\r\n\r\n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
          "<Message>Too many connections</Message></Error>\n";
      (void)conn->WriteAll(kBusy, sizeof(kBusy) - 1, NowMonoMs() + 1000);
      continue;
    }
    live_++;
    conns_.push_back(conn);
    std::thread([this, conn] { Serve(conn); }).detach();
  }
}

void Server::Serve(std::shared_ptr<Conn> conn) {
  // The last touch of `this`: Stop may return (and the Server go) as soon
  // as the lock is released.
  auto finish = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    if (--live_ == 0) idle_.notify_all();
  };
  if (conn->tls() && !conn->Handshake(NowMonoMs() + kHeadMs).ok()) return finish();
  bool first = true;
  while (!stopping_) {
    // The head: idle wait for its first byte, then kHeadMs for the rest.
    std::string& b = conn->buf();
    if (b.empty() && !conn->Fill(NowMonoMs() + (first ? kHeadMs : kIdleMs)).ok()) break;
    first = false;
    const int64_t head_deadline = NowMonoMs() + kHeadMs;
    size_t end;
    Status got;
    while ((end = b.find("\r\n\r\n")) == std::string::npos && b.size() <= kMaxHead && got.ok())
      got = conn->Fill(head_deadline);
    Request req;
    Body body;
    Response resp;
    body.conn_ = conn.get();
    resp.conn_ = conn.get();
    std::string why;
    auto refuse = [&](int status, const std::string& code, const std::string& message) {
      resp.Close();
      std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" +
                        message + "</Message></Error>\n";
      (void)resp.Send(status, {{"Content-Type", "application/xml"}}, xml);
    };
    if (end == std::string::npos) {
      if (got.code() == Status::Code::kTimeout) refuse(400, "RequestTimeout", "The request head did not arrive in time");
      else if (b.size() > kMaxHead) refuse(431, "MetadataTooLarge", "The request head is too large");
      break;
    }
    bool parsed = ParseRequestHead(std::string_view(b).substr(0, end), kMaxHeaders, &req, &why);
    b.erase(0, end + 4);
    if (!parsed) {
      refuse(400, "BadRequest", why);
      break;
    }
    req.remote = conn->remote();
    const std::string* te = req.Header("transfer-encoding");
    const std::string* cl = req.Header("content-length");
    if (te != nullptr && LowerAscii(*te) != "chunked") {
      refuse(501, "NotImplemented", "Transfer-Encoding " + *te + " is not supported");
      break;
    }
    if (te != nullptr) {
      body.chunked_ = true;
      body.done_ = false;
    } else if (cl != nullptr) {
      char* e = nullptr;
      errno = 0;
      unsigned long long n = std::strtoull(cl->c_str(), &e, 10);
      if (cl->empty() || *e != '\0' || errno != 0 || (*cl)[0] == '-') {
        refuse(400, "BadRequest", "bad Content-Length");
        break;
      }
      body.left_ = n;
      body.done_ = n == 0;
    }
    const std::string* connection = req.Header("connection");
    if (connection != nullptr && LowerAscii(*connection) == "close") resp.Close();
    if (const std::string* expect = req.Header("expect"); expect != nullptr && LowerAscii(*expect) == "100-continue")
      body.expect_continue_ = !body.done_;
    resp.head_only_ = req.method == "HEAD";
    handler_(req, body, resp);
    if (!resp.started()) {
      resp.Close();
      refuse(500, "InternalError", "no response");
    }
    // The connection is reused only when the body was read to its end. A
    // body never asked for (no 100 Continue) was not sent: just close.
    if (body.unrequested()) break;
    if (!body.Drain(1 << 20)) {
      conn->LingerClose();
      break;
    }
    if (resp.close_) break;
  }
  finish();
}

}  // namespace strata::gateway
