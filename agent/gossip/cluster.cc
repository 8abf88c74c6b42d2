#include "agent/gossip/cluster.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <random>
#include <tuple>

#include "agent/base/clock.h"
#include "agent/base/log.h"
#include "agent/loop/loop.h"

namespace strata::gossip {

namespace {
constexpr int kTickMs = 10;
constexpr int kStreamIdleMs = 120000;  // a pooled peer connection may sit this long between frames

std::string GossipAad(const std::string& cluster) { return "strata/" + cluster + "/gossip"; }

Result<sockaddr_storage> NumericAddr(const std::string& addr) {
  std::string host;
  uint16_t port = 0;
  STRATA_RETURN_IF_ERROR(SplitHostPort(addr, &host, &port));
  sockaddr_storage ss{};
  if (uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss)) == 0) return ss;
  if (uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss)) == 0) return ss;
  Result<std::vector<sockaddr_storage>> all = ResolveAll(addr);
  if (!all.ok()) return all.status();
  if (all->empty()) return Status::NotFound("no address for " + addr);
  return all->front();
}

socklen_t LenOf(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::string FirstHostAddress() {
  ifaddrs* ifs = nullptr;
  std::string out = "127.0.0.1";
  if (::getifaddrs(&ifs) != 0) return out;
  for (ifaddrs* i = ifs; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof(buf));
    if (std::strncmp(buf, "127.", 4) != 0) {
      out = buf;
      break;
    }
  }
  ::freeifaddrs(ifs);
  return out;
}
}  // namespace

// The packet side on the loop: the UDP handle, the tick timer, and the
// resolved addresses of members.
struct Cluster::Udp {
  uv_udp_t handle{};
  uv_timer_t timer{};
  Cluster* self = nullptr;
  std::map<std::string, sockaddr_storage> addrs;
  char buf[65536];
  int open_handles = 0;
  std::promise<void>* closed = nullptr;  // set by Stop, fulfilled once both handles closed
};

Cluster::Cluster(ClusterOptions opts) : opts_(std::move(opts)) {}

Cluster::~Cluster() { Stop(); }

