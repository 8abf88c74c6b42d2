// Several real agents on loopback, one store: they join over gossip, serve
// each other's blocks (the store sees each block once), survive the owner's
// kill -9 mid-read, refuse an agent without the key, and rotate keys live.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include "tests/integration/harness.h"

using namespace strata::it;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const char* const kKeyA = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const char* const kKeyB = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
constexpr uint64_t kBlock = 1u << 20;

struct Node {
  Agent agent;
  int port = 0;
  std::string name;
  std::string host = "127.0.0.1";  // any of 127/8: nftables can then cut one agent off by address
};

struct Cluster {
  std::unique_ptr<Store> store = MakeStore("s3");
  TempDir keys;
  std::vector<std::unique_ptr<Node>> nodes;

  std::string KeyFile(const std::string& name, const std::vector<std::string>& lines) {
    std::string path = keys.path + "/" + name;
    std::ofstream out(path);
    for (const std::string& l : lines) out << l << "\n";
    return path;
  }
  std::vector<std::string> Args(Node& n, const std::string& key_file, int join_port,
                                std::vector<std::string> more = {}) {
    std::vector<std::string> a = store->agent_args();
    std::vector<std::string> c = {"--block-size", "1MiB", "--cluster-key-file", key_file, "--cluster-bind",
                                  n.host + ":" + std::to_string(n.port), "--node-name", n.name,
                                  "--peer-timeout", "1s", "--metadata-ttl", "2"};
    a.insert(a.end(), c.begin(), c.end());
    if (join_port > 0) a.insert(a.end(), {"--join", nodes[0]->host + ":" + std::to_string(join_port)});
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }
  Node& Start(const std::string& key_file, std::vector<std::string> more = {}, const std::string& host = "127.0.0.1") {
    auto n = std::make_unique<Node>();
    n->host = host;
    n->port = FreePort();
    n->name = "agent" + std::to_string(nodes.size());
    int join = nodes.empty() ? 0 : nodes[0]->port;
    n->agent.Start(store->uri(), Args(*n, key_file, join, more));
    nodes.push_back(std::move(n));
    return *nodes.back();
  }
  // Waits until `n` sees `want` alive members; returns what it saw.
  // Generous: on a loaded 2-core machine a member may be suspected for a
  // while before it refutes; returns as soon as the count is right.
  size_t WaitAlive(Node& n, size_t want, int seconds = 30) {
    size_t alive = 0;
    for (int i = 0; i < seconds * 10; i++) {
      json j = n.agent.CtlJson("members --json");
      alive = 0;
      for (const json& m : j["members"]) alive += m["state"] == "alive";
      if (alive == want) return alive;
      std::this_thread::sleep_for(100ms);
    }
    return alive;
  }
  std::string StateOf(Node& viewer, const std::string& name) {
    json j = viewer.agent.CtlJson("members --json");
    for (const json& m : j["members"])
      if (m["name"] == name) return m["state"];
    return "unknown";
  }
  // Bytes all agents read from the store.
  uint64_t StoreBytes() {
    uint64_t n = 0;
    for (auto& node : nodes) n += node->agent.Stat()["mounts"][0]["bytes_fetched"].get<uint64_t>();
    return n;
  }
};

uint64_t Metric(const Agent& a, const std::string& name) {
  CmdResult r = Run("curl -s --unix-socket " + ShellQuote(a.socket()) + " http://localhost/metrics");
  size_t at = r.out.find("\n" + name + " ");
  if (at == std::string::npos) return 0;
  return std::stoull(r.out.substr(at + name.size() + 2));
}

}  // namespace

