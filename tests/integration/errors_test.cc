// Bad input gets a clear error, a non-zero exit and never a hang.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "tests/integration/harness.h"

using namespace strata::it;
namespace fs = std::filesystem;

namespace {
void ExpectFailure(const CmdResult& r, const std::string& needle) {
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find(needle) != std::string::npos);
}
}  // namespace

// [s3rver]: the shared s3rver's buckets and keys; the RGW pass checks a wrong secret itself.
TEST_CASE("start-up errors name the problem", "[fuse][s3][s3rver][errors]") {
  auto store = MakeStore("file");
  TempDir t;
  Agent agent;
  std::string ep = SharedS3().endpoint();
  SharedS3().CreateBucket("exists");
  ExpectFailure(agent.StartExpectFailure("s3://no-such-bucket", {"--s3-endpoint", ep}),
                "bucket 'no-such-bucket' does not exist");
  ExpectFailure(Run("AWS_ACCESS_KEY_ID=nobody AWS_SECRET_ACCESS_KEY=x build/strata-agent -f --mount-point " +
                    agent.mnt() + " --ufs s3://exists --cache-dir " + t.path + "/c --cache-size 1GiB --socket " +
                    t.path + "/s --s3-endpoint " + ep),
                "access denied");
  auto t0 = std::chrono::steady_clock::now();
  ExpectFailure(agent.StartExpectFailure("s3://exists", {"--s3-endpoint", "http://127.0.0.1:1"}),
                "cannot reach S3 endpoint http://127.0.0.1:1");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30));
  ExpectFailure(agent.StartExpectFailure(store->uri(), {"--cache-size", "12XB"}), "bad size unit");
  ExpectFailure(agent.StartExpectFailure("gs://bucket"), "bad --ufs");
  ExpectFailure(agent.StartExpectFailure("file://relative/dir"), "bad store URI");
  ExpectFailure(agent.StartExpectFailure("file:///no/such/dir"), "No such file or directory");
  ExpectFailure(agent.StartExpectFailure(store->uri(), {"--cache-dir", "/proc/strata-cache"}), "--cache-dir");
  fs::create_directories(t.path + "/damaged/index");
  WriteRandomFile(t.path + "/damaged/index/data.mdb", 20000, 5);
  ExpectFailure(agent.StartExpectFailure(store->uri(), {"--cache-dir", t.path + "/damaged"}),
                "the cache index is damaged");
  ExpectFailure(agent.StartExpectFailure(store->uri(), {"--mount-point", t.path + "/missing"}),
                "mount point " + t.path + "/missing");
  std::ofstream(agent.mnt() + "/x") << "x";
  ExpectFailure(agent.StartExpectFailure(store->uri()), "is not empty");
  fs::remove(agent.mnt() + "/x");
  agent.Start(store->uri());
  Agent second;
  ExpectFailure(second.StartExpectFailure(store->uri(), {"--mount-point", agent.mnt()}), "already mounted");
  ExpectFailure(second.StartExpectFailure(store->uri(), {"--cache-dir", agent.cache_dir()}),
                "in use by another strata-agent");
  ExpectFailure(second.StartExpectFailure(store->uri(), {"--socket", agent.socket()}),
                "another agent already serves the control socket");
}

// [rgw]: s3rver accepts any secret; the gateway checks SigV4 signatures.
TEST_CASE("a wrong secret is refused at start with a clear error", "[fuse][rgw][errors]") {
  auto store = MakeStore("s3");
  Agent agent;
  TempDir t;
  CmdResult r = Run("AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=wrong timeout 60 build/strata-agent -f --mount-point " +
                    agent.mnt() + " --ufs " + store->uri() + " --cache-dir " + t.path + "/c --cache-size 1GiB --socket " +
                    t.path + "/s --s3-endpoint " + S3Endpoint());
  ExpectFailure(r, "access denied");
  CHECK(r.out.find("SignatureDoesNotMatch") != std::string::npos);
  CHECK_FALSE(IsMounted(agent.mnt()));
  // The right secret works on the same bucket.
  agent.Start(store->uri(), store->agent_args());
  CHECK(fs::is_directory(agent.mnt()));
}

