// The agent as a systemd service sees it: the sd_notify protocol (READY
// once the mount answers, watchdog pings, RELOADING around SIGHUP,
// STOPPING), journald priorities on every line, the health endpoints on the
// metrics address. The test plays the service manager: it owns the notify
// socket and hands the agent $NOTIFY_SOCKET, $WATCHDOG_USEC and
// $JOURNAL_STREAM, as systemd does (no systemd runs as PID 1 here).
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/harness.h"

using namespace strata::it;
namespace fs = std::filesystem;

namespace {

// The manager's end of $NOTIFY_SOCKET: one datagram per notification.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  }
  ~NotifySocket() { ::close(fd_); }
  // The next notification, or "" after timeout_ms.
  std::string Next(int timeout_ms) {
    pollfd p = {fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return "";
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }
  // Notifications until one starts with `prefix` (returned), skipping
  // watchdog pings; "" when none came within timeout_ms.
  std::string Await(const std::string& prefix, int timeout_ms, int* pings = nullptr) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
      std::string m = Next(50);
      if (m == "WATCHDOG=1" && pings != nullptr) ++*pings;
      if (!m.empty() && m.rfind(prefix, 0) == 0) return m;
    }
    return "";
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

TEST_CASE("systemd's protocol: READY once the mount answers, watchdog pings, RELOADING on SIGHUP, STOPPING; "
          "journald priorities; health endpoints",
          "[fuse][service]") {
  auto store = MakeStore("file");
  TempDir src, t;
  WriteRandomFile(src.path + "/f", 3u << 20, 5);
  store->Put("f", src.path + "/f");
  // A policy directory with a broken file: an error line to find in the log.
  fs::create_directories(t.path + "/policies");
  std::ofstream(t.path + "/policies/broken.lua") << "this is not lua (\n";

  NotifySocket notify(t.path + "/notify");
  Agent agent;
  // The log file is the agent's stderr; $JOURNAL_STREAM names it by device
  // and inode, as journald names the stream it hands a service.
  std::ofstream(agent.log_path()).flush();
  struct stat st {};
  REQUIRE(::stat(agent.log_path().c_str(), &st) == 0);
  std::string journal = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  ::setenv("NOTIFY_SOCKET", (t.path + "/notify").c_str(), 1);
  ::setenv("WATCHDOG_USEC", "600000", 1);
  ::setenv("JOURNAL_STREAM", journal.c_str(), 1);
  int port = FreePort();
  agent.Start(store->uri(), {"--metrics-addr", "127.0.0.1:" + std::to_string(port), "--policy-dir",
                             t.path + "/policies"});
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("JOURNAL_STREAM");

  std::string ready = notify.Await("READY=1", 10000);
  INFO(agent.log());
  REQUIRE(ready.rfind("READY=1", 0) == 0);
  CHECK(ready.find("STATUS=serving " + store->uri() + " at " + agent.mnt()) != std::string::npos);
  // Ready means served: the mount answers at once.
  CHECK(Sha256File(agent.mnt("f")) == Sha256File(src.path + "/f"));

  // WATCHDOG_USEC=600 ms: a ping at least every 200 ms while all is well.
  int pings = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2000))
    if (notify.Next(100) == "WATCHDOG=1") pings++;
  CHECK(pings >= 5);

  // Health endpoints on the metrics address; the control API is not there.
  std::string base = "curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:" + std::to_string(port);
  CHECK(Run(base + "/healthz").out == "200");
  CHECK(Run(base + "/readyz").out == "200");
  CHECK(Run(base + "/v1/stat").out == "404");
  CHECK(Run(base + "/metrics -X POST").out == "404");

  // systemctl reload: RELOADING=1 (with the monotonic time systemd >= 253
  // asks for), then READY=1 again once the policies are re-read.
  ::kill(agent.pid(), SIGHUP);
  std::string reloading = notify.Await("RELOADING=1", 10000);
  CHECK(reloading.find("MONOTONIC_USEC=") != std::string::npos);
  CHECK(notify.Await("READY=1", 10000) == "READY=1");

  // A stopped agent cannot answer: SIGSTOP is what a hung agent looks like
  // from outside, and the pings stop with it.
  ::kill(agent.pid(), SIGSTOP);
  while (!notify.Next(300).empty()) {
  }
  CHECK(notify.Next(1000).empty());
  ::kill(agent.pid(), SIGCONT);
  CHECK(notify.Await("WATCHDOG=1", 3000) == "WATCHDOG=1");

  ::kill(agent.pid(), SIGTERM);
  CHECK(notify.Await("STOPPING=1", 15000) == "STOPPING=1");
  agent.Stop();

  // journald's priorities: info <6>, the broken policy's error <3>; no line
  // without one.
  std::string log = ReadFile(agent.log_path());
  CHECK(log.find("<6>strata: info: serving ") != std::string::npos);
  CHECK(log.find("<3>strata: error: policies in") != std::string::npos);
  std::istringstream lines(log);
  int unprefixed = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("<", 0) != 0) unprefixed++;
  CHECK(unprefixed == 0);
}

