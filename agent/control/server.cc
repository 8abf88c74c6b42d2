#include "agent/control/server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <sstream>

#include "agent/base/fd.h"
#include "agent/base/log.h"

namespace strata::control {

namespace {
constexpr uint64_t kRequestTimeoutMs = 10000;

struct Listener {
  Server* server;
  bool is_pipe;
};

Status FromUv(int rc, const std::string& what) {
  if (rc == 0) return Status::OK();
  if (rc == UV_EADDRINUSE) return Status::AlreadyExists(what + ": address in use");
  if (rc == UV_EACCES) return Status::PermissionDenied(what + ": permission denied");
  return Status::IOError(what + ": " + uv_strerror(rc));
}

// True when something accepts connections on the Unix socket `path`.
bool SomeoneListens(const std::string& path) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}
// Whether the process at the other end of a Unix socket may use the
// control API: root, the agent's own user, or a member of `gid` (its
// primary group or one of its supplementary groups).
bool PeerAllowed(int fd, int gid, std::string* who) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    *who = "a peer whose credentials could not be read";
    return false;
  }
  *who = "uid " + std::to_string(cred.uid) + " (pid " + std::to_string(cred.pid) + ")";
  if (cred.uid == 0 || cred.uid == ::geteuid()) return true;
  if (gid < 0) return false;
  if (cred.gid == static_cast<gid_t>(gid)) return true;
  // The supplementary groups of the peer process as the kernel has them.
  std::ifstream status("/proc/" + std::to_string(cred.pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream groups(line.substr(7));
    long g;
    while (groups >> g)
      if (g == gid) return true;
  }
  return false;
}

}  // namespace

// One client connection. Freed when both of its handles are closed.
struct Server::Conn {
  Server* server = nullptr;
  loop::Loop* loop = nullptr;
  union {
    uv_pipe_t pipe;
    uv_tcp_t tcp;
  } h;
  uv_timer_t timer;
  HttpParser parser;
  bool metrics_only = false;  // accepted on the TCP listener
  bool refused = false;       // a peer the control API is not for
  std::string peer;           // who it is: uid N (pid P)
  int open_handles = 2;
  // Shared with pending Reply callbacks: false once the connection closed.
  std::shared_ptr<std::atomic<bool>> alive = std::make_shared<std::atomic<bool>>(true);
  bool replied = false;

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&h); }

  void Close() {
    if (!alive->exchange(false)) return;
    uv_read_stop(stream());
    uv_timer_stop(&timer);
    auto done = [](uv_handle_t* hd) {
      auto* c = static_cast<Conn*>(hd->data);
      if (--c->open_handles == 0) delete c;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&h), done);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), done);
  }

  // Writes the response, then closes (loop thread).
  void Send(std::string data) {
    if (!alive->load() || replied) return;
    replied = true;
    uv_read_stop(stream());
    struct Write {
      uv_write_t req;
      std::string data;
      Conn* conn;
    };
    auto* w = new Write{{}, std::move(data), this};
    uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
    int rc = uv_write(&w->req, stream(), &buf, 1, [](uv_write_t* req, int) {
      auto* w = reinterpret_cast<Write*>(req);
      w->conn->Close();
      delete w;
    });
    if (rc != 0) {
      delete w;
      Close();
    }
  }
};

Server::Server(loop::Loop* loop, Handler handler) : loop_(loop), handler_(std::move(handler)) {}

Server::~Server() {
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

Status Server::ListenUnix(const std::string& path, const std::string& group) {
  if (const ::group* g = group.empty() ? nullptr : ::getgrnam(group.c_str())) group_gid_ = static_cast<int>(g->gr_gid);
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return Status::InvalidArgument("socket path too long: " + path);
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) STRATA_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash)));
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Status::AlreadyExists(path + " exists and is not a socket");
    if (SomeoneListens(path))
      return Status::AlreadyExists("another agent already serves the control socket " + path +
                                   " (use --socket to pick another)");
    ::unlink(path.c_str());  // left by a crashed agent
  }
  pipe_ = new uv_pipe_t;
  uv_pipe_init(loop_->uv(), pipe_, 0);
  pipe_->data = new Listener{this, true};
  mode_t old = ::umask(0117);  // socket file 0660
  int rc = uv_pipe_bind(pipe_, path.c_str());
  ::umask(old);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(pipe_), 64, &Server::OnConnection);
  if (rc != 0) return FromUv(rc, "control socket " + path);
  if (group_gid_ >= 0 && ::chown(path.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(group_gid_)) != 0)
    LOG_WARN("control socket %s: cannot give it group %s: %s", path.c_str(), group.c_str(), std::strerror(errno));
  unix_path_ = path;
  return Status::OK();
}

