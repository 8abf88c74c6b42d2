#include "agent/gossip/membership.h"

#include <algorithm>
#include <cmath>

namespace strata::gossip {

Membership::Membership(MembershipOptions opts) : opts_(std::move(opts)), rng_(opts_.seed ? opts_.seed : std::random_device{}()) {
  self_.name = opts_.name;
  self_.addr = opts_.addr;
  self_.meta = opts_.meta;
  self_.incarnation = 1;
}

// --- time ---

void Membership::Tick(int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (leaving_) return;
  // The probe running: indirect pings once the direct one timed out.
  if (!probe_.done && !probe_.acked && !probe_.indirect && now >= probe_.sent_ms + probe_.timeout_ms) {
    probe_.indirect = true;
    auto it = members_.find(probe_.target);
    if (it != members_.end()) {
      std::vector<std::string> relays = PickLocked(static_cast<size_t>(opts_.indirect_checks), {probe_.target}, false, now);
      for (const std::string& r : relays) {
        Message m;
        m.type = MsgType::kIndirectPing;
        m.seq = probe_.seq;
        m.node = probe_.target;
        m.addr = it->second.addr;
        m.from = self_.name;
        m.from_addr = self_.addr;
        m.want_nack = true;
        SendLocked(members_[r].addr, m, false);
        stats_.indirect_probes++;
      }
      probe_.nacks_expected = static_cast<int>(relays.size());
    }
  }
  if (now >= next_probe_ms_) {
    if (!probe_.done) FinishProbeLocked(now);
    StartProbeLocked(now);
    next_probe_ms_ = now + ScaledLocked(opts_.probe_interval_ms);
  }
  // Relayed pings that got no answer: a nack tells the origin we are alive.
  for (auto it = relays_.begin(); it != relays_.end();) {
    if (now < it->second.deadline_ms) {
      ++it;
      continue;
    }
    if (it->second.want_nack) {
      Message n;
      n.type = MsgType::kNack;
      n.seq = it->second.origin_seq;
      SendLocked(it->second.origin_addr, n, false);
    }
    it = relays_.erase(it);
  }
  // Suspicions whose time ran out (declared after the walk: it erases them).
  std::vector<std::string> expired;
  for (auto it = suspicions_.begin(); it != suspicions_.end();) {
    auto m = members_.find(it->first);
    if (m == members_.end() || m->second.state != State::kSuspect) {
      it = suspicions_.erase(it);
      continue;
    }
    if (now - it->second.start_ms >= SuspicionTimeoutLocked(it->second)) expired.push_back(it->first);
    ++it;
  }
  for (const std::string& name : expired) DeclareDeadLocked(members_[name], now);
  // Gossip: pending updates to a few members (nothing to say: no packet).
  if (now >= next_gossip_ms_) {
    next_gossip_ms_ = now + opts_.gossip_interval_ms;
    if (!broadcasts_.empty()) {
      for (const std::string& name : PickLocked(static_cast<size_t>(opts_.gossip_nodes), {}, true, now)) {
        WireWriter w;
        w.Raw(PacketHeader());
        size_t before = w.size();
        PiggybackLocked(&w);  // a packet of updates only
        if (w.size() > before) {
          stats_.packets_out++;
          stats_.bytes_out += w.size();
          outbox_.push_back({members_[name].addr, std::move(w.out())});
        }
        if (broadcasts_.empty()) break;
      }
    }
  }
  // Reap: dead and left members are forgotten after a while.
  for (auto it = members_.begin(); it != members_.end();) {
    bool gone = it->second.state == State::kDead || it->second.state == State::kLeft;
    if (gone && now - it->second.state_ms >= opts_.reap_ms) {
      order_.erase(std::remove(order_.begin(), order_.end(), it->first), order_.end());
      it = members_.erase(it);
    } else {
      ++it;
    }
  }
}

void Membership::StartProbeLocked(int64_t now) {
  // Next in the shuffled round-robin order; a new round reshuffles.
  std::string target;
  for (size_t tries = 0; tries <= order_.size() && target.empty(); tries++) {
    if (next_ >= order_.size()) {
      std::shuffle(order_.begin(), order_.end(), rng_);
      next_ = 0;
      if (order_.empty()) break;
    }
    const std::string& cand = order_[next_++];
    auto it = members_.find(cand);
    if (it != members_.end() && (it->second.state == State::kAlive || it->second.state == State::kSuspect))
      target = cand;
  }
  if (target.empty()) return;
  probe_ = Probe{};
  probe_.target = target;
  probe_.seq = ++seq_;
  probe_.sent_ms = now;
  probe_.timeout_ms = ScaledLocked(opts_.probe_timeout_ms);
  probe_.done = false;
  Message m;
  m.type = MsgType::kPing;
  m.seq = probe_.seq;
  m.node = target;
  m.from = self_.name;
  m.from_addr = self_.addr;
  SendLocked(members_[target].addr, m, true);
  stats_.probes++;
}

void Membership::FinishProbeLocked(int64_t now) {
  probe_.done = true;
  if (probe_.acked) return;
  // Lifeguard: relays that did not even nack point at our own trouble.
  int delta = probe_.nacks_expected > 0 ? probe_.nacks_expected - probe_.nacks : 1;
  awareness_ = std::clamp(awareness_ + delta, 0, opts_.awareness_max - 1);
  stats_.probe_failures++;
  auto it = members_.find(probe_.target);
  if (it == members_.end() || it->second.state != State::kAlive) return;
  SuspectLocked(it->second, it->second.incarnation, self_.name, now);
}

int64_t Membership::SuspicionTimeoutLocked(const Suspicion& s) const {
  if (s.k <= 0 || s.max_ms <= s.min_ms) return s.min_ms;
  double frac = std::log(static_cast<double>(s.confirmers.size()) + 1.0) / std::log(static_cast<double>(s.k) + 1.0);
  int64_t t = s.max_ms - static_cast<int64_t>(static_cast<double>(s.max_ms - s.min_ms) * frac);
  return std::max(s.min_ms, t);
}

size_t Membership::AliveCountLocked() const {
  size_t n = 1;
  for (auto& [name, m] : members_)
    if (m.state == State::kAlive || m.state == State::kSuspect) n++;
  return n;
}

int Membership::RetransmitLimitLocked() const {
  double n = static_cast<double>(AliveCountLocked());
  return opts_.retransmit_mult * static_cast<int>(std::ceil(std::log10(n + 1)));
}

// --- messages ---

void Membership::OnPacket(std::string_view packet, int64_t now) {
  std::vector<Message> msgs;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.packets_in++;
  stats_.bytes_in += packet.size();
  if (!DecodePacket(packet, &msgs)) {
    stats_.malformed++;
    return;
  }
  for (const Message& m : msgs) HandleLocked(m, now);
}

void Membership::HandleLocked(const Message& m, int64_t now) {
  switch (m.type) {
    case MsgType::kPing: {
      if (m.node != self_.name || m.from_addr.empty()) return;  // meant for a former owner of the address
      Message ack;
      ack.type = MsgType::kAck;
      ack.seq = m.seq;
      ack.node = self_.name;
      SendLocked(m.from_addr, ack, true);
      return;
    }
    case MsgType::kIndirectPing: {
      if (m.addr.empty() || m.from_addr.empty()) return;
      uint32_t seq = ++seq_;
      relays_[seq] = {m.from_addr, m.seq, m.want_nack, now + ScaledLocked(opts_.probe_timeout_ms)};
      Message ping;
      ping.type = MsgType::kPing;
      ping.seq = seq;
      ping.node = m.node;
      ping.from = self_.name;
      ping.from_addr = self_.addr;
      SendLocked(m.addr, ping, false);
      return;
    }
    case MsgType::kAck: {
      if (auto r = relays_.find(m.seq); r != relays_.end()) {
        Message ack;
        ack.type = MsgType::kAck;
        ack.seq = r->second.origin_seq;
        ack.node = m.node;
        SendLocked(r->second.origin_addr, ack, false);
        relays_.erase(r);
        return;
      }
      if (!probe_.done && m.seq == probe_.seq && !probe_.acked) {
        probe_.acked = true;
        if (!probe_.indirect) {
          // In time and direct: our own health looks fine.
          awareness_ = std::max(0, awareness_ - 1);
          auto it = members_.find(probe_.target);
          if (it != members_.end()) it->second.rtt_ms = static_cast<int>(now - probe_.sent_ms);
        }
      }
      return;
    }
    case MsgType::kNack:
      if (!probe_.done && m.seq == probe_.seq) probe_.nacks++;
      return;
    case MsgType::kAlive: OnAliveLocked(m, now); return;
    case MsgType::kSuspect: OnSuspectLocked(m, now); return;
    case MsgType::kDead: OnDeadLocked(m, now); return;
  }
}

void Membership::OnAliveLocked(const Message& m, int64_t now) {
  if (m.node.empty() || m.addr.empty()) return;
  if (m.node == self_.name) {
    // Someone tells an older or forged story of us: outdo it.
    if (m.incarnation > self_.incarnation || (m.incarnation == self_.incarnation && m.addr != self_.addr))
      RefuteLocked(m.incarnation, now);
    return;
  }
  auto it = members_.find(m.node);
  if (it == members_.end()) {
    Member nm;
    nm.name = m.node;
    nm.addr = m.addr;
    nm.incarnation = m.incarnation;
    nm.state = State::kAlive;
    nm.state_ms = now;
    nm.meta = m.meta;
    members_[m.node] = nm;
    // A random place in the probe order: a new member is probed soon.
    std::uniform_int_distribution<size_t> pos(0, order_.size());
    order_.insert(order_.begin() + static_cast<long>(pos(rng_)), m.node);
    BroadcastLocked(m);
    return;
  }
  Member& mm = it->second;
  if (m.incarnation <= mm.incarnation) return;
  if (mm.state != State::kAlive) mm.state_ms = now;
  mm.incarnation = m.incarnation;
  mm.addr = m.addr;
  mm.meta = m.meta;
  mm.state = State::kAlive;
  suspicions_.erase(m.node);
  if (std::find(order_.begin(), order_.end(), m.node) == order_.end()) order_.push_back(m.node);
  BroadcastLocked(m);
}

void Membership::OnSuspectLocked(const Message& m, int64_t now) {
  if (m.node == self_.name) {
    if (!leaving_) RefuteOrRepeatLocked(m.incarnation, now);
    return;
  }
  auto it = members_.find(m.node);
  if (it == members_.end() || m.incarnation < it->second.incarnation) return;
  Member& mm = it->second;
  if (mm.state == State::kDead || mm.state == State::kLeft) return;
  if (mm.state == State::kSuspect) {
    auto s = suspicions_.find(m.node);
    if (s != suspicions_.end() && m.incarnation == s->second.incarnation && !m.from.empty() &&
        s->second.confirmers.insert(m.from).second)
      BroadcastLocked(m);  // a new confirmation: others' timers shrink too
    return;
  }
  SuspectLocked(mm, m.incarnation, m.from, now);
}

void Membership::OnDeadLocked(const Message& m, int64_t now) {
  if (m.node == self_.name) {
    // Also an old "left" of ours (a restart under the same name): refuted.
    if (!leaving_) RefuteOrRepeatLocked(m.incarnation, now);
    return;
  }
  auto it = members_.find(m.node);
  if (it == members_.end() || m.incarnation < it->second.incarnation) return;
  Member& mm = it->second;
  if (mm.state == State::kDead || mm.state == State::kLeft) return;
  mm.incarnation = m.incarnation;
  mm.state = m.from == m.node ? State::kLeft : State::kDead;
  mm.state_ms = now;
  suspicions_.erase(m.node);
  if (mm.state == State::kDead) stats_.deaths++;
  BroadcastLocked(m);
}

void Membership::RefuteOrRepeatLocked(uint32_t heard, int64_t now) {
  // An older story (our refutation got lost, say in a partition): tell the
  // current one again rather than raising the incarnation.
  if (heard < self_.incarnation) {
    BroadcastLocked(AliveOfSelfLocked());
    return;
  }
  RefuteLocked(heard, now);
}

void Membership::RefuteLocked(uint32_t heard, int64_t now) {
  (void)now;
  self_.incarnation = std::max(self_.incarnation, heard) + 1;
  stats_.refutations++;
  // Lifeguard: being suspected hints that we are the slow one.
  awareness_ = std::min(awareness_ + 1, opts_.awareness_max - 1);
  BroadcastLocked(AliveOfSelfLocked());
}

void Membership::SuspectLocked(Member& m, uint32_t inc, const std::string& from, int64_t now) {
  m.state = State::kSuspect;
  m.incarnation = inc;
  m.state_ms = now;
  stats_.suspicions++;
  Suspicion s;
  s.incarnation = inc;
  s.start_ms = now;
  size_t n = AliveCountLocked();
  double scale = std::max(1.0, std::log10(std::max(1.0, static_cast<double>(n))));
  s.min_ms = static_cast<int64_t>(opts_.suspicion_mult * scale * opts_.probe_interval_ms);
  s.max_ms = s.min_ms * opts_.suspicion_max_mult;
  s.k = opts_.suspicion_mult - 2;
  if (n < 2 || static_cast<int>(n) - 2 < s.k) s.k = 0;
  if (from != self_.name && !from.empty()) s.confirmers.insert(from);
  suspicions_[m.name] = std::move(s);
  Message msg;
  msg.type = MsgType::kSuspect;
  msg.incarnation = inc;
  msg.node = m.name;
  msg.from = self_.name;
  BroadcastLocked(msg);
  // Buddy system: tell the suspect first, so it can refute at once.
  SendLocked(m.addr, msg, false);
}

void Membership::DeclareDeadLocked(Member& m, int64_t now) {
  Message msg;
  msg.type = MsgType::kDead;
  msg.incarnation = m.incarnation;
  msg.node = m.name;
  msg.from = self_.name;
  OnDeadLocked(msg, now);
}

Message Membership::AliveOfSelfLocked() const {
  Message m;
  m.type = MsgType::kAlive;
  m.incarnation = self_.incarnation;
  m.node = self_.name;
  m.addr = self_.addr;
  m.meta = self_.meta;
  return m;
}

void Membership::BroadcastLocked(const Message& m) {
  broadcasts_.erase(std::remove_if(broadcasts_.begin(), broadcasts_.end(),
                                   [&](const Broadcast& b) { return b.node == m.node; }),
                    broadcasts_.end());
  WireWriter w;
  EncodeMessage(m, &w);
  broadcasts_.push_back({m.node, std::move(w.out()), 0});
}

void Membership::PiggybackLocked(WireWriter* w) {
  if (broadcasts_.empty()) return;
  // The least sent first; each at most the retransmit limit times.
  std::stable_sort(broadcasts_.begin(), broadcasts_.end(),
                   [](const Broadcast& a, const Broadcast& b) { return a.transmits < b.transmits; });
  int limit = RetransmitLimitLocked();
  for (Broadcast& b : broadcasts_) {
    if (w->size() + b.bytes.size() > opts_.packet_size) continue;
    w->Raw(b.bytes);
    b.transmits++;
  }
  broadcasts_.erase(std::remove_if(broadcasts_.begin(), broadcasts_.end(),
                                   [&](const Broadcast& b) { return b.transmits >= limit; }),
                    broadcasts_.end());
}

void Membership::SendLocked(const std::string& addr, const Message& m, bool piggyback) {
  WireWriter w;
  w.Raw(PacketHeader());
  EncodeMessage(m, &w);
  if (piggyback) PiggybackLocked(&w);
  stats_.packets_out++;
  stats_.bytes_out += w.size();
  outbox_.push_back({addr, std::move(w.out())});
}

std::vector<std::string> Membership::PickLocked(size_t n, const std::set<std::string>& exclude, bool with_dead,
                                                int64_t now) {
  std::vector<std::string> cands;
  for (auto& [name, m] : members_) {
    if (exclude.count(name)) continue;
    bool live = m.state == State::kAlive || m.state == State::kSuspect;
    bool recent_dead = with_dead && m.state == State::kDead && now - m.state_ms < opts_.gossip_to_dead_ms;
    if (live || recent_dead) cands.push_back(name);
  }
  std::shuffle(cands.begin(), cands.end(), rng_);
  if (cands.size() > n) cands.resize(n);
  return cands;
}

// --- push-pull, leave, meta ---

PushPull Membership::LocalState(bool join) {
  std::lock_guard<std::mutex> lock(mu_);
  PushPull p;
  p.join = join;
  p.nodes.push_back({self_.name, self_.addr, self_.incarnation, leaving_ ? State::kLeft : State::kAlive, self_.meta});
  for (auto& [name, m] : members_) p.nodes.push_back({m.name, m.addr, m.incarnation, m.state, m.meta});
  return p;
}

void Membership::MergeRemote(const PushPull& remote, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const NodeState& n : remote.nodes) {
    if (n.name == self_.name) {
      // What the others believe of us: anything but our own alive story at
      // our incarnation is refuted (a restarted agent rejoins at once).
      bool wrong = n.state != State::kAlive || n.incarnation > self_.incarnation ||
                   (n.incarnation == self_.incarnation && n.addr != self_.addr);
      if (wrong && !leaving_ && n.incarnation >= self_.incarnation) RefuteLocked(n.incarnation, now);
      continue;
    }
    Message m;
    m.incarnation = n.incarnation;
    m.node = n.name;
    switch (n.state) {
      case State::kAlive: {
        m.type = MsgType::kAlive;
        m.addr = n.addr;
        m.meta = n.meta;
        auto it = members_.find(n.name);
        if (it != members_.end() && it->second.state == State::kDead && n.incarnation <= it->second.incarnation) {
          // Alive over there, dead here (a healed partition): tell it, so it
          // refutes and its refutation reaches both sides.
          Message dead;
          dead.type = MsgType::kSuspect;
          dead.incarnation = it->second.incarnation;
          dead.node = n.name;
          dead.from = self_.name;
          SendLocked(n.addr, dead, false);
          break;
        }
        OnAliveLocked(m, now);
        break;
      }
      case State::kLeft:
        m.type = MsgType::kDead;
        m.from = n.name;
        OnDeadLocked(m, now);
        break;
      case State::kSuspect:
      case State::kDead: {
        // Only a suspicion here: a live member can still refute it.
        auto it = members_.find(n.name);
        if (it != members_.end() && it->second.state == State::kAlive && n.incarnation >= it->second.incarnation)
          SuspectLocked(it->second, n.incarnation, "", now);
        break;
      }
    }
  }
}