Status Cluster::Open() {
  if (opts_.key_file.empty())
    return Status::InvalidArgument("a cluster needs --cluster-key-file (one base64 32-byte key per line)");
  Result<Keyring> ring = Keyring::Load(opts_.key_file);
  if (!ring.ok()) return ring.status();
  keyring_ = std::move(*ring);

  std::string host;
  uint16_t port = 0;
  STRATA_RETURN_IF_ERROR(SplitHostPort(opts_.bind, &host, &port));
  Result<sockaddr_storage> bind = NumericAddr(opts_.bind);
  if (!bind.ok()) return bind.status();
  udp_fd_.Reset(::socket(bind->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  tcp_fd_.Reset(::socket(bind->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!udp_fd_.valid() || !tcp_fd_.valid()) return Status::FromErrno(errno, "cluster sockets");
  int one = 1;
  ::setsockopt(tcp_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rcv = 4 << 20;
  ::setsockopt(udp_fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&*bind);
  if (::bind(udp_fd_.get(), sa, LenOf(*bind)) != 0 || ::bind(tcp_fd_.get(), sa, LenOf(*bind)) != 0)
    return Status::FromErrno(errno, "--cluster-bind " + opts_.bind + " (is another agent using the port?)");
  if (::listen(tcp_fd_.get(), 128) != 0) return Status::FromErrno(errno, "listen on " + opts_.bind);

  std::string adv = opts_.advertise;
  if (adv.empty()) adv = (host == "0.0.0.0" || host == "::" ? FirstHostAddress() : host) + ":" + std::to_string(port);
  Result<sockaddr_storage> adv_addr = NumericAddr(adv);
  if (!adv_addr.ok()) return Status::InvalidArgument("--cluster-advertise " + adv + ": " + adv_addr.status().message());
  opts_.membership.addr = adv;
  if (opts_.node_name.empty()) {
    char hn[256] = {0};
    ::gethostname(hn, sizeof(hn) - 1);
    opts_.node_name = std::string(hn) + ":" + std::to_string(port);
  }
  opts_.membership.name = opts_.node_name;
  membership_ = std::make_unique<Membership>(opts_.membership);
  return Status::OK();
}

Status Cluster::Start(loop::Loop* loop) {
  loop_ = loop;
  udp_ = std::make_unique<Udp>();
  udp_->self = this;
  std::promise<Status> started;
  loop_->Post([this, &started] {
    uv_loop_t* l = loop_->uv();
    uv_udp_init(l, &udp_->handle);
    udp_->handle.data = udp_.get();
    int rc = uv_udp_open(&udp_->handle, udp_fd_.get());
    if (rc != 0) {
      started.set_value(Status::IOError(std::string("uv_udp_open: ") + uv_strerror(rc)));
      return;
    }
    udp_->open_handles = 2;
    uv_udp_recv_start(
        &udp_->handle,
        [](uv_handle_t* h, size_t, uv_buf_t* b) {
          auto* u = static_cast<Udp*>(h->data);
          *b = uv_buf_init(u->buf, sizeof(u->buf));
        },
        [](uv_udp_t* h, ssize_t n, const uv_buf_t* b, const sockaddr*, unsigned) {
          auto* u = static_cast<Udp*>(h->data);
          if (n <= 0) return;
          Cluster* c = u->self;
          Result<std::string> plain = c->keyring_.Open(std::string_view(b->base, static_cast<size_t>(n)),
                                                       GossipAad(c->opts_.cluster_name));
          if (!plain.ok()) {
            c->rejected_packets_++;
            return;
          }
          c->membership_->OnPacket(*plain, NowMonoMs());
          c->SendOutbox();
        });
    uv_timer_init(l, &udp_->timer);
    udp_->timer.data = udp_.get();
    uv_timer_start(
        &udp_->timer,
        [](uv_timer_t* t) {
          Cluster* c = static_cast<Udp*>(t->data)->self;
          c->membership_->Tick(NowMonoMs());
          c->SendOutbox();
        },
        kTickMs, kTickMs);
    started.set_value(Status::OK());
  });
  STRATA_RETURN_IF_ERROR(started.get_future().get());
  udp_fd_.Release();  // the uv handle owns it now
  accept_ = std::thread([this] { AcceptLoop(); });
  background_ = std::thread([this] { BackgroundLoop(); });
  LOG_INFO("cluster: %s at %s (cluster '%s'), %zu key(s)", opts_.node_name.c_str(), opts_.membership.addr.c_str(),
           opts_.cluster_name.c_str(), keyring_.size());
  return Status::OK();
}

void Cluster::SendOutbox() {
  // Loop thread only.
  for (Membership::Outgoing& o : membership_->TakeOutbox()) {
    auto it = udp_->addrs.find(o.addr);
    if (it == udp_->addrs.end()) {
      Result<sockaddr_storage> a = NumericAddr(o.addr);
      if (!a.ok()) continue;
      it = udp_->addrs.emplace(o.addr, *a).first;
      if (udp_->addrs.size() > 4096) udp_->addrs.clear();
    }
    Result<std::string> sealed = keyring_.Seal(o.packet, GossipAad(opts_.cluster_name));
    if (!sealed.ok()) continue;
    uv_buf_t b = uv_buf_init(sealed->data(), static_cast<unsigned>(sealed->size()));
    uv_udp_try_send(&udp_->handle, &b, 1, reinterpret_cast<const sockaddr*>(&it->second));  // loss is gossip's weather
  }
}

void Cluster::PostOutbox() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stopping_ && udp_) loop_->Post([this] { SendOutbox(); });
}

void Cluster::SetHandler(FrameType type, Handler h) {
  std::lock_guard<std::mutex> lock(mu_);
  handlers_[type] = std::move(h);
}

void Cluster::AcceptLoop() {
  for (;;) {
    int fd = ::accept4(tcp_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      if (fd >= 0) ::close(fd);
      return;
    }
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      LOG_WARN("cluster: accept: %s", std::strerror(errno));
      continue;
    }
    conn_fds_.push_back(fd);
    conns_.emplace_back([this, fd] { Serve(Fd(fd)); });
  }
}

void Cluster::Serve(Fd fd) {
  int raw = fd.get();
  StreamConn conn(std::move(fd), &keyring_, StreamAad());
  for (;;) {
    FrameType type;
    std::string_view body;
    Status s = conn.Receive(&type, &body, kStreamIdleMs);
    if (!s.ok()) {
      if (s.code() == Status::Code::kPermissionDenied || s.code() == Status::Code::kInvalidArgument) {
        rejected_streams_++;
        LOG_DEBUG("cluster: stream refused: %s", s.message().c_str());
      }
      break;
    }
    if (type == FrameType::kPushPull) {
      gossip::PushPull remote;
      if (!DecodePushPull(body, &remote)) {
        rejected_streams_++;
        break;
      }
      gossip::PushPull mine = membership_->LocalState(false);
      membership_->MergeRemote(remote, NowMonoMs());
      PostOutbox();
      push_pulls_++;
      if (!conn.Send(FrameType::kPushPull, EncodePushPull(mine), opts_.peer_timeout_ms * 5).ok()) break;
      continue;
    }
    if (type == FrameType::kKeyOp) {
      WireReader r(body);
      std::string op = r.Str(16), key = r.Str(128);
      std::string answer = r.done() ? ApplyKeyOp(op, key).message() : "malformed key operation";
      if (!conn.Send(FrameType::kKeyOp, answer, opts_.peer_timeout_ms * 5).ok()) break;
      continue;
    }
    Handler h;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = handlers_.find(type);
      if (it != handlers_.end()) h = it->second;
    }
    if (!h || !h(type, body, conn)) break;
  }
  std::lock_guard<std::mutex> lock(mu_);
  conn_fds_.erase(std::remove(conn_fds_.begin(), conn_fds_.end(), raw), conn_fds_.end());
}