TEST_CASE("agents join, share blocks (the store sees each block once), and agree on owners", "[cluster][s3]") {
  Cluster c;
  std::string key = c.KeyFile("keys", {kKeyA});
  for (int i = 0; i < 3; i++) c.Start(key);
  for (auto& n : c.nodes) REQUIRE(c.WaitAlive(*n, 3) == 3);

  TempDir src;
  WriteRandomFile(src.path + "/f", 24 * kBlock + 123, 5);
  c.store->Put("shared.bin", src.path + "/f");
  const std::string want = Sha256File(src.path + "/f");
  const uint64_t size = 24 * kBlock + 123;
  const uint64_t bytes0 = c.StoreBytes();
  REQUIRE(Sha256File(c.nodes[0]->agent.mnt("shared.bin")) == want);
  const uint64_t bytes_a = c.StoreBytes() - bytes0;
  CHECK(bytes_a >= size);  // every block once, by its owner (a first-reply peek may add a little)
  CHECK(bytes_a <= size + kBlock);
  // Every agent owns a share, and all three answer the same owners.
  json owners = c.nodes[0]->agent.CtlJson("owner --json shared.bin");
  std::set<std::string> who;
  for (const json& r : owners["ranges"]) who.insert(r["owner"].get<std::string>());
  CHECK(who.size() == 3);
  CHECK(c.nodes[1]->agent.CtlJson("owner --json shared.bin")["ranges"] == owners["ranges"]);
  // B and C read it: from the owners' caches, no store byte.
  for (int i : {1, 2}) {
    DropPageCache();
    uint64_t before = c.StoreBytes();
    REQUIRE(Sha256File(c.nodes[i]->agent.mnt("shared.bin")) == want);
    CHECK(c.StoreBytes() == before);
  }
  CHECK(Metric(c.nodes[1]->agent, "strata_peer_hits_total") > 0);
  uint64_t served = 0;
  for (auto& n : c.nodes) served += Metric(n->agent, "strata_peer_served_bytes_total");
  CHECK(served >= 16 * kBlock);
}

TEST_CASE("the owner killed mid-read costs a timeout, never a failed read; everyone marks it dead", "[cluster][s3]") {
  Cluster c;
  std::string key = c.KeyFile("keys", {kKeyA});
  for (int i = 0; i < 3; i++) c.Start(key);
  for (auto& n : c.nodes) REQUIRE(c.WaitAlive(*n, 3) == 3);
  TempDir src;
  WriteRandomFile(src.path + "/f", 64 * kBlock, 6);
  c.store->Put("big.bin", src.path + "/f");
  std::string got;
  std::thread reader([&] { got = Sha256File(c.nodes[0]->agent.mnt("big.bin")); });
  std::this_thread::sleep_for(150ms);
  auto killed = std::chrono::steady_clock::now();
  c.nodes[2]->agent.Kill();
  reader.join();
  auto ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed).count();
  };
  INFO("read done " << ms() << " ms after the kill");
  CHECK(got == Sha256File(src.path + "/f"));
  // Everyone left marks agent2 dead (SWIM: probe, suspicion, confirmation).
  bool dead = false;
  std::string timeline;
  for (int i = 0; i < 200 && !dead; i++) {
    std::string s0 = c.StateOf(*c.nodes[0], "agent2"), s1 = c.StateOf(*c.nodes[1], "agent2");
    timeline += std::to_string(ms()) + ":" + s0 + "/" + s1 + " ";
    dead = s0 == "dead" && s1 == "dead";
    if (!dead) std::this_thread::sleep_for(100ms);
  }
  INFO("dead seen by both " << ms() << " ms after the kill: " << timeline);
  INFO(c.nodes[0]->agent.Ctl("members").out);
  INFO(c.nodes[1]->agent.Ctl("members").out);
  CHECK(dead);
  // A second read right after: the dead owner's blocks come from the store.
  DropPageCache();
  CHECK(Sha256File(c.nodes[1]->agent.mnt("big.bin")) == Sha256File(src.path + "/f"));
}

TEST_CASE("an agent with another key or cluster name gets nothing and is counted", "[cluster][s3]") {
  Cluster c;
  std::string key = c.KeyFile("keys", {kKeyA});
  std::string wrong = c.KeyFile("wrong", {kKeyB});
  c.Start(key);
  c.Start(key);
  REQUIRE(c.WaitAlive(*c.nodes[0], 2) == 2);
  Node& intruder = c.Start(wrong);
  Node& other_cluster = c.Start(key, {"--cluster-name", "elsewhere"});
  std::this_thread::sleep_for(3s);
  CHECK(c.WaitAlive(*c.nodes[0], 2, 1) == 2);
  CHECK(c.WaitAlive(intruder, 1, 1) == 1);
  CHECK(c.WaitAlive(other_cluster, 1, 1) == 1);
  CHECK(c.StateOf(*c.nodes[0], "agent2") == "unknown");
  CHECK(Metric(c.nodes[0]->agent, "strata_cluster_rejected_streams_total") > 0);
  CHECK(Metric(c.nodes[0]->agent, "strata_peer_served_bytes_total") == 0);
  // A raw connection with garbage gets closed without a byte of ours.
  CmdResult r = Run("bash -c 'exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(c.nodes[0]->port) +
                    "; head -c 4096 /dev/urandom >&3 2>/dev/null; timeout 3 cat <&3 2>/dev/null | wc -c'");
  INFO(r.out);
  CHECK(r.out == "0\n");
}

