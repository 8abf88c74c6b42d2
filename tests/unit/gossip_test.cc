// The SWIM membership over an in-memory network the test controls (loss,
// cut links, dead members, simulated time), the keyring, the wire decoders
// on hostile input, and rendezvous ownership.
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>

#include "agent/cache/block_source.h"
#include "agent/gossip/keyring.h"
#include "agent/gossip/membership.h"
#include "agent/gossip/wire.h"
#include "agent/peer/owners.h"
#include "agent/peer/peer.h"

using namespace strata;
using namespace strata::gossip;

namespace {

// N memberships exchanging packets instantly, stepped in 10 ms ticks.
struct Net {
  std::vector<std::unique_ptr<Membership>> nodes;
  std::vector<bool> down;
  std::set<std::pair<size_t, size_t>> cut;  // (from, to) dropped
  double loss = 0;
  int64_t now = 1000;
  std::mt19937_64 rng{7};
  uint64_t bytes = 0;

  explicit Net(size_t n, MembershipOptions base = {}) {
    for (size_t i = 0; i < n; i++) Add(base);
  }
  size_t Add(MembershipOptions o) {
    size_t i = nodes.size();
    o.name = "n" + std::to_string(i);
    o.addr = "10.0.0." + std::to_string(i) + ":7946";
    o.seed = 100 + i;
    nodes.push_back(std::make_unique<Membership>(o));
    down.push_back(false);
    return i;
  }
  size_t IndexOf(const std::string& addr) const {
    return static_cast<size_t>(std::stoi(addr.substr(7, addr.find(':') - 7)));
  }
  void Deliver() {
    for (int rounds = 0; rounds < 50; rounds++) {
      bool any = false;
      for (size_t i = 0; i < nodes.size(); i++) {
        for (Membership::Outgoing& o : nodes[i]->TakeOutbox()) {
          any = true;
          size_t to = IndexOf(o.addr);
          bytes += o.packet.size() + Keyring::kOverhead;
          if (down[i] || to >= nodes.size() || down[to] || cut.count({i, to})) continue;
          if (loss > 0 && std::uniform_real_distribution<>(0, 1)(rng) < loss) continue;
          nodes[to]->OnPacket(o.packet, now);
        }
      }
      if (!any) return;
    }
  }
  int64_t push_pull_ms = 0;  // > 0: anti-entropy as Cluster's background thread does it
  void Run(int64_t ms) {
    for (int64_t t = 0; t < ms; t += 10) {
      now += 10;
      for (size_t i = 0; i < nodes.size(); i++)
        if (!down[i]) nodes[i]->Tick(now);
      Deliver();
      if (push_pull_ms > 0 && now % push_pull_ms == 0) AntiEntropy();
    }
  }
  // Each member exchanges state with one random live member, and with one
  // it believes dead (Serf's reconnect), when the link allows.
  void AntiEntropy() {
    for (size_t i = 0; i < nodes.size(); i++) {
      if (down[i]) continue;
      for (std::vector<std::string> addrs : {nodes[i]->AliveAddrs(), nodes[i]->DeadAddrs()}) {
        if (addrs.empty()) continue;
        size_t to = IndexOf(addrs[rng() % addrs.size()]);
        if (down[to] || cut.count({i, to}) || cut.count({to, i})) continue;
        Join(i, to);
      }
    }
  }
  void Join(size_t i, size_t seed) {  // a push-pull both ways, as the stream does
    PushPull mine = nodes[i]->LocalState(true), theirs = nodes[seed]->LocalState(false);
    nodes[seed]->MergeRemote(mine, now);
    nodes[i]->MergeRemote(theirs, now);
    Deliver();
  }
  State StateOf(size_t viewer, size_t subject) {
    for (const Member& m : nodes[viewer]->Members())
      if (m.name == "n" + std::to_string(subject)) return m.state;
    return State::kLeft;  // forgotten
  }
  size_t Known(size_t viewer, State s) {
    size_t n = 0;
    for (const Member& m : nodes[viewer]->Members()) n += m.state == s;
    return n;
  }
  // Simulated ms until every live member but `subject` sees it as `s` (-1: never within `limit`).
  int64_t Until(size_t subject, State s, int64_t limit) {
    for (int64_t t = 0; t <= limit; t += 10) {
      bool all = true;
      for (size_t i = 0; i < nodes.size() && all; i++)
        if (i != subject && !down[i] && StateOf(i, subject) != s) all = false;
      if (all) return t;
      Run(10);
    }
    return -1;
  }
};

}  // namespace

TEST_CASE("members join through one seed and all see each other", "[unit][gossip]") {
  Net net(20);
  for (size_t i = 1; i < 20; i++) net.Join(i, 0);
  net.Run(1000);
  for (size_t i = 0; i < 20; i++) CHECK(net.Known(i, State::kAlive) == 20);
}