TEST_CASE("outside journald the log has no priority prefixes", "[fuse][service]") {
  auto store = MakeStore("file");
  Agent agent;
  ::setenv("JOURNAL_STREAM", "1:1", 1);  // a stream that is not our stderr
  agent.Start(store->uri());
  ::unsetenv("JOURNAL_STREAM");
  agent.Stop();
  std::string log = ReadFile(agent.log_path());
  CHECK(log.find("strata: info: serving ") != std::string::npos);
  CHECK(log.find("<6>") == std::string::npos);
}

// [s3rver]: its keys (S3RVER) and its refusal of others.
TEST_CASE("systemctl reload takes rotated store keys from the credentials file, without a restart",
          "[fuse][s3][s3rver][service]") {
  auto store = MakeStore("s3");
  TempDir src, t;
  WriteRandomFile(src.path + "/a", 1u << 20, 31);
  WriteRandomFile(src.path + "/b", 1u << 20, 32);
  store->Put("a", src.path + "/a");
  store->Put("b", src.path + "/b");
  std::string creds = t.path + "/agent.env";
  auto write_keys = [&](const std::string& id) {
    std::ofstream(creds) << "# rotated by the operator\nAWS_ACCESS_KEY_ID=" << id
                         << "\nexport AWS_SECRET_ACCESS_KEY=\"S3RVER\"\n";
  };
  write_keys("S3RVER");
  Agent agent;
  std::vector<std::string> args = store->agent_args();
  args.insert(args.end(), {"--credentials-file", creds, "--s3-retries", "2"});
  agent.Start(store->uri(), args);
  CHECK(Sha256File(agent.mnt("a")) == Sha256File(src.path + "/a"));
  CHECK(fs::file_size(agent.mnt("b")) == (1u << 20));  // its attributes are known; its bytes are not cached
  auto reload = [&](int nth) {
    ::kill(agent.pid(), SIGHUP);
    for (int i = 0; i < 100; i++) {
      std::string log = agent.log();
      size_t n = 0;
      for (size_t at = log.find("took new keys"); at != std::string::npos; at = log.find("took new keys", at + 1)) n++;
      if (static_cast<int>(n) >= nth) return true;
      usleep(50000);
    }
    return false;
  };
  // A key the store does not know: what is not cached cannot be read.
  write_keys("nobody");
  REQUIRE(reload(1));
  std::string got;
  int err = 0;
  CHECK_FALSE(ReadWhole(agent.mnt("b"), &got, &err));
  CHECK(err != 0);
  // The right key again: the same file reads, no restart.
  write_keys("S3RVER");
  REQUIRE(reload(2));
  CHECK(ReadWhole(agent.mnt("b"), &got, &err));
  CHECK(got == ReadFile(src.path + "/b"));
  CHECK(agent.log().find("1 store(s) took new keys from " + creds) != std::string::npos);
  agent.Stop();
}

TEST_CASE("agentctl off a terminal: plain progress lines, --json on every command, errors that name the next step",
          "[fuse][service]") {
  auto store = MakeStore("file");
  TempDir src;
  for (int i = 0; i < 3; i++) {
    WriteRandomFile(src.path + "/f" + std::to_string(i), 2u << 20, 40 + i);
    store->Put("d/f" + std::to_string(i), src.path + "/f" + std::to_string(i));
  }
  Agent agent;
  agent.Start(store->uri());
  // stderr is a pipe here: progress comes as lines, the summary on stdout.
  CmdResult load = agent.Ctl("load -r d");
  INFO(load.out);
  CHECK(load.code == 0);
  CHECK(load.out.find("loading: ") != std::string::npos);
  CHECK(load.out.find("loaded 3 file(s), 6.0 MiB") != std::string::npos);
  CHECK(load.out.find('\r') == std::string::npos);
  // --json: one JSON document and nothing else, for every command.
  for (const char* cmd : {"load -r d --json", "stat --json", "stat d/f0 --json", "evict d/f1 --json", "flush --json",
                          "pin d/f2 --json", "unpin d/f2 --json", "ttl d/f0 1h --json", "policy status --json",
                          "policy check policies/lfu.lua --json"}) {
    CmdResult r = agent.Ctl(cmd);
    INFO(cmd << ": " << r.out);
    CHECK(r.code == 0);
    CHECK_FALSE(nlohmann::json::parse(r.out, nullptr, false).is_discarded());
  }
  // An agent that is not there: what to check.
  CmdResult none = Run("build/agentctl --socket /nonexistent/agent.sock stat");
  CHECK(none.code == 1);
  CHECK(none.out.find("is strata-agent running? pass --socket") != std::string::npos);
  agent.Stop();
}