TEST_CASE("keys rotate on a running cluster with no failed read", "[cluster][s3]") {
  Cluster c;
  std::string key = c.KeyFile("keys", {kKeyA});
  std::vector<std::string> files;
  for (int i = 0; i < 3; i++) {
    // Each agent its own copy of the file: the rotation rewrites it.
    std::string f = c.KeyFile("keys" + std::to_string(i), {kKeyA});
    c.Start(f);
  }
  for (auto& n : c.nodes) REQUIRE(c.WaitAlive(*n, 3) == 3);
  TempDir src;
  WriteRandomFile(src.path + "/f", 12 * kBlock, 9);
  c.store->Put("rot.bin", src.path + "/f");
  const std::string want = Sha256File(src.path + "/f");
  REQUIRE(c.nodes[0]->agent.Ctl(std::string("keys install ") + kKeyB).code == 0);
  REQUIRE(c.nodes[1]->agent.Ctl(std::string("keys use ") + kKeyB).code == 0);
  REQUIRE(c.nodes[2]->agent.Ctl(std::string("keys remove ") + kKeyA).code == 0);
  for (auto& n : c.nodes) {
    json k = n->agent.CtlJson("keys list --json");
    CHECK(k["keys"].size() == 1);
    CHECK(k["primary"] == kKeyB);
  }
  for (auto& n : c.nodes) CHECK(Sha256File(n->agent.mnt("rot.bin")) == want);
  for (auto& n : c.nodes) CHECK(c.WaitAlive(*n, 3, 5) == 3);
  // The key file was rewritten: a restart keeps the new key.
  CHECK(ReadFile(c.keys.path + "/keys0").find(kKeyB) != std::string::npos);
  CHECK(ReadFile(c.keys.path + "/keys0").find(kKeyA) == std::string::npos);
}

TEST_CASE("five agents reading one cold file at once fetch it from the store about once", "[cluster][s3]") {
  Cluster c;
  std::string key = c.KeyFile("keys", {kKeyA});
  // Room for the whole file in every cache: each keeps a copy of what its
  // peers served (the default admission), and an owner that evicted its own
  // blocks for those copies would fetch them again.
  for (int i = 0; i < 5; i++) c.Start(key, {"--cache-size", "768MiB"});
  for (auto& n : c.nodes) REQUIRE(c.WaitAlive(*n, 5) == 5);
  TempDir src;
  const uint64_t size = 256 * kBlock;
  WriteRandomFile(src.path + "/f", size, 11);
  c.store->Put("cold.bin", src.path + "/f");
  const std::string want = Sha256File(src.path + "/f");
  const uint64_t before = c.StoreBytes();
  std::vector<std::string> got(5);
  std::vector<std::thread> readers;
  for (int i = 0; i < 5; i++) readers.emplace_back([&, i] { got[i] = Sha256File(c.nodes[i]->agent.mnt("cold.bin")); });
  for (auto& t : readers) t.join();
  for (int i = 0; i < 5; i++) CHECK(got[i] == want);
  const uint64_t fetched = c.StoreBytes() - before;
  INFO("store bytes " << fetched << " for a " << size << "-byte file");
  std::string peers;
  for (auto& n : c.nodes)
    peers += n->name + ": peer hits " + std::to_string(Metric(n->agent, "strata_peer_hits_total")) + ", misses " +
             std::to_string(Metric(n->agent, "strata_peer_misses_total")) + ", timeouts " +
             std::to_string(Metric(n->agent, "strata_peer_timeouts_total")) + ", stale " +
             std::to_string(Metric(n->agent, "strata_peer_stale_total")) + ", own " +
             std::to_string(Metric(n->agent, "strata_peer_local_owner_blocks_total")) + "\n";
  INFO(peers);
  CHECK(fetched >= size);
  CHECK(fetched <= size + size / 20);
}