TEST_CASE("a dead member is marked dead by every member, within the suspicion bounds", "[unit][gossip]") {
  Net net(10);
  for (size_t i = 1; i < 10; i++) net.Join(i, 0);
  net.Run(2000);
  net.down[4] = true;
  int64_t t = net.Until(4, State::kDead, 30000);
  REQUIRE(t >= 0);
  // Probe interval 500 ms, suspicion 4 * 500 ms once others confirm (of at most 6x that).
  CHECK(t <= 6000);
  CHECK(t >= 1000);
  uint64_t deaths = 0;
  for (size_t i = 0; i < 10; i++)
    if (i != 4) deaths += net.nodes[i]->Stats().deaths;
  CHECK(deaths >= 1);
}

TEST_CASE("no member is declared dead under 10 % packet loss", "[unit][gossip]") {
  Net net(10);
  for (size_t i = 1; i < 10; i++) net.Join(i, 0);
  net.Run(2000);
  net.loss = 0.10;
  net.Run(120000);
  for (size_t i = 0; i < 10; i++) CHECK(net.Known(i, State::kDead) == 0);
  net.loss = 0;
  net.Run(10000);
  for (size_t i = 0; i < 10; i++) CHECK(net.Known(i, State::kAlive) == 10);
}

TEST_CASE("a member cut off from one prober stays alive through indirect probes", "[unit][gossip]") {
  Net net(6);
  for (size_t i = 1; i < 6; i++) net.Join(i, 0);
  net.Run(2000);
  net.cut.insert({0, 3});
  net.cut.insert({3, 0});
  net.Run(30000);
  CHECK(net.StateOf(0, 3) == State::kAlive);
  CHECK(net.nodes[0]->Stats().indirect_probes > 0);
}

TEST_CASE("a suspected member refutes with a higher incarnation", "[unit][gossip]") {
  Net net(5);
  for (size_t i = 1; i < 5; i++) net.Join(i, 0);
  net.Run(2000);
  uint32_t before = net.nodes[2]->Self().incarnation;
  // Everyone loses node 2 for a moment (long enough to suspect, not to declare dead).
  for (size_t i = 0; i < 5; i++)
    if (i != 2) net.cut.insert({2, i});
  net.Run(1500);
  net.cut.clear();
  net.Run(10000);
  CHECK(net.nodes[2]->Self().incarnation > before);
  CHECK(net.nodes[2]->Stats().refutations >= 1);
  for (size_t i = 0; i < 5; i++) CHECK(net.StateOf(i, 2) == State::kAlive);
}

TEST_CASE("a partition heals: both sides converge back to alive", "[unit][gossip]") {
  Net net(6);
  for (size_t i = 1; i < 6; i++) net.Join(i, 0);
  net.Run(2000);
  for (size_t a : {0, 1, 2})
    for (size_t b : {3, 4, 5}) net.cut.insert({a, b}), net.cut.insert({b, a});
  net.Run(30000);
  CHECK(net.StateOf(0, 4) == State::kDead);
  CHECK(net.StateOf(4, 0) == State::kDead);
  net.cut.clear();
  // Push-pull every 30 s (the stream side, which also tries a member it
  // believes dead, as Serf's reconnect does) carries the news across; the
  // members refute their deaths, and gossip spreads the refutations.
  net.push_pull_ms = 30000;
  net.Run(70000);
  for (size_t i = 0; i < 6; i++) {
    std::string view;
    for (const Member& m : net.nodes[i]->Members())
      view += m.name + "=" + StateName(m.state) + "/" + std::to_string(m.incarnation) + " ";
    INFO("n" << i << " sees " << view);
    CHECK(net.Known(i, State::kAlive) == 6);
  }
}

TEST_CASE("a graceful leave is seen as left at once, and the member is reaped later", "[unit][gossip]") {
  MembershipOptions o;
  o.reap_ms = 5000;
  Net net(5, o);
  for (size_t i = 1; i < 5; i++) net.Join(i, 0);
  net.Run(2000);
  net.nodes[3]->Leave(net.now);
  net.Deliver();
  net.down[3] = true;
  CHECK(net.Until(3, State::kLeft, 1000) >= 0);
  net.Run(6000);
  for (size_t i = 0; i < 5; i++)
    if (i != 3) CHECK(net.nodes[i]->Members().size() == 4);  // forgotten: no ghost
}

TEST_CASE("idle gossip stays small", "[unit][gossip]") {
  Net net(20);
  for (size_t i = 1; i < 20; i++) net.Join(i, 0);
  net.Run(5000);
  net.bytes = 0;
  net.Run(60000);
  double per_member_per_s = static_cast<double>(net.bytes) / 20 / 60;
  CHECK(per_member_per_s < 2048);
}

