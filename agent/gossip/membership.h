// SWIM membership with the Lifeguard extensions, as a state machine: no
// sockets, no threads, no clock of its own. The transport feeds it packets
// (OnPacket) and time (Tick), and sends what it leaves in the outbox; tests
// run many of them over an in-memory network with loss and partitions.
//
// - Probes: every probe interval one member, in a shuffled round-robin
//   order, gets a ping; no ack within the probe timeout sends indirect pings
//   through `indirect_checks` others (who answer nacks when the target is
//   silent to them too); no ack by the interval's end makes it suspect.
// - Suspicion (Lifeguard "dogpile"): the timer starts at max and shrinks
//   toward min as independent members confirm; it ends in dead. A member
//   refutes a suspicion of itself with a higher incarnation.
// - Local health (Lifeguard): missed nacks and refutations raise this
//   member's awareness score, which stretches its own probe interval and
//   timeout: a slow member doubts itself before it accuses others.
// - Dissemination: updates ride on pings and acks and on gossip packets to
//   `gossip_nodes` members every gossip interval, each sent at most
//   retransmit_mult * ceil(log10(N + 1)) times; a newer update of a member
//   replaces the older one in the queue.
// - Push-pull (anti-entropy, and joining): full state exchanged over a
//   stream by the transport; MergeRemote folds it in (a remote dead becomes
//   a local suspicion, so a live member can still refute it).
// - Leave: a dead-message about itself from itself (state "left").
//   Dead and left members are reaped after `reap_ms` (no ghosts).
//
// Thread safety: every public method may be called from any thread (one
// mutex); the transport drains the outbox after each call.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "agent/gossip/wire.h"

namespace strata::gossip {

struct MembershipOptions {
  std::string name;  // unique in the cluster
  std::string addr;  // host:port where the others reach it
  NodeMeta meta;
  int probe_interval_ms = 500;
  int probe_timeout_ms = 200;
  int indirect_checks = 3;
  int suspicion_mult = 3;
  int suspicion_max_mult = 6;
  int retransmit_mult = 4;
  int gossip_interval_ms = 100;
  int gossip_nodes = 3;
  int gossip_to_dead_ms = 15000;  // keep telling the recently dead (so they learn and refute)
  int awareness_max = 8;
  int reap_ms = 60000;            // dead and left members are forgotten after this
  size_t packet_size = 1400;      // bytes of plaintext per packet
  uint64_t seed = 0;              // 0: random
};

struct Member {
  std::string name, addr;
  uint32_t incarnation = 0;
  State state = State::kAlive;
  int64_t state_ms = 0;  // when the state last changed
  NodeMeta meta;
  int rtt_ms = -1;       // last direct probe's round trip (-1: none yet)
};

struct MembershipStats {
  uint64_t probes = 0, probe_failures = 0, indirect_probes = 0;
  uint64_t suspicions = 0, refutations = 0, deaths = 0;
  uint64_t packets_in = 0, packets_out = 0, bytes_in = 0, bytes_out = 0;
  uint64_t malformed = 0;
  int awareness = 0;
};

class Membership {
 public:
  struct Outgoing {
    std::string addr;
    std::string packet;  // plaintext: the transport seals it
  };

  explicit Membership(MembershipOptions opts);

  // A packet (plaintext) from the network.
  void OnPacket(std::string_view packet, int64_t now_ms);
  // Runs what is due at `now_ms` (call every ~10-50 ms).
  void Tick(int64_t now_ms);
  // Push-pull: our state for a peer, and a peer's state folded in.
  PushPull LocalState(bool join);
  void MergeRemote(const PushPull& remote, int64_t now_ms);
  // Announces our departure; the transport then sends the outbox for a moment.
  void Leave(int64_t now_ms);
  // Changes what we tell about ourselves (a new incarnation, gossiped).
  void SetMeta(const NodeMeta& meta, int64_t now_ms);

  std::vector<Outgoing> TakeOutbox();
  std::vector<Member> Members();  // self first
  Member Self();
  MembershipStats Stats();
  std::vector<std::string> AliveAddrs();  // push-pull partners (not self)
  std::vector<std::string> DeadAddrs();   // dead, not left: tried now and then (a healed partition)

 private:
  struct Probe {
    std::string target;
    uint32_t seq = 0;
    int64_t sent_ms = 0, timeout_ms = 0, end_ms = 0;
    bool acked = false, indirect = false, done = true;
    int nacks_expected = 0, nacks = 0;
  };
  struct Relay {  // an indirect ping we forward
    std::string origin_addr;
    uint32_t origin_seq = 0;
    bool want_nack = false;
    int64_t deadline_ms = 0;
  };
  struct Suspicion {
    uint32_t incarnation = 0;
    int64_t start_ms = 0, min_ms = 0, max_ms = 0;
    int k = 0;
    std::set<std::string> confirmers;
  };
  struct Broadcast {
    std::string node;
    std::string bytes;  // an encoded message
    int transmits = 0;
  };

  void HandleLocked(const Message& m, int64_t now);
  void OnAliveLocked(const Message& m, int64_t now);
  void OnSuspectLocked(const Message& m, int64_t now);
  void OnDeadLocked(const Message& m, int64_t now);
  void RefuteLocked(uint32_t heard, int64_t now);
  void RefuteOrRepeatLocked(uint32_t heard, int64_t now);
  void StartProbeLocked(int64_t now);
  void FinishProbeLocked(int64_t now);
  void SuspectLocked(Member& m, uint32_t inc, const std::string& from, int64_t now);
  void DeclareDeadLocked(Member& m, int64_t now);
  void BroadcastLocked(const Message& m);
  void SendLocked(const std::string& addr, const Message& m, bool piggyback);
  // Appends pending updates that fit in the packet.
  void PiggybackLocked(WireWriter* w);
  std::vector<std::string> PickLocked(size_t n, const std::set<std::string>& exclude, bool with_dead, int64_t now);
  Message AliveOfSelfLocked() const;
  int ScaledLocked(int ms) const { return ms * (awareness_ + 1); }
  size_t AliveCountLocked() const;
  int RetransmitLimitLocked() const;
  int64_t SuspicionTimeoutLocked(const Suspicion& s) const;

  const MembershipOptions opts_;
  std::mutex mu_;
  // Guarded by mu_.
  Member self_;
  std::map<std::string, Member> members_;  // not self
  std::vector<std::string> order_;         // probe order
  size_t next_ = 0;
  Probe probe_;
  uint32_t seq_ = 0;
  int64_t next_probe_ms_ = 0, next_gossip_ms_ = 0;
  std::map<uint32_t, Relay> relays_;
  std::map<std::string, Suspicion> suspicions_;
  std::vector<Broadcast> broadcasts_;
  std::vector<Outgoing> outbox_;
  int awareness_ = 0;
  bool leaving_ = false;
  MembershipStats stats_;
  std::mt19937_64 rng_;
};

}  // namespace strata::gossip
