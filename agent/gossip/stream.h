// Framed, sealed streams between agents (push-pull state, peer block
// transfers) over TCP: blocking sockets whose every wait has a deadline.
//
// A frame is  length u32 | sealed( type u8 | body ), sealed by the keyring
// with "strata/<cluster>/stream" as associated data. A frame that does not
// open (no key, wrong key, another cluster) or is longer than the limit
// ends the connection; the other side gets no byte of ours.
//
// Thread safety: a StreamConn is used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/socket.h>

#include "agent/base/fd.h"
#include "agent/base/status.h"
#include "agent/gossip/keyring.h"

namespace strata::gossip {

enum class FrameType : uint8_t {
  kPushPull = 1,      // body: EncodePushPull; answered with our own
  kBlockRequest = 2,  // peer block read (agent/peer)
  kBlockReply = 3,
  kKeyOp = 4,         // keyring change: op | key, answered with "" or an error
  kCached = 5,        // what a member holds of a version (agent/peer), answered with kCached
};

constexpr size_t kMaxFrame = 80u << 20;

// "host:port" or "[v6]:port" split; port required.
Status SplitHostPort(const std::string& addr, std::string* host, uint16_t* port);
// Numeric or resolved (getaddrinfo) socket addresses of "host:port".
Result<std::vector<sockaddr_storage>> ResolveAll(const std::string& addr);

class StreamConn {
 public:
  StreamConn(Fd fd, const Keyring* keyring, std::string aad) : fd_(std::move(fd)), keyring_(keyring), aad_(std::move(aad)) {}
  // Connects within `timeout_ms`, from `source_host` when given (the
  // address this agent advertises: its peers see the connection come from it).
  static Result<StreamConn> Dial(const std::string& addr, const Keyring* keyring, std::string aad, int timeout_ms,
                                 const std::string& source_host = "");

  // Sends one frame; fails when the socket does not take it by the deadline.
  Status Send(FrameType type, std::string_view body, int timeout_ms);
  // A frame built where it is sent from (large bodies: no copy): the body
  // goes at BodyOf(*frame), `body_len` bytes; SendFrame seals it in place.
  // `frame` may be reused from frame to frame (its memory is kept).
  static void NewFrame(std::string* frame, FrameType type, size_t body_len);
  static char* BodyOf(std::string& frame);
  Status SendFrame(std::string& frame, int timeout_ms);
  // Receives one frame, opened where it was read: *body stays valid until
  // the next Receive. Timeout when nothing complete came in time;
  // PermissionDenied when it does not open with our keys.
  Status Receive(FrameType* type, std::string_view* body, int timeout_ms);
  // Receive, with the end of a large body opened straight into `tail` (a
  // block's bytes into the buffer they are for): when the body is at least
  // `tail_len` bytes, its last `tail_len` go to `tail`, *body is the rest
  // and *tailed is true. On an error `tail` holds nothing usable.
  Status ReceiveTail(FrameType* type, std::string_view* body, char* tail, size_t tail_len, bool* tailed,
                     int timeout_ms);
  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }

 private:
  Status WriteAll(const char* p, size_t n, int64_t deadline_ms);
  Status ReadAll(char* p, size_t n, int64_t deadline_ms);
  Fd fd_;
  const Keyring* keyring_;
  std::string aad_;
  std::string rx_;  // the last frame received (bodies point into it)
};

}  // namespace strata::gossip