TEST_CASE("hostile packets are refused, never trusted", "[unit][gossip]") {
  Membership m({.name = "me", .addr = "10.0.0.1:7946"});
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; i++) {
    std::string p = PacketHeader();
    size_t n = rng() % 200;
    for (size_t j = 0; j < n; j++) p.push_back(static_cast<char>(rng()));
    m.OnPacket(p, 1000);
    PushPull pp;
    (void)DecodePushPull(p, &pp);
    cache::BlockRequest r;
    (void)peer::DecodeBlockRequest(p, &r);
  }
  CHECK(m.Stats().malformed > 0);
  CHECK(m.Members().size() >= 1);
  // A ping for another name gets no answer; an alive about us with a forged
  // higher incarnation is refuted.
  Message forged;
  forged.type = MsgType::kAlive;
  forged.incarnation = 50;
  forged.node = "me";
  forged.addr = "10.6.6.6:1";
  WireWriter w;
  w.Raw(PacketHeader());
  EncodeMessage(forged, &w);
  m.OnPacket(w.out(), 2000);
  CHECK(m.Self().incarnation == 51);
  CHECK(m.Self().addr == "10.0.0.1:7946");
}

TEST_CASE("the keyring seals with the primary, opens with any key, binds the cluster name", "[unit][gossip]") {
  Key a{}, b{};
  a.fill(1);
  b.fill(2);
  Keyring ring = Keyring::FromKeys({a});
  Result<std::string> sealed = ring.Seal("hello", "strata/c1/gossip");
  REQUIRE(sealed.ok());
  CHECK(sealed->size() == 5 + Keyring::kOverhead);
  CHECK(*ring.Open(*sealed, "strata/c1/gossip") == "hello");
  CHECK(!ring.Open(*sealed, "strata/c2/gossip").ok());  // another cluster
  Keyring other = Keyring::FromKeys({b});
  CHECK(other.Open(*sealed, "strata/c1/gossip").status().code() == Status::Code::kPermissionDenied);
  std::string tampered = *sealed;
  tampered[20] ^= 1;
  CHECK(!ring.Open(tampered, "strata/c1/gossip").ok());
  // Rotation: install b, use b (a still opens), remove a.
  REQUIRE(ring.Install(b).ok());
  Result<std::string> by_b_member = other.Seal("x", "aad");
  CHECK(ring.Open(*by_b_member, "aad").ok());
  REQUIRE(ring.Use(b).ok());
  CHECK(!ring.Remove(b).ok());  // the primary
  REQUIRE(ring.Remove(a).ok());
  CHECK(!ring.Open(*sealed, "strata/c1/gossip").ok());
  CHECK(ring.List() == std::vector<std::string>{FormatKey(b)});
  CHECK(ParseKey(FormatKey(a)).ok());
  CHECK(*ParseKey(FormatKey(a)) == a);
  CHECK(!ParseKey("too short").ok());
}

TEST_CASE("rendezvous ownership is balanced and moves about 1/N on a join", "[unit][gossip]") {
  std::vector<peer::Candidate> five;
  for (int i = 0; i < 5; i++) five.push_back({"n" + std::to_string(i), "a", 1});
  std::vector<peer::Candidate> six = five;
  six.push_back({"n5", "a", 1});
  std::map<std::string, int> count;
  int moved = 0;
  const int kBlocks = 20000;
  for (int b = 0; b < kBlocks; b++) {
    cache::ContentKey k{"s3://bkt", "data/file", "\"etag\"", 1u << 30, 4u << 20, static_cast<uint64_t>(b)};
    const peer::Candidate* o5 = peer::RankOwners(k.Hash(), five)[0];
    const peer::Candidate* o6 = peer::RankOwners(k.Hash(), six)[0];
    count[o5->name]++;
    if (o5->name != o6->name) {
      moved++;
      CHECK(o6->name == "n5");  // only to the newcomer
    }
  }
  for (auto& [name, n] : count) CHECK(std::abs(n - kBlocks / 5) < kBlocks / 5 / 10);
  CHECK(std::abs(moved - kBlocks / 6) < kBlocks / 6 / 10);
  // Weights: a member with twice the capacity owns about twice as much.
  std::vector<peer::Candidate> weighted = {{"big", "a", 2}, {"small", "a", 1}};
  int big = 0;
  for (int b = 0; b < kBlocks; b++) big += peer::RankOwners(static_cast<uint64_t>(b) * 0x9e3779b97f4a7c15ULL, weighted)[0]->name == "big";
  CHECK(std::abs(big - kBlocks * 2 / 3) < kBlocks / 30);
}