TEST_CASE("agentctl without an agent names the socket", "[errors]") {
  CmdResult r = Run("build/agentctl --socket /tmp/strata-nobody.sock stat");
  CHECK(r.code == 1);
  CHECK(r.out.find("no agent is listening on /tmp/strata-nobody.sock") != std::string::npos);
}

TEST_CASE("malformed requests on the control socket get 400, the agent keeps serving", "[fuse][errors]") {
  auto store = MakeStore("file");
  Agent agent;
  agent.Start(store->uri(), {"--metrics-addr", "127.0.0.1:19464"});
  std::string curl = "curl -sS --max-time 15 --unix-socket " + agent.socket() + " ";
  // The TCP listener serves scrapers, not the control API.
  CmdResult tcp = Run("curl -sS --max-time 15 http://127.0.0.1:19464/metrics");
  CHECK(tcp.out.find("strata_cache_blocks") != std::string::npos);
  tcp = Run("curl -sS --max-time 15 -o /dev/null -w '%{http_code}' -X POST 'http://127.0.0.1:19464/v1/evict?path=x'");
  CHECK(tcp.out == "404");
  CHECK(RawUnixRequest(agent.socket(), "GARBAGE\r\n\r\n").rfind("HTTP/1.1 400 Bad Request", 0) == 0);
  CHECK(RawUnixRequest(agent.socket(), std::string(20000, 'A')).find(" 400 ") != std::string::npos);
  CHECK(RawUnixRequest(agent.socket(), "GET /v1/stat HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcdefgh")
            .find(" 400 ") != std::string::npos);
  // A client that says nothing is answered and dropped after the request deadline.
  auto t0 = std::chrono::steady_clock::now();
  CHECK(RawUnixRequest(agent.socket(), "GET /v1/stat HTTP/1.1\r\n").find("timed out") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(15));
  CmdResult r = Run(curl + "-o /dev/null -w '%{http_code}' http://x/v1/nope");
  CHECK(r.out == "404");
  r = Run(curl + "-o /dev/null -w '%{http_code}' -X DELETE http://x/v1/stat");
  CHECK(r.out == "405");
  r = Run(curl + "-o /dev/null -w '%{http_code}' -H 'Content-Length: x' http://x/v1/stat");
  CHECK(r.out == "400");
  r = Run(curl + "http://x/metrics");
  CHECK(r.out.find("strata_cache_capacity_bytes 268435456") != std::string::npos);
  CHECK(r.out.find("strata_ufs_get_requests_total{mount=\"/\"") != std::string::npos);
  CHECK(agent.Stat()["capacity_bytes"] == 256u << 20);
  // The scrape port names mount points and stores, never the files read.
  TempDir t;
  std::ofstream(t.path + "/f") << "x";
  store->Put("secret-name-7f3.bin", t.path + "/f");
  CHECK(ReadFile(agent.mnt("secret-name-7f3.bin")) == "x");
  tcp = Run("curl -sS --max-time 15 http://127.0.0.1:19464/metrics");
  CHECK(tcp.out.find("strata_cache_blocks") != std::string::npos);
  CHECK(tcp.out.find("secret-name") == std::string::npos);
}