Result<StreamConn> Cluster::Dial(const std::string& addr, int timeout_ms) {
  std::string host;
  uint16_t port = 0;
  if (!SplitHostPort(opts_.membership.addr, &host, &port).ok()) host.clear();
  return StreamConn::Dial(addr, &keyring_, StreamAad(), timeout_ms, host);
}

Status Cluster::PushPull(const std::string& addr, bool join) {
  int timeout = std::max(1000, opts_.peer_timeout_ms * 3);
  Result<StreamConn> conn = Dial(addr, timeout);
  if (!conn.ok()) return conn.status();
  STRATA_RETURN_IF_ERROR(conn->Send(FrameType::kPushPull, EncodePushPull(membership_->LocalState(join)), timeout));
  FrameType type;
  std::string_view body;
  Status s = conn->Receive(&type, &body, timeout);
  if (!s.ok()) {
    if (s.code() == Status::Code::kTimeout || s.code() == Status::Code::kUnavailable)
      return Status::Unavailable(addr + " did not answer the push-pull (" + s.message() +
                                 "; a member without our key or cluster name closes the stream)");
    return s;
  }
  gossip::PushPull remote;
  if (type != FrameType::kPushPull || !DecodePushPull(body, &remote))
    return Status::InvalidArgument(addr + " answered the push-pull with a malformed frame");
  membership_->MergeRemote(remote, NowMonoMs());
  PostOutbox();
  push_pulls_++;
  return Status::OK();
}

Status Cluster::ApplyKeyOp(const std::string& op, const std::string& key) {
  Result<Key> k = ParseKey(key);
  if (!k.ok()) return k.status();
  Status s = op == "install" ? keyring_.Install(*k)
             : op == "use"   ? keyring_.Use(*k)
             : op == "remove" ? keyring_.Remove(*k)
                              : Status::InvalidArgument("unknown key operation '" + op + "'");
  if (s.ok()) LOG_INFO("cluster: key %s: %s...", op.c_str(), key.substr(0, 6).c_str());
  return s;
}

