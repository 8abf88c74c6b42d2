// A cluster member without a mount, for the membership bench (N = 5..20
// agents on one machine): the agent's gossip module on a libuv loop, which
// prints every member state change it sees and, every 5 s, its gossip bytes.
//   gossip_node NAME BIND_ADDR KEY_FILE [JOIN_ADDR]
// Lines: "<unix ms> state <member> <alive|suspect|dead|left>"
//        "<unix ms> bytes <sent plaintext bytes so far> <sealed bytes so far>"
#include <csignal>
#include <cstdio>
#include <map>
#include <thread>

#include "agent/base/clock.h"
#include "agent/gossip/cluster.h"
#include "agent/loop/loop.h"

using namespace strata;

namespace {
volatile std::sig_atomic_t stop = 0;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: gossip_node NAME BIND_ADDR KEY_FILE [JOIN_ADDR]\n");
    return 2;
  }
  std::signal(SIGTERM, [](int) { stop = 1; });
  std::signal(SIGINT, [](int) { stop = 1; });
  gossip::ClusterOptions o;
  o.node_name = argv[1];
  o.bind = argv[2];
  o.key_file = argv[3];
  if (argc > 4) o.joins = {argv[4]};
  o.cluster_name = "bench";
  gossip::Cluster cluster(o);
  Status s = cluster.Open();
  if (!s.ok()) {
    std::fprintf(stderr, "gossip_node: %s\n", s.message().c_str());
    return 1;
  }
  loop::Loop loop;
  loop.Start();
  s = cluster.Start(&loop);
  if (!s.ok()) {
    std::fprintf(stderr, "gossip_node: %s\n", s.message().c_str());
    return 1;
  }
  std::map<std::string, gossip::State> seen;
  int64_t next_bytes = NowMonoMs();
  while (!stop) {
    for (const gossip::Member& m : cluster.membership().Members()) {
      auto it = seen.find(m.name);
      if (it != seen.end() && it->second == m.state) continue;
      seen[m.name] = m.state;
      std::printf("%lld state %s %s\n", static_cast<long long>(NowUnixMs()), m.name.c_str(), gossip::StateName(m.state));
    }
    if (NowMonoMs() >= next_bytes) {
      gossip::MembershipStats st = cluster.membership().Stats();
      std::printf("%lld bytes %llu %llu\n", static_cast<long long>(NowUnixMs()),
                  static_cast<unsigned long long>(st.bytes_out),
                  static_cast<unsigned long long>(st.bytes_out + st.packets_out * gossip::Keyring::kOverhead));
      next_bytes += 5000;
    }
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  cluster.Stop();
  loop.Stop();
  return 0;
}
