// The Debian package, as an operator meets it: `make deb` (lintian clean),
// `apt install ./strata_*.deb` on this machine, the files where Debian puts
// them, the units systemd-analyze accepts, man pages without warnings, no
// mount started by the installation, then the installed binaries serving a
// mount from a config in /etc/strata the way the unit starts them, and a
// purge that leaves nothing. /etc/strata of a `make install` is put aside
// and restored.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/integration/harness.h"

using namespace strata::it;
namespace fs = std::filesystem;

namespace {

std::string BuildDir() {
  const char* b = std::getenv("STRATA_BUILD");
  return b != nullptr ? b : "build";
}

// Moves /etc/strata away for the test's life and back after.
struct EtcAside {
  TempDir keep;
  bool moved = false;
  EtcAside() {
    if (fs::exists("/etc/strata")) {
      fs::rename("/etc/strata", keep.path + "/strata");
      moved = true;
    }
  }
  ~EtcAside() {
    std::error_code ec;
    fs::remove_all("/etc/strata", ec);
    if (moved) fs::rename(keep.path + "/strata", "/etc/strata", ec);
  }
};

}  // namespace

TEST_CASE("the Debian package: built lintian-clean, installed, serving, purged", "[package]") {
  CmdResult installed = Run("dpkg-query -W -f='${Status}' strata");
  REQUIRE_FALSE(installed.out.find("install ok installed") != std::string::npos);  // not ours to remove
  CmdResult made = Run("bash packaging/make-deb.sh " + BuildDir());
  INFO(made.out);
  REQUIRE(made.code == 0);
  std::string deb = made.out.substr(made.out.rfind('\n', made.out.size() - 2) + 1);
  deb.erase(deb.find_last_not_of("\n") + 1);
  REQUIRE(fs::exists(deb));

  EtcAside aside;
  CmdResult inst = Run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends " + deb);
  INFO(inst.out);
  REQUIRE(inst.code == 0);
  struct Purge {
    ~Purge() { Run("DEBIAN_FRONTEND=noninteractive dpkg --purge strata"); }
  } purge;

  for (const char* f : {"/usr/bin/strata-agent", "/usr/bin/agentctl", "/usr/lib/strata/strata-clear-stale-mount",
                        "/lib/systemd/system/strata-agent.service", "/lib/systemd/system/strata-agent@.service",
                        "/etc/strata/agent.conf", "/etc/strata/policies/default.lua",
                        "/usr/share/strata/policies/lfu.lua", "/usr/share/man/man5/strata-agent.conf.5.gz",
                        "/usr/share/man/man8/strata-agent.8.gz", "/usr/share/man/man1/agentctl.1.gz",
                        "/usr/share/man/man7/strata-policy.7.gz", "/usr/share/doc/strata/copyright"}) {
    INFO(f);
    CHECK(fs::exists(f));
  }
  std::string conffiles = Run("dpkg-query --control-show strata conffiles").out;
  CHECK(conffiles.find("/etc/strata/agent.conf") != std::string::npos);
  std::string version = Run("sed -n '1s/^[^(]*(\\([^)]*\\)).*/\\1/p' packaging/debian/changelog").out;
  CHECK(Run("/usr/bin/strata-agent --version").out == "strata-agent " + version);
  CHECK(Run("/usr/bin/agentctl --version").out == "agentctl " + version);
  // The system user and the control group.
  CHECK(Run("getent passwd strata").code == 0);
  CHECK(Run("getent group strata").code == 0);
  CHECK(Run("stat -c %G /var/cache/strata").out == "strata\n");
  // Installed, not enabled, nothing started or mounted.
  CHECK_FALSE(fs::exists("/etc/systemd/system/multi-user.target.wants/strata-agent.service"));
  CHECK(Run("pgrep -x strata-agent").code != 0);

  // The units as systemd reads them (a unit file that fails to parse, an
  // executable that is missing, a man page the Documentation= names that
  // is not installed: all errors here).
  CmdResult verify = Run("systemd-analyze verify /lib/systemd/system/strata-agent.service");
  INFO(verify.out);
  CHECK(verify.code == 0);
  CHECK(verify.out.find("strata-agent") == std::string::npos);
  fs::copy_file("/lib/systemd/system/strata-agent@.service", "/tmp/strata-agent@test.service",
                fs::copy_options::overwrite_existing);
  CmdResult verify_at = Run("cd /tmp && systemd-analyze verify ./strata-agent@test.service");
  fs::remove("/tmp/strata-agent@test.service");
  INFO(verify_at.out);
  CHECK(verify_at.code == 0);
  CmdResult security = Run("systemd-analyze security --offline=true /lib/systemd/system/strata-agent.service");
  INFO(security.out);
  CHECK(security.out.find("Overall exposure level for strata-agent.service") != std::string::npos);

  // Every man page renders without a warning.
  for (const char* page : {"strata-agent.conf.5", "strata-agent.8", "agentctl.1", "strata-policy.7"}) {
    std::string sect = std::string(page).substr(std::string(page).rfind('.') + 1);
    CmdResult man = Run("MANWIDTH=80 man --warnings -E UTF-8 -l /usr/share/man/man" + sect + "/" + page +
                        ".gz 2>&1 >/dev/null");
    INFO(page << ": " << man.out);
    CHECK(man.out.empty());
  }
  // strata-agent.conf(5) names every option of --help.
  std::string conf5 = Run("zcat /usr/share/man/man5/strata-agent.conf.5.gz").out;
  std::string help = Run("/usr/bin/strata-agent --help").out;
  for (size_t at = help.find("--"); at != std::string::npos; at = help.find("--", at + 2)) {
    size_t end = help.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-", at + 2);
    std::string opt = help.substr(at + 2, end - at - 2);
    if (opt.empty() || opt == "help" || opt == "version" || opt == "config") continue;
    std::string roff;
    for (char ch : opt) roff += ch == '-' ? std::string("\\-") : std::string(1, ch);
    INFO(opt);
    CHECK(conf5.find(".B " + roff + " = ") != std::string::npos);
  }

  // Serving: the config an operator writes, started as the unit starts it
  // (the stale-mount check, then the agent in the foreground).
  TempDir data, mnt;
  WriteRandomFile(data.path + "/hello.bin", 2u << 20, 9);
  {
    std::ofstream conf("/etc/strata/agent.conf");
    conf << "mount-point = \"" << mnt.path << "\"\nufs = [\"file://" << data.path << "\"]\n"
         << "cache-dir = \"/var/cache/strata\"\ncache-size = \"64MiB\"\n"
         << "socket = \"/run/strata/agent.sock\"\npolicy-dir = \"/etc/strata/policies\"\n";
  }
  CHECK(Run("/usr/lib/strata/strata-clear-stale-mount --config /etc/strata/agent.conf").code == 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::execl("/usr/bin/strata-agent", "strata-agent", "--config", "/etc/strata/agent.conf", "--foreground",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = false;
  for (int i = 0; i < 200 && !up; i++) {
    up = IsMounted(mnt.path) && fs::exists("/run/strata/agent.sock");
    if (!up) usleep(50000);
  }
  CHECK(up);
  CHECK(Sha256File(mnt.path + "/hello.bin") == Sha256File(data.path + "/hello.bin"));
  CmdResult stat = Run("/usr/bin/agentctl stat --json");
  INFO(stat.out);
  CHECK(stat.code == 0);
  CHECK(stat.out.find("\"used_bytes\"") != std::string::npos);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK_FALSE(IsMounted(mnt.path));
  CHECK(Run("/usr/lib/strata/strata-clear-stale-mount --config /etc/strata/agent.conf").code == 0);

  // Purged: the files, the config and the cache go.
  CmdResult purged = Run("DEBIAN_FRONTEND=noninteractive dpkg --purge strata");
  INFO(purged.out);
  CHECK(purged.code == 0);
  CHECK_FALSE(fs::exists("/usr/bin/strata-agent"));
  CHECK_FALSE(fs::exists("/lib/systemd/system/strata-agent.service"));
  CHECK_FALSE(fs::exists("/etc/strata/agent.conf"));
  CHECK_FALSE(fs::exists("/var/cache/strata"));
}