std::map<std::string, std::string> Cluster::KeyOp(const std::string& op, const std::string& key, bool everywhere) {
  std::map<std::string, std::string> out;
  std::vector<Member> members = everywhere ? membership_->Members() : std::vector<Member>{membership_->Self()};
  // Others first: a "use" must not leave them unable to open our frames.
  const int timeout = std::max(1000, opts_.peer_timeout_ms * 3);
  for (const Member& m : members) {
    if (m.name == opts_.membership.name || m.state != State::kAlive) continue;
    WireWriter w;
    w.Str(op);
    w.Str(key);
    Result<StreamConn> c = Dial(m.addr, timeout);
    Status s = c.ok() ? c->Send(FrameType::kKeyOp, w.out(), timeout) : c.status();
    FrameType type;
    std::string_view answer;
    if (s.ok()) s = c->Receive(&type, &answer, timeout);
    out[m.name] = s.ok() ? std::string(answer) : s.message();
  }
  out[opts_.membership.name] = ApplyKeyOp(op, key).message();
  return out;
}

namespace {

// The SRV records of `name` as (target, port), lowest priority first; none
// when it has none or does not resolve. The resolver's own deadline bounds
// the wait (2 s per try, 2 tries).
std::vector<std::pair<std::string, std::string>> LookupSrv(const std::string& name) {
  std::vector<std::pair<std::string, std::string>> out;
  struct __res_state st {};
  if (::res_ninit(&st) != 0) return out;
  st.retrans = 2;
  st.retry = 2;
  std::vector<unsigned char> answer(8192);
  int n = ::res_nquery(&st, name.c_str(), ns_c_in, ns_t_srv, answer.data(), static_cast<int>(answer.size()));
  ns_msg msg;
  if (n > 0 && ::ns_initparse(answer.data(), n, &msg) == 0) {
    std::vector<std::tuple<uint16_t, std::string, std::string>> found;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
      ns_rr rr;
      if (::ns_parserr(&msg, ns_s_an, i, &rr) != 0 || ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7) continue;
      const unsigned char* rd = ns_rr_rdata(rr);
      char target[NS_MAXDNAME];
      if (::dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 6, target, sizeof(target)) < 0) continue;
      if (std::string_view(target) == "." || target[0] == '\0') continue;  // "no such service here"
      found.emplace_back(ns_get16(rd), target, std::to_string(ns_get16(rd + 4)));
    }
    std::stable_sort(found.begin(), found.end(),
                     [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
    for (auto& [prio, target, port] : found) out.emplace_back(std::move(target), std::move(port));
  }
  ::res_nclose(&st);
  return out;
}

// Appends every A/AAAA address of `host` as HOST:PORT (IPv6 bracketed),
// leaving out `self` and duplicates; false when it does not resolve.
bool AppendAddresses(const std::string& host, const std::string& port, const std::string& self,
                     std::vector<std::string>* out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return false;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    if (a->ai_family == AF_INET)
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, buf, sizeof(buf));
    else
      ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, buf, sizeof(buf));
    std::string addr = a->ai_family == AF_INET6 ? "[" + std::string(buf) + "]:" + port : std::string(buf) + ":" + port;
    if (addr != self && std::find(out->begin(), out->end(), addr) == out->end()) out->push_back(addr);
  }
  ::freeaddrinfo(res);
  return true;
}

}  // namespace

std::vector<std::string> Cluster::ExpandJoins() {
  std::vector<std::string> out;
  const std::string& self = opts_.membership.addr;
  for (const std::string& j : opts_.joins) {
    if (j.rfind("dns:", 0) != 0) {
      out.push_back(j);
      continue;
    }
    // dns:NAME:PORT: every A/AAAA record of NAME at PORT. dns:NAME: its SRV
    // records (target and port each) when it has any, as a Kubernetes
    // headless service's named port does, else every A/AAAA record at the
    // bind port.
    std::string rest = j.substr(4), host = rest;
    std::string port;
    size_t colon = rest.rfind(':');
    if (colon != std::string::npos && rest.find(':') == colon) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
    }
    bool resolved = false;
    if (port.empty()) {
      for (const auto& [target, srv_port] : LookupSrv(host))
        resolved = AppendAddresses(target, srv_port, self, &out) || resolved;
      if (!resolved) port = opts_.bind.substr(opts_.bind.rfind(':') + 1);
    }
    if (!resolved) resolved = AppendAddresses(host, port, self, &out);
    if (!resolved) LOG_WARN("cluster: --join %s: the name does not resolve (yet)", j.c_str());
  }
  return out;
}

