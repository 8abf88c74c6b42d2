// The control server: HTTP/1.1 on a Unix socket (and optionally TCP for
// /metrics), served by the agent's loop. One request per connection; a
// request not complete within 10 s, or malformed, is answered 400 and closed.
//
// Thread safety: Listen* before the loop starts or on the loop thread;
// handlers run on the loop thread; a Reply may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/base/status.h"
#include "agent/control/http.h"
#include "agent/loop/loop.h"

typedef struct uv_stream_s uv_stream_t;
typedef struct uv_pipe_s uv_pipe_t;
typedef struct uv_tcp_s uv_tcp_t;

namespace strata::control {

class Server {
 public:
  // Sends the response; callable once, from any thread, even after the
  // client has gone (then it does nothing).
  using Reply = std::function<void(int status, const std::string& content_type, const std::string& body)>;
  using Handler = std::function<void(const HttpRequest&, Reply)>;

  Server(loop::Loop* loop, Handler handler);
  ~Server();
  // Listens on a Unix socket. A stale socket file is replaced; one another
  // live agent answers on is an error. Who may talk on it is decided by the
  // peer's credentials (SO_PEERCRED), not only by the file's mode: root,
  // the agent's own user, and members of `group` (when it exists; the
  // socket file is then given that group). Anyone else is answered 403.
  Status ListenUnix(const std::string& path, const std::string& group = "strata");
  // "127.0.0.1:9464": serves /metrics only.
  Status ListenTcp(const std::string& addr);
  // Closes the listeners (loop thread).
  void Close();

  struct Conn;

 private:
  static void OnConnection(uv_stream_t* server, int status);
  loop::Loop* const loop_;
  Handler handler_;
  uv_pipe_t* pipe_ = nullptr;
  uv_tcp_t* tcp_ = nullptr;
  std::string unix_path_;
  int group_gid_ = -1;  // the control group, -1 when it does not exist
};

}  // namespace strata::control