TEST_CASE("a cluster load: each member loads its share, stat and owner show who holds what", "[cluster][s3]") {
  Cluster c;
  std::string key = c.KeyFile("keys", {kKeyA});
  for (int i = 0; i < 3; i++) c.Start(key);
  for (auto& n : c.nodes) REQUIRE(c.WaitAlive(*n, 3) == 3);
  TempDir src;
  WriteRandomFile(src.path + "/f", 30 * kBlock, 12);
  c.store->Put("warm/data.bin", src.path + "/f");
  CmdResult r = c.nodes[0]->agent.Ctl("load --cluster -r warm");
  INFO(r.out);
  REQUIRE(r.code == 0);
  json st = c.nodes[0]->agent.CtlJson("stat --cluster --json warm/data.bin");
  uint64_t total = 0;
  REQUIRE(st["members"].size() == 3);
  for (const json& m : st["members"]) {
    INFO(m.dump());
    CHECK(m["blocks_cached"].get<uint64_t>() > 0);  // every member holds a share
    total += m["blocks_cached"].get<uint64_t>();
  }
  CHECK(total == 30);  // each block once: on its owner
  json dir = c.nodes[2]->agent.CtlJson("stat --cluster --json warm");
  uint64_t dir_total = 0;
  for (const json& m : dir["members"]) dir_total += m["blocks_cached"].get<uint64_t>();
  CHECK(dir["members"].size() == 3);
  CHECK(dir_total == 30);
  json own = c.nodes[1]->agent.CtlJson("owner --json warm/data.bin");
  for (const json& range : own["ranges"]) CHECK(range["owner_has"] == range["blocks"]);
  // Now any member reads it without the store.
  const uint64_t before = c.StoreBytes();
  CHECK(Sha256File(c.nodes[2]->agent.mnt("warm/data.bin")) == Sha256File(src.path + "/f"));
  CHECK(c.StoreBytes() == before);
}

TEST_CASE("an object overwritten while peers hold the old version: no read ever mixes versions", "[cluster][s3]") {
  Cluster c;
  std::string key = c.KeyFile("keys", {kKeyA});
  for (int i = 0; i < 2; i++) c.Start(key, {"--metadata-ttl", "1"});
  for (auto& n : c.nodes) REQUIRE(c.WaitAlive(*n, 2) == 2);
  TempDir src;
  // Version v: every byte is v. Reads straddle block boundaries, so a read
  // made of two blocks of different versions would show two byte values.
  auto put_version = [&](int v) {
    std::ofstream(src.path + "/v", std::ios::trunc) << std::string(4 * kBlock, static_cast<char>('a' + v));
    c.store->Put("flip.bin", src.path + "/v");
  };
  put_version(0);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, mixed{0}, failed{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; i++)
    readers.emplace_back([&, i] {
      std::string buf(8192, '\0');
      uint64_t k = 0;
      while (!stop) {
        int fd = ::open(c.nodes[i]->agent.mnt("flip.bin").c_str(), O_RDONLY);
        if (fd < 0) {
          failed++;
          continue;
        }
        for (int j = 0; j < 50 && !stop; j++, k++) {
          off_t off = static_cast<off_t>((k % 3 + 1) * kBlock - 4096);
          // Out of the page cache first: every read asks the agent.
          ::posix_fadvise(fd, off, static_cast<off_t>(buf.size()), POSIX_FADV_DONTNEED);
          ssize_t n = ::pread(fd, buf.data(), buf.size(), off);
          if (n != static_cast<ssize_t>(buf.size())) {
            failed++;  // the object changed under an open file: ESTALE/EIO is allowed, mixing is not
            break;
          }
          reads++;
          if (buf.find_first_not_of(buf[0]) != std::string::npos) mixed++;
        }
        ::close(fd);
      }
    });
  for (int v = 1; v <= 6; v++) {
    std::this_thread::sleep_for(1500ms);
    put_version(v);
  }
  std::this_thread::sleep_for(1500ms);
  stop = true;
  for (auto& t : readers) t.join();
  INFO(reads.load() << " reads, " << failed.load() << " refused");
  CHECK(reads >= 10000);
  CHECK(mixed == 0);
}