Status Cluster::JoinOnce() {
  std::vector<std::string> seeds = ExpandJoins();
  if (seeds.empty() && opts_.joins.empty()) return Status::OK();
  Status last = Status::Unavailable("no join address resolves");
  size_t ok = 0;
  for (const std::string& s : seeds) {
    if (s == opts_.membership.addr) continue;
    Status r = PushPull(s, true);
    if (r.ok()) ok++;
    else last = r;
  }
  return ok > 0 ? Status::OK() : last;
}

void Cluster::BackgroundLoop() {
  std::mt19937_64 rng(std::random_device{}());
  int64_t next_push_pull = NowMonoMs() + opts_.push_pull_interval_ms;
  bool joined = false;
  int attempts = 0;
  for (;;) {
    if (!joined) {
      Status s = JoinOnce();
      joined = s.ok();
      attempts++;
      if (joined) {
        joined_ = 1;
        if (!opts_.joins.empty()) LOG_INFO("cluster: joined (%zu member(s) known)", membership_->Members().size());
      } else if ((attempts & (attempts - 1)) == 0) {
        LOG_WARN("cluster: join failed (%s); retrying", s.message().c_str());
      }
    } else if (NowMonoMs() >= next_push_pull) {
      // Anti-entropy with one random live member.
      std::vector<std::string> addrs = membership_->AliveAddrs();
      if (!addrs.empty()) {
        Status s = PushPull(addrs[rng() % addrs.size()], false);
        if (!s.ok()) LOG_DEBUG("cluster: push-pull: %s", s.message().c_str());
      }
      // A member we think dead may be on the other side of a healed
      // partition: try one (Serf's reconnect).
      std::vector<std::string> dead = membership_->DeadAddrs();
      if (!dead.empty()) (void)PushPull(dead[rng() % dead.size()], false);
      next_push_pull = NowMonoMs() + opts_.push_pull_interval_ms;
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(joined ? 200 : opts_.join_retry_ms), [&] { return stopping_; }))
      return;
  }
}

void Cluster::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !membership_) return;
    stopping_ = true;
    for (int fd : conn_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  if (udp_) {
    // The leave goes out before the socket closes.
    membership_->Leave(NowMonoMs());
    std::promise<void> closed;
    std::future<void> done = closed.get_future();
    udp_->closed = &closed;
    loop_->Post([this] {
      SendOutbox();
      uv_timer_stop(&udp_->timer);
      uv_udp_recv_stop(&udp_->handle);
      auto on_close = [](uv_handle_t* h) {
        auto* u = static_cast<Udp*>(h->data);
        if (--u->open_handles == 0) u->closed->set_value();
      };
      uv_close(reinterpret_cast<uv_handle_t*>(&udp_->timer), on_close);
      uv_close(reinterpret_cast<uv_handle_t*>(&udp_->handle), on_close);
    });
    if (done.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      LOG_WARN("cluster: the loop did not close the gossip socket in time");
      udp_.release();  // still referenced by the loop: leaked rather than freed under it
    }
  }
  ::shutdown(tcp_fd_.get(), SHUT_RDWR);
  if (accept_.joinable()) accept_.join();
  if (background_.joinable()) background_.join();
  std::vector<std::thread> conns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    conns.swap(conns_);
  }
  for (std::thread& t : conns) t.join();
  tcp_fd_.Reset();
}

ClusterStats Cluster::Stats() {
  ClusterStats s;
  s.rejected_packets = rejected_packets_;
  s.rejected_streams = rejected_streams_;
  s.push_pulls = push_pulls_;
  s.joined = joined_;
  return s;
}

}  // namespace strata::gossip