TEST_CASE("SIGINT unmounts cleanly; a kill -9 leaves a stale mount that is named", "[fuse][errors]") {
  auto store = MakeStore("file");
  TempDir src;
  WriteRandomFile(src.path + "/f", 5u << 20, 3);
  store->Put("f", src.path + "/f");
  Agent agent;
  agent.Start(store->uri());
  CHECK(Sha256File(agent.mnt("f")) == Sha256File(src.path + "/f"));
  ::kill(agent.pid(), SIGINT);
  for (int i = 0; i < 200 && IsMounted(agent.mnt()); i++) usleep(50000);
  CHECK_FALSE(IsMounted(agent.mnt()));
  agent.Stop();  // reaps the process, checks exit 0
  agent.Start(store->uri());
  agent.Kill();
  REQUIRE(IsMounted(agent.mnt()));
  Agent other;
  ExpectFailure(other.StartExpectFailure(store->uri(), {"--mount-point", agent.mnt()}), "stale FUSE mount");
  // The harness clears it the way the systemd unit does, then starts warm.
  CmdResult r = Run("systemd/strata-clear-stale-mount " + agent.mnt());
  INFO(r.out);
  CHECK(r.code == 0);
  CHECK_FALSE(IsMounted(agent.mnt()));
  agent.Start(store->uri());
  CHECK(Sha256File(agent.mnt("f")) == Sha256File(src.path + "/f"));
  CHECK(agent.Gets() == 0);
}

TEST_CASE("a full cache disk: reads keep working, uncached, and the agent says so", "[fuse][errors]") {
  auto store = MakeStore("file");
  TempDir src;
  WriteRandomFile(src.path + "/big", 24u << 20, 11);
  store->Put("big.bin", src.path + "/big");
  Agent agent;
  // The cache directory's disk (a 12 MiB tmpfs) is smaller than --cache-size.
  fs::create_directories(agent.cache_dir());
  REQUIRE(Run("mount -t tmpfs -o size=12m strata-test-full " + agent.cache_dir()).code == 0);
  agent.Start(store->uri(), {"--cache-size", "64MiB", "--block-size", "1MiB"});
  CHECK(Sha256File(agent.mnt("big.bin")) == Sha256File(src.path + "/big"));
  DropPageCache();
  CHECK(Sha256File(agent.mnt("big.bin")) == Sha256File(src.path + "/big"));
  auto st = agent.Stat();
  CHECK(st["uncached_fetches"].get<uint64_t>() > 0);
  CHECK(st["used_bytes"].get<uint64_t>() < (12u << 20));
  CHECK(agent.log().find("not keeping blocks") != std::string::npos);
  agent.Stop();
  Run("umount " + agent.cache_dir());
}

TEST_CASE("the control socket serves root, the agent's user and the control group only, by peer credentials",
          "[fuse][errors][security]") {
  auto store = MakeStore("file");
  Agent agent;
  agent.Start(store->uri(), {"--control-group", "nogroup"});
  struct stat st;
  REQUIRE(::stat(agent.socket().c_str(), &st) == 0);
  CHECK(st.st_gid == 65534);  // the socket file has the control group
  // Open the file modes wide, so only the peer-credential check stands
  // between an unprivileged caller and the API.
  for (std::string d = agent.socket(); (d = fs::path(d).parent_path().string()) != "/tmp";) ::chmod(d.c_str(), 0755);
  ::chmod(agent.socket().c_str(), 0666);
  auto as = [&](const std::string& ids) {
    return Run("setpriv " + ids + " " + fs::absolute("build/agentctl").string() + " --socket " + agent.socket() +
               " stat 2>&1");
  };
  CmdResult member = as("--reuid=nobody --regid=nogroup --clear-groups");
  INFO(member.out);
  CHECK(member.code == 0);
  CmdResult supplementary = as("--reuid=nobody --regid=users --groups=nogroup");
  INFO(supplementary.out);
  CHECK(supplementary.code == 0);
  CmdResult stranger = as("--reuid=nobody --regid=users --clear-groups");
  INFO(stranger.out);
  CHECK(stranger.code != 0);
  CHECK(stranger.out.find("forbidden") != std::string::npos);
  CHECK(agent.log().find("control socket: refused uid 65534") != std::string::npos);
  CHECK(agent.Ctl("stat").code == 0);  // root
}
