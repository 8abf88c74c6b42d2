// The gateway's HTTP/1.1 server: persistent connections (keep-alive), a
// thread per connection up to a cap, streamed request bodies (Content-Length
// or chunked; a 5 GiB PUT never sits in memory) and streamed responses,
// optionally over TLS (OpenSSL). Every wait has a deadline: the request head
// must arrive within kHeadMs of its first byte (a client that sends headers
// slowly is cut off), an idle keep-alive connection is closed after kIdleMs,
// and each read or write of a body may stall at most kIoMs.
//
// Limits: request line and headers at most kMaxHead bytes and kMaxHeaders
// lines; anything malformed is answered 400 and the connection closed.
//
// Thread safety: Server methods from one thread (the agent's start/stop);
// the handler runs on connection threads, several at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "agent/base/fd.h"
#include "agent/base/status.h"
#include "agent/gateway/request.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace strata::gateway {

class Conn;

// The request body, read as the handler consumes it.
class Body {
 public:
  // Up to `n` bytes; 0 at the end. IOError / Timeout when the client fails.
  Result<size_t> Read(char* buf, size_t n);
  // Reads and discards the rest (so the connection can be reused), at most
  // `limit` bytes; false when more was left or the client failed.
  bool Drain(uint64_t limit);
  bool done() const { return done_; }
  // The client waits for "100 Continue" that was never sent: it sends no body.
  bool unrequested() const { return expect_continue_; }
  // Bytes declared (Content-Length), or nullopt when chunked.
  std::optional<uint64_t> length() const { return chunked_ ? std::nullopt : std::optional<uint64_t>(left_); }

 private:
  friend class Conn;
  friend class Server;
  Conn* conn_ = nullptr;
  bool chunked_ = false;
  bool done_ = true;
  uint64_t left_ = 0;        // of the body (Content-Length) or the current chunk
  bool in_chunk_ = false;
  // "Expect: 100-continue": the 100 goes out when the handler first reads,
  // so a request refused before its body is read is never sent one.
  bool expect_continue_ = false;
  Status SendContinue();
  Status ReadChunkHeader();
};

// The response, written once (a whole one) or as a head then a stream.
class Response {
 public:
  // A complete response; `headers` need not say Content-Length.
  Status Send(int status, const Headers& headers, std::string_view body);
  // The head of a response of `length` body bytes, then Write/SendFile them.
  Status SendHead(int status, const Headers& headers, uint64_t length);
  Status Write(std::string_view data);
  // Body bytes from a file: sendfile(2) on plain TCP (no copy through user
  // space), read and written under TLS.
  Status SendFile(int fd, uint64_t off, uint64_t len);
  bool started() const { return started_; }
  // The connection is closed after this response.
  void Close() { close_ = true; }
  int status() const { return status_; }
  uint64_t bytes_out() const { return bytes_out_; }

 private:
  friend class Conn;
  friend class Server;
  Conn* conn_ = nullptr;
  bool started_ = false;
  bool close_ = false;
  bool head_only_ = false;  // a HEAD request: no body bytes go out
  int status_ = 0;
  uint64_t bytes_out_ = 0;
};

struct ServerOptions {
  std::string addr;  // "0.0.0.0:9000"
  std::string tls_cert, tls_key;  // both or neither
  size_t max_connections = 512;
};

class Server {
 public:
  static constexpr size_t kMaxHead = 64 * 1024;
  static constexpr size_t kMaxHeaders = 100;
  static constexpr int kHeadMs = 10000;
  static constexpr int kIdleMs = 60000;
  static constexpr int kIoMs = 30000;

  using Handler = std::function<void(Request& req, Body& body, Response& resp)>;

  Server(ServerOptions opts, Handler handler);
  ~Server();
  // Binds and starts accepting. InvalidArgument for a bad address or TLS
  // files; the port in use is an error that says so.
  Status Start();
  // Stops accepting, closes every connection, joins the threads.
  void Stop();
  // The bound port (after Start), for ":0" in tests.
  uint16_t port() const { return port_; }

 private:
  void AcceptLoop();
  void Serve(std::shared_ptr<Conn> conn);

  const ServerOptions opts_;
  Handler handler_;
  Fd listen_;
  Fd wake_[2];
  uint16_t port_ = 0;
  SSL_CTX* tls_ = nullptr;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  // Connection threads are detached; Stop waits for live_ to drop to 0.
  std::mutex mu_;
  std::condition_variable idle_;
  std::vector<std::weak_ptr<Conn>> conns_;  // guarded by mu_
  size_t live_ = 0;                         // guarded by mu_
};

}  // namespace strata::gateway