Status Server::ListenTcp(const std::string& addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return Status::InvalidArgument("bad --metrics-addr '" + addr + "' (use HOST:PORT)");
  std::string host = addr.substr(0, colon);
  int port = std::atoi(addr.c_str() + colon + 1);
  sockaddr_in sa;
  if (port <= 0 || port > 65535 || uv_ip4_addr(host.c_str(), port, &sa) != 0)
    return Status::InvalidArgument("bad --metrics-addr '" + addr + "' (use e.g. 127.0.0.1:9464)");
  tcp_ = new uv_tcp_t;
  uv_tcp_init(loop_->uv(), tcp_);
  tcp_->data = new Listener{this, false};
  int rc = uv_tcp_bind(tcp_, reinterpret_cast<const sockaddr*>(&sa), 0);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_), 64, &Server::OnConnection);
  return FromUv(rc, "metrics address " + addr);
}

void Server::Close() {
  auto close = [](uv_handle_t* h) {
    if (h == nullptr || uv_is_closing(h)) return;
    uv_close(h, [](uv_handle_t* hd) {
      delete static_cast<Listener*>(hd->data);
      if (hd->type == UV_NAMED_PIPE) delete reinterpret_cast<uv_pipe_t*>(hd);
      else delete reinterpret_cast<uv_tcp_t*>(hd);
    });
  };
  close(reinterpret_cast<uv_handle_t*>(pipe_));
  close(reinterpret_cast<uv_handle_t*>(tcp_));
  pipe_ = nullptr;
  tcp_ = nullptr;
}

namespace {
bool ReadOnlyPath(const HttpRequest& r) {
  static const char* const kPaths[] = {"/metrics", "/healthz", "/readyz", "/status", "/status.json"};
  if (r.method != "GET") return false;
  for (const char* p : kPaths)
    if (r.path == p) return true;
  return false;
}
}  // namespace

void Server::OnConnection(uv_stream_t* listener, int status) {
  if (status < 0) return;
  auto* l = static_cast<Listener*>(listener->data);
  auto* c = new Conn();
  c->server = l->server;
  c->loop = l->server->loop_;
  c->metrics_only = !l->is_pipe;
  if (l->is_pipe) uv_pipe_init(c->loop->uv(), &c->h.pipe, 0);
  else uv_tcp_init(c->loop->uv(), &c->h.tcp);
  c->h.pipe.data = c;  // data is the first field of every handle
  uv_timer_init(c->loop->uv(), &c->timer);
  c->timer.data = c;
  if (uv_accept(listener, c->stream()) != 0) {
    c->Close();
    return;
  }
  if (l->is_pipe) {
    // Judged now, answered once the request is read (a client still
    // writing would see a reset instead of the reason).
    uv_os_fd_t fd = -1;
    c->refused = uv_fileno(reinterpret_cast<uv_handle_t*>(c->stream()), &fd) != 0 ||
                 !PeerAllowed(fd, c->server->group_gid_, &c->peer);
  }
  uv_timer_start(&c->timer, [](uv_timer_t* t) {
    auto* c = static_cast<Conn*>(t->data);
    if (!c->replied) c->Send(HttpResponse(400, "text/plain", "request timed out\n"));
  }, kRequestTimeoutMs, 0);
  uv_read_start(
      c->stream(),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static thread_local char storage[64 * 1024];
        *buf = uv_buf_init(storage, sizeof(storage));
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* c = static_cast<Conn*>(s->data);
        if (n < 0) {
          c->Close();
          return;
        }
        if (n == 0 || c->replied) return;
        HttpParser::State st = c->parser.Feed(std::string_view(buf->base, static_cast<size_t>(n)));
        if (st == HttpParser::State::kError) {
          c->Send(HttpResponse(400, "text/plain", "bad request: " + c->parser.error() + "\n"));
        } else if (st == HttpParser::State::kDone) {
          uv_read_stop(s);
          uv_timer_stop(&c->timer);
          if (c->refused) {
            LOG_WARN("control socket: refused %s (the API is for root, the agent's user and the control group)",
                     c->peer.c_str());
            // As the API's errors are: JSON, which agentctl prints (the text holds no quotes).
            c->Send(HttpResponse(403, "application/json",
                                 "{\"error\": \"forbidden: the control API is for root, the agent's user and the "
                                 "control group; " + c->peer + " is none of them\"}\n"));
            return;
          }
          // The TCP listener is for scrapers, probes and the status page,
          // all read-only: the control API stays on the Unix socket, whose
          // peers' credentials say who may use it.
          if (c->metrics_only && !ReadOnlyPath(c->parser.request())) {
            c->Send(HttpResponse(404, "text/plain", "only GET /metrics, /healthz, /readyz and /status are served here\n"));
            return;
          }
          std::shared_ptr<std::atomic<bool>> alive = c->alive;
          loop::Loop* loop = c->loop;
          Reply reply = [c, alive, loop](int code, const std::string& type, const std::string& body) {
            std::string data = HttpResponse(code, type, body);
            loop->Post([c, alive, data = std::move(data)]() mutable {
              if (alive->load()) c->Send(std::move(data));
            });
          };
          c->server->handler_(c->parser.request(), std::move(reply));
        }
      });
}

}  // namespace strata::control