TEST_CASE("a partition: both sides serve from the store, and the cluster converges after the heal", "[cluster][s3]") {
  Cluster c;
  std::string key = c.KeyFile("keys", {kKeyA});
  const std::vector<std::string> hosts = {"127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"};
  for (const std::string& h : hosts) c.Start(key, {"--push-pull-interval", "2s", "--metadata-ttl", "1"}, h);
  for (auto& n : c.nodes) REQUIRE(c.WaitAlive(*n, 4) == 4);
  TempDir src;
  WriteRandomFile(src.path + "/v1", 8 * kBlock, 21);
  WriteRandomFile(src.path + "/v2", 8 * kBlock, 22);
  WriteRandomFile(src.path + "/other", 8 * kBlock, 23);
  c.store->Put("p.bin", src.path + "/v1");
  for (auto& n : c.nodes) REQUIRE(Sha256File(n->agent.mnt("p.bin")) == Sha256File(src.path + "/v1"));
  // Cut {11, 12} from {13, 14}: gossip and streams, both ways.
  const std::string table = "strata_it_" + std::to_string(::getpid());
  auto nft = [&](const std::string& cmd) {
    CmdResult r = Run("nft " + cmd);
    INFO("nft " << cmd << ": " << r.out);
    REQUIRE(r.code == 0);
  };
  nft("add table inet " + table);
  nft("add chain inet " + table + " in '{ type filter hook input priority 0; }'");
  nft("add rule inet " + table + " in ip saddr '{ 127.0.0.11, 127.0.0.12 }' ip daddr '{ 127.0.0.13, 127.0.0.14 }' drop");
  nft("add rule inet " + table + " in ip saddr '{ 127.0.0.13, 127.0.0.14 }' ip daddr '{ 127.0.0.11, 127.0.0.12 }' drop");
  bool split = false;
  for (int i = 0; i < 300 && !split; i++) {
    split = c.StateOf(*c.nodes[0], "agent2") == "dead" && c.StateOf(*c.nodes[0], "agent3") == "dead" &&
            c.StateOf(*c.nodes[3], "agent0") == "dead" && c.StateOf(*c.nodes[3], "agent1") == "dead";
    if (!split) std::this_thread::sleep_for(100ms);
  }
  CHECK(split);
  // Both sides serve, from the store where the owner is across the cut; the
  // object changes meanwhile.
  c.store->Put("other.bin", src.path + "/other");
  CHECK(Sha256File(c.nodes[0]->agent.mnt("other.bin")) == Sha256File(src.path + "/other"));
  CHECK(Sha256File(c.nodes[3]->agent.mnt("other.bin")) == Sha256File(src.path + "/other"));
  c.store->Put("p.bin", src.path + "/v2");
  std::this_thread::sleep_for(1500ms);  // the metadata TTL
  CHECK(Sha256File(c.nodes[1]->agent.mnt("p.bin")) == Sha256File(src.path + "/v2"));
  nft("delete table inet " + table);
  // Heal: push-pull (every 2 s, also with a member believed dead) brings
  // the sides together; everyone sees four alive.
  for (auto& n : c.nodes) CHECK(c.WaitAlive(*n, 4, 40) == 4);
  for (auto& n : c.nodes) CHECK(Sha256File(n->agent.mnt("p.bin")) == Sha256File(src.path + "/v2"));
}

TEST_CASE("joining through DNS: --join dns:NAME follows SRV records (a Kubernetes headless service's named port)",
          "[cluster]") {
  // A real DNS server (Debian's dnsmasq) on a loopback address of its own,
  // and the joining agent in a mount namespace whose /etc/resolv.conf names
  // it: the SRV record is the only place the first member's port is written.
  Cluster c;
  std::string key = c.KeyFile("key", {kKeyA});
  Node& b = c.Start(key);
  TempDir dns;
  const std::string pid_file = dns.path + "/dnsmasq.pid", resolv = dns.path + "/resolv.conf";
  std::ofstream(resolv) << "nameserver 127.0.0.77\n";
  CmdResult d = Run("dnsmasq --conf-file=/dev/null --pid-file=" + pid_file +
                    " --user=nobody --listen-address=127.0.0.77 --bind-interfaces --port=53 --no-resolv --no-hosts"
                    " --srv-host=_gossip._tcp.strata.test,b.strata.test," + std::to_string(b.port) +
                    " --host-record=b.strata.test,127.0.0.1");
  REQUIRE(d.code == 0);
  struct StopDns {
    std::string pid_file;
    ~StopDns() { Run("kill $(cat " + ShellQuote(pid_file) + ")"); }
  } stop_dns{pid_file};

  Node a;
  a.port = FreePort();
  a.name = "srv-joiner";
  std::vector<std::string> args = c.store->agent_args();
  args.insert(args.end(), {"--block-size", "1MiB", "--cluster-key-file", key, "--cluster-bind",
                           "127.0.0.1:" + std::to_string(a.port), "--node-name", a.name, "--join",
                           "dns:_gossip._tcp.strata.test"});
  a.agent.StartWrapped({"unshare", "-m", "sh", "-c", "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"", resolv},
                       c.store->uri(), args);
  CHECK(c.WaitAlive(b, 2) == 2);
  CHECK(c.StateOf(b, "srv-joiner") == "alive");
  INFO(a.agent.log());
  CHECK(c.StateOf(a, b.name) == "alive");
  a.agent.Stop();
}
