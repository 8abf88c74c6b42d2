// An agent's place in the cluster: the keyring, the SWIM membership, and
// the two transports it runs on.
//
// - Packets (UDP): received and sent on the libuv loop; each is opened with
//   the keyring ("strata/<cluster>/gossip" as associated data) before the
//   membership sees it, and one that does not open is counted and dropped.
//   A timer drives the membership every 10 ms.
// - Streams (TCP, same port): an accept thread and one thread per
//   connection; frames are push-pull state (answered here) or whatever a
//   handler was registered for (peer block reads). A background thread joins
//   (--join, retried until one answers) and runs push-pull every interval.
//
// Start() binds both sockets (a busy port is an error then, before serving);
// Stop() leaves gracefully (the leave is sent before the sockets close).
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/base/fd.h"
#include "agent/base/status.h"
#include "agent/gossip/keyring.h"
#include "agent/gossip/membership.h"
#include "agent/gossip/stream.h"

namespace strata::loop {
class Loop;
}

namespace strata::gossip {

struct ClusterOptions {
  std::string bind = "0.0.0.0:7946";
  std::string advertise;           // "" = the bind address (or this host's first address)
  std::vector<std::string> joins;  // HOST:PORT or dns:NAME[:PORT]
  std::string key_file;
  std::string cluster_name = "strata";
  std::string node_name;  // "" = hostname:port
  int peer_timeout_ms = 1000;
  int push_pull_interval_ms = 30000;
  int join_retry_ms = 2000;
  MembershipOptions membership;  // name, addr filled by Start
};

struct ClusterStats {
  uint64_t rejected_packets = 0;  // did not open with our keys
  uint64_t rejected_streams = 0;
  uint64_t push_pulls = 0;
  uint64_t joined = 0;  // 1 once a join answered (or nothing to join)
};

class Cluster {
 public:
  // Called on a stream thread for a frame of `type`: answer on `conn`;
  // false ends the connection.
  using Handler = std::function<bool(FrameType type, std::string_view body, StreamConn& conn)>;

  explicit Cluster(ClusterOptions opts);
  ~Cluster();

  // Loads the keyring and binds the sockets (errors name the file / port).
  Status Open();
  // Serves packets (on `loop`, running) and streams, joins in the background.
  Status Start(loop::Loop* loop);
  // Leaves (announced to a few members), stops every thread. Idempotent.
  void Stop();

  void SetHandler(FrameType type, Handler h);
  Membership& membership() { return *membership_; }
  Keyring& keyring() { return keyring_; }
  const std::string& name() const { return opts_.membership.name; }
  const std::string& addr() const { return opts_.membership.addr; }
  int peer_timeout_ms() const { return opts_.peer_timeout_ms; }
  std::string StreamAad() const { return "strata/" + opts_.cluster_name + "/stream"; }
  // A sealed stream to another member, from our advertised address.
  Result<StreamConn> Dial(const std::string& addr, int timeout_ms);
  ClusterStats Stats();
  // Push-pull with `addr` now (joining, and anti-entropy).
  Status PushPull(const std::string& addr, bool join);
  // A keyring change ("install", "use", "remove") here and, with `everywhere`,
  // on every alive member (sent with the current primary key, like Serf's
  // `keys` queries). One line per member: "" when it took, else why not.
  std::map<std::string, std::string> KeyOp(const std::string& op, const std::string& key, bool everywhere);

 private:
  struct Udp;
  void StartOnLoop();
  void SendOutbox();  // loop thread
  void PostOutbox();  // any thread
  void AcceptLoop();
  void Serve(Fd fd);
  void BackgroundLoop();
  Status JoinOnce();
  Status ApplyKeyOp(const std::string& op, const std::string& key);
  std::vector<std::string> ExpandJoins();

  ClusterOptions opts_;
  loop::Loop* loop_ = nullptr;  // set by Start
  Keyring keyring_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<Udp> udp_;  // loop thread only after Start
  Fd udp_fd_, tcp_fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                  // guarded by mu_
  std::map<FrameType, Handler> handlers_;  // guarded by mu_
  std::vector<std::thread> conns_;         // guarded by mu_
  std::vector<int> conn_fds_;              // guarded by mu_: shut down at stop
  std::thread accept_, background_;
  std::atomic<uint64_t> rejected_packets_{0}, rejected_streams_{0}, push_pulls_{0}, joined_{0};
};

}  // namespace strata::gossip