void Membership::Leave(int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (leaving_) return;
  leaving_ = true;
  Message m;
  m.type = MsgType::kDead;
  m.incarnation = self_.incarnation;
  m.node = self_.name;
  m.from = self_.name;
  BroadcastLocked(m);
  // Tell a few members directly, without waiting for the gossip tick.
  WireWriter w;
  EncodeMessage(m, &w);
  for (const std::string& name : PickLocked(static_cast<size_t>(std::max(3, opts_.gossip_nodes)), {}, false, now)) {
    std::string packet = PacketHeader() + w.out();
    stats_.packets_out++;
    stats_.bytes_out += packet.size();
    outbox_.push_back({members_[name].addr, std::move(packet)});
  }
}

void Membership::SetMeta(const NodeMeta& meta, int64_t now) {
  (void)now;
  std::lock_guard<std::mutex> lock(mu_);
  if (meta == self_.meta) return;
  self_.meta = meta;
  self_.incarnation++;
  BroadcastLocked(AliveOfSelfLocked());
}

std::vector<Membership::Outgoing> Membership::TakeOutbox() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Outgoing> out;
  out.swap(outbox_);
  return out;
}

std::vector<Member> Membership::Members() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Member> out;
  Member self = self_;
  if (leaving_) self.state = State::kLeft;
  out.push_back(self);
  for (auto& [name, m] : members_) out.push_back(m);
  return out;
}

Member Membership::Self() {
  std::lock_guard<std::mutex> lock(mu_);
  return self_;
}

MembershipStats Membership::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  MembershipStats s = stats_;
  s.awareness = awareness_;
  return s;
}

std::vector<std::string> Membership::AliveAddrs() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (auto& [name, m] : members_)
    if (m.state == State::kAlive) out.push_back(m.addr);
  return out;
}

}  // namespace strata::gossip

namespace strata::gossip {

std::vector<std::string> Membership::DeadAddrs() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (auto& [name, m] : members_)
    if (m.state == State::kDead) out.push_back(m.addr);
  return out;
}

}  // namespace strata::gossip
