// Writing through a real mount over a local directory and over s3rver: the
// tools people use (cp -a, rsync, tar, git, an editor's save), exact bytes in
// the store as another client sees them, POSIX corner cases, the write modes.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "agent/base/hash.h"
#include "tests/integration/harness.h"

using namespace strata::it;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// One line per entry below `root`: path, type, permissions, size, mtime
// (ns), link target. Two trees with the same listing look the same to
// cp -a / rsync -a.
std::string TreeListing(const std::string& root, bool with_times = true) {
  // Directory sizes depend on the file system: left out.
  std::string t = with_times ? " %T@" : "";
  CmdResult r = Run("cd " + ShellQuote(root) + " && find . -mindepth 1 \\( -type d -printf '%P d %m" + t +
                    "\\n' \\) -o -printf '%P %y %m %s" + t + " %l\\n' | sort");
  REQUIRE(r.code == 0);
  return r.out;
}

// A tree with modes, times, a symlink, an empty file and a nested directory.
void MakeTree(const std::string& root) {
  fs::create_directories(root + "/sub/deeper");
  WriteRandomFile(root + "/a.bin", 300000, 1);
  WriteRandomFile(root + "/sub/b.txt", 5000, 2);
  WriteRandomFile(root + "/sub/deeper/c", 70000, 3);
  std::ofstream(root + "/empty").close();
  fs::create_symlink("sub/b.txt", root + "/link");
  REQUIRE(Run("chmod 0600 " + root + "/a.bin && chmod 0751 " + root + "/sub/deeper/c && chmod 0700 " + root +
              "/sub/deeper && touch -h -d '2021-03-04 05:06:07.123456789' " + root + "/a.bin " + root +
              "/link " + root + "/sub/deeper/c " + root + "/sub/deeper " + root + "/sub").code == 0);
}

std::string Sha256(const std::string& data) { return strata::Hex(strata::Sha256(data)); }

}  // namespace

TEST_CASE("cp -a, rsync -a, tar -x, git clone and an editor's save work on the mount", "[fuse][s3][write]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    MakeTree(src.path + "/tree");
    Agent agent;
    agent.Start(store->uri(), store->agent_args());

    // cp -a keeps bytes, modes, times and links.
    CmdResult cp = Run("cp -a " + src.path + "/tree " + agent.mnt("cp"));
    INFO(cp.out << agent.log());
    REQUIRE(cp.code == 0);
    CHECK(TreeListing(agent.mnt("cp")) == TreeListing(src.path + "/tree"));
    CHECK(Run("diff -r " + src.path + "/tree " + agent.mnt("cp")).code == 0);

    // rsync -a twice: the second run finds nothing to do.
    CmdResult rs = Run("rsync -a " + src.path + "/tree/ " + agent.mnt("rs") + "/");
    INFO(rs.out);
    REQUIRE(rs.code == 0);
    CmdResult again = Run("rsync -a --stats " + src.path + "/tree/ " + agent.mnt("rs") + "/");
    INFO(again.out);
    CHECK(again.out.find("Number of regular files transferred: 0") != std::string::npos);

    // tar -x of an archive.
    REQUIRE(Run("tar --format=posix -C " + src.path + " -cf " + src.path + "/t.tar tree").code == 0);
    fs::create_directory(agent.mnt("untar"));
    CmdResult tx = Run("tar -C " + agent.mnt("untar") + " -xf " + src.path + "/t.tar");
    INFO(tx.out);
    REQUIRE(tx.code == 0);
    CHECK(TreeListing(agent.mnt("untar/tree")) == TreeListing(src.path + "/tree"));

    // git clone of a local repository, then a clean git status.
    std::string repo = src.path + "/repo";
    REQUIRE(Run("git init -q " + repo + " && cp -a " + src.path + "/tree/. " + repo + "/ && cd " + repo +
                " && git -c user.name=t -c user.email=t@t add -A && git -c user.name=t -c user.email=t@t commit -qm one"
                " && echo more >> a.bin && git -c user.name=t -c user.email=t@t commit -qam two").code == 0);
    CmdResult clone = Run("git clone -q " + repo + " " + agent.mnt("clone"));
    INFO(clone.out << agent.log());
    REQUIRE(clone.code == 0);
    CmdResult status = Run("cd " + agent.mnt("clone") + " && git status --porcelain && git fsck --no-progress 2>&1");
    INFO(status.out);
    CHECK(status.code == 0);
    CHECK(Run("cd " + agent.mnt("clone") + " && git status --porcelain").out.empty());

    // An editor's save: write a temp file, fsync, rename over the original.
    std::string doc = agent.mnt("cp/sub/b.txt");
    CmdResult save = Run("printf 'new text\\n' > " + agent.mnt("cp/sub/.b.txt.swp") +
                         " && sync " + agent.mnt("cp/sub/.b.txt.swp") + " && mv " + agent.mnt("cp/sub/.b.txt.swp") + " " + doc);
    INFO(save.out);
    REQUIRE(save.code == 0);
    CHECK(ReadFile(doc) == "new text\n");
    CHECK(store->Fetch("cp/sub/b.txt") == std::optional<std::string>("new text\n"));
    CHECK_FALSE(store->Fetch("cp/sub/.b.txt.swp").has_value());

    // Everything above is in the store: a new agent with an empty cache sees it.
    agent.Stop();
    Agent fresh;
    fresh.Start(store->uri(), store->agent_args());
    CHECK(TreeListing(fresh.mnt("rs")) == TreeListing(src.path + "/tree"));
    CHECK(Run("diff -r " + src.path + "/tree " + fresh.mnt("rs")).code == 0);
    CHECK(Run("cd " + fresh.mnt("clone") + " && git status --porcelain").out.empty());
  }
}

TEST_CASE("files of the multipart edge sizes are byte-identical in the store", "[fuse][s3][write]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    const uint64_t mib5 = 5u << 20;
    std::vector<std::pair<std::string, uint64_t>> files = {
        {"zero", 0}, {"five-1", mib5 - 1}, {"five", mib5}, {"five+1", mib5 + 1}, {"dir/sixty-four", 64u << 20}};
    Agent agent;
    std::vector<std::string> args = store->agent_args();
    args.insert(args.end(), {"--upload-part-size", "5MiB"});
    agent.Start(store->uri(), args);
    fs::create_directory(agent.mnt("dir"));
    for (size_t i = 0; i < files.size(); i++) {
      std::string local = src.path + "/f" + std::to_string(i);
      WriteRandomFile(local, files[i].second, static_cast<uint32_t>(10 + i));
      CmdResult r = Run("dd if=" + local + " of=" + ShellQuote(agent.mnt(files[i].first)) + " bs=1M conv=fsync status=none");
      INFO(r.out << agent.log());
      REQUIRE(r.code == 0);
    }
    // Read back on this host: the uploaded blocks were kept, no GET.
    DropPageCache();
    uint64_t gets = agent.Gets();
    for (size_t i = 0; i < files.size(); i++)
      CHECK(Sha256File(agent.mnt(files[i].first)) == Sha256File(src.path + "/f" + std::to_string(i)));
    CHECK(agent.Gets() == gets);
    for (size_t i = 0; i < files.size(); i++) {
      int rc = ::chmod(agent.mnt(files[i].first).c_str(), 0640);
      INFO(std::strerror(errno) << "\n" << agent.log());
      REQUIRE(rc == 0);
    }
    // As another client sees the store.
    for (size_t i = 0; i < files.size(); i++) {
      INFO(files[i].first);
      std::optional<std::string> got = store->Fetch(files[i].first);
      REQUIRE(got.has_value());
      CHECK(got->size() == files[i].second);
      CHECK(Sha256(*got) == Sha256File(src.path + "/f" + std::to_string(i)));
      if (store->uri().rfind("file://", 0) != 0) {  // object stores keep them as metadata
        auto meta = store->Meta(files[i].first);
        CHECK(meta["mode"] == std::to_string(S_IFREG | 0640));
        CHECK(meta["uid"] == std::to_string(::getuid()));
        CHECK(meta["gid"] == std::to_string(::getgid()));
        CHECK(std::atoll(meta["mtime"].c_str()) > 1700000000);
      }
    }
    // Through an empty cache.
    agent.Stop();
    Agent fresh;
    fresh.Start(store->uri(), store->agent_args());
    for (size_t i = 0; i < files.size(); i++) {
      INFO(files[i].first);
      struct stat st;
      REQUIRE(::stat(fresh.mnt(files[i].first).c_str(), &st) == 0);
      CHECK(static_cast<uint64_t>(st.st_size) == files[i].second);
      CHECK((st.st_mode & 07777) == 0640);
      CHECK(Sha256File(fresh.mnt(files[i].first)) == Sha256File(src.path + "/f" + std::to_string(i)));
    }
  }
}

TEST_CASE("objects written by other tools get the configured owner and modes", "[fuse][s3][write]") {
  auto store = MakeStore("s3");
  TempDir src;
  WriteRandomFile(src.path + "/f", 10, 1);
  store->Put("plain", src.path + "/f");
  Agent agent;
  std::vector<std::string> args = store->agent_args();
  args.insert(args.end(), {"--uid", "1234", "--gid", "99", "--file-mode", "0604"});
  agent.Start(store->uri(), args);
  struct stat st;
  REQUIRE(::stat(agent.mnt("plain").c_str(), &st) == 0);
  CHECK(st.st_uid == 1234);
  CHECK(st.st_gid == 99);
  CHECK((st.st_mode & 07777) == 0604);
  // chown/chmod on it land in the s3fs keys.
  REQUIRE(::chown(agent.mnt("plain").c_str(), 7, 8) == 0);
  REQUIRE(::chmod(agent.mnt("plain").c_str(), 0612) == 0);
  auto meta = store->Meta("plain");
  CHECK(meta["uid"] == "7");
  CHECK(meta["gid"] == "8");
  CHECK(meta["mode"] == std::to_string(S_IFREG | 0612));
  CHECK(store->Fetch("plain") == std::optional<std::string>(ReadFile(src.path + "/f")));
}

TEST_CASE("POSIX corner cases: append, truncate, unlink while open, rename, rmdir, links", "[fuse][s3][write]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    WriteRandomFile(src.path + "/big", 9u << 20, 5);
    store->Put("big", src.path + "/big");
    Agent agent;
    agent.Start(store->uri(), store->agent_args());

    // O_APPEND on an existing object: the store's bytes, then the new ones.
    {
      int fd = ::open(agent.mnt("big").c_str(), O_WRONLY | O_APPEND);
      REQUIRE(fd >= 0);
      REQUIRE(::write(fd, "tail", 4) == 4);
      REQUIRE(::close(fd) == 0);
      std::string want = ReadFile(src.path + "/big") + "tail";
      CHECK(Sha256(ReadFile(agent.mnt("big"))) == Sha256(want));
      CHECK(store->Fetch("big").has_value());
      CHECK(Sha256(store->Fetch("big").value_or("")) == Sha256(want));
    }
    // A write in the middle of a block keeps the rest of the block.
    {
      int fd = ::open(agent.mnt("big").c_str(), O_WRONLY);
      REQUIRE(fd >= 0);
      REQUIRE(::pwrite(fd, "XYZ", 3, 5000000) == 3);
      REQUIRE(::ftruncate(fd, 6000000) == 0);
      REQUIRE(::close(fd) == 0);
      std::string want = ReadFile(src.path + "/big").substr(0, 6000000);
      want.replace(5000000, 3, "XYZ");
      CHECK(Sha256(store->Fetch("big").value_or("")) == Sha256(want));
      CHECK(fs::file_size(agent.mnt("big")) == 6000000);
    }
    // truncate(2) on a path, growing: zeros.
    REQUIRE(::truncate(agent.mnt("big").c_str(), 6000010) == 0);
    CHECK(store->Fetch("big").value_or("").substr(6000000) == std::string(10, '\0'));

    // Unlink of an open file: the open descriptor keeps working, the store forgets it.
    {
      int fd = ::open(agent.mnt("tmp").c_str(), O_RDWR | O_CREAT, 0644);
      REQUIRE(fd >= 0);
      REQUIRE(::write(fd, "scratch", 7) == 7);
      REQUIRE(::unlink(agent.mnt("tmp").c_str()) == 0);
      CHECK_FALSE(fs::exists(agent.mnt("tmp")));
      char buf[8] = {};
      CHECK(::pread(fd, buf, 7, 0) == 7);
      CHECK(std::string(buf) == "scratch");
      struct stat st;
      CHECK(::fstat(fd, &st) == 0);
      CHECK(::close(fd) == 0);
      CHECK_FALSE(store->Fetch("tmp").has_value());
    }
    // Directories: ENOTEMPTY, rename of a tree, rmdir.
    fs::create_directories(agent.mnt("d1/sub"));
    std::ofstream(agent.mnt("d1/sub/f")) << "in the tree";
    CHECK(::rmdir(agent.mnt("d1").c_str()) != 0);
    CHECK(errno == ENOTEMPTY);
    REQUIRE(::rename(agent.mnt("d1").c_str(), agent.mnt("d2").c_str()) == 0);
    CHECK_FALSE(fs::exists(agent.mnt("d1")));
    CHECK(ReadFile(agent.mnt("d2/sub/f")) == "in the tree");
    CHECK(store->Fetch("d2/sub/f") == std::optional<std::string>("in the tree"));
    CHECK_FALSE(store->Fetch("d1/sub/f").has_value());
    REQUIRE(::unlink(agent.mnt("d2/sub/f").c_str()) == 0);
    CHECK(::rmdir(agent.mnt("d2/sub").c_str()) == 0);
    CHECK(::rmdir(agent.mnt("d2").c_str()) == 0);
    CHECK_FALSE(fs::exists(agent.mnt("d2")));

    // rename over an existing file replaces it; RENAME_NOREPLACE refuses.
    std::ofstream(agent.mnt("x")) << "x";
    std::ofstream(agent.mnt("y")) << "y";
    REQUIRE(::rename(agent.mnt("x").c_str(), agent.mnt("y").c_str()) == 0);
    CHECK(ReadFile(agent.mnt("y")) == "x");
    CHECK(store->Fetch("y") == std::optional<std::string>("x"));
    CHECK(Run("mv -n " + agent.mnt("y") + " " + agent.mnt("big") + " && test -e " + agent.mnt("y")).code == 0);

    // Symbolic links; hard links and FIFOs are refused clearly.
    REQUIRE(::symlink("y", agent.mnt("ln").c_str()) == 0);
    char target[64] = {};
    CHECK(::readlink(agent.mnt("ln").c_str(), target, sizeof(target)) == 1);
    CHECK(std::string(target) == "y");
    CHECK(ReadFile(agent.mnt("ln")) == "x");
    CHECK(::link(agent.mnt("y").c_str(), agent.mnt("hard").c_str()) != 0);
    CHECK(errno == EPERM);
    CHECK(::mkfifo(agent.mnt("fifo").c_str(), 0644) != 0);
    CHECK(errno == EPERM);
    CHECK(::open(agent.mnt("y").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644) < 0);
    CHECK(errno == EEXIST);

    // A restart with an empty cache sees the same namespace.
    std::string before = TreeListing(agent.mnt(), false);
    agent.Stop();
    Agent fresh;
    fresh.Start(store->uri(), store->agent_args());
    CHECK(TreeListing(fresh.mnt(), false) == before);
  }
}

TEST_CASE("random writes, truncates and reads match a model of the file", "[fuse][s3][write]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  std::string block = GENERATE(as<std::string>{}, "64KiB", "4MiB");
  SECTION(kind + " " + block) {
    auto store = MakeStore(kind);
    TempDir src;
    WriteRandomFile(src.path + "/base", 3u << 20, 77);
    store->Put("f", src.path + "/base");
    Agent agent;
    std::vector<std::string> args = store->agent_args();
    args.insert(args.end(), {"--block-size", block});
    agent.Start(store->uri(), args);

    std::string model = ReadFile(src.path + "/base");
    std::mt19937_64 rng(block.size() * 31 + kind.size());
    int fd = ::open(agent.mnt("f").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    const uint64_t span = 6u << 20;
    int ops = 0, mismatches = 0;
    std::string first_mismatch, history;  // the last operations, for the report
    auto note = [&](const std::string& what) {
      history += " " + what;
      if (history.size() > 600) history.erase(0, history.size() - 600);
    };
    for (; ops < 2500; ops++) {
      int op = static_cast<int>(rng() % 100);
      if (op < 45) {
        uint64_t off = rng() % span;
        size_t len = 1 + rng() % (rng() % 4 == 0 ? 300000 : 5000);
        std::string data(len, '\0');
        for (char& c : data) c = static_cast<char>('a' + rng() % 26);
        REQUIRE(::pwrite(fd, data.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len));
        if (model.size() < off + len) model.resize(off + len, '\0');
        model.replace(off, len, data);
        note("w" + std::to_string(off) + "+" + std::to_string(len));
      } else if (op < 50) {
        uint64_t size = rng() % span;
        REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
        model.resize(size, '\0');
        note("t" + std::to_string(size));
      } else if (op < 98) {
        uint64_t off = rng() % (span + 1000);
        size_t len = 1 + rng() % 200000;
        std::string got(len, '\0');
        ssize_t n = ::pread(fd, got.data(), len, static_cast<off_t>(off));
        REQUIRE(n >= 0);
        got.resize(static_cast<size_t>(n));
        std::string want = off < model.size() ? model.substr(off, len) : "";
        if (got != want && mismatches++ == 0) {
          size_t k = 0;
          while (k < got.size() && k < want.size() && got[k] == want[k]) k++;
          first_mismatch = "op " + std::to_string(ops) + ": read " + std::to_string(len) + " at " + std::to_string(off) +
                           " got " + std::to_string(got.size()) + " bytes, want " + std::to_string(want.size()) +
                           ", first difference at " + std::to_string(off + k) + "; file size " +
                           std::to_string(model.size()) + "; before:" + history;
        }
      } else if (op < 99) {
        REQUIRE(::fsync(fd) == 0);
        note("fsync");
      } else {
        REQUIRE(::close(fd) == 0);
        fd = ::open(agent.mnt("f").c_str(), O_RDWR);
        REQUIRE(fd >= 0);
        note("reopen");
      }
    }
    REQUIRE(::close(fd) == 0);
    INFO(first_mismatch);
    CHECK(mismatches == 0);
    CHECK(ReadFile(agent.mnt("f")) == model);
    CHECK(store->Fetch("f") == std::optional<std::string>(model));
  }
}

TEST_CASE("cache-only mounts never touch the store and say so", "[fuse][write]") {
  auto store = MakeStore("file");
  TempDir src;
  WriteRandomFile(src.path + "/f", 100, 1);
  store->Put("f", src.path + "/f");
  Agent agent;
  agent.Start(store->uri(), {"--write-mode", "cache-only"});
  // Store objects cannot change...
  CHECK(::open(agent.mnt("f").c_str(), O_WRONLY) < 0);
  CHECK(errno == EROFS);
  CHECK(::unlink(agent.mnt("f").c_str()) != 0);
  CHECK(errno == EROFS);
  // ...new files and directories live on this host only, across a restart.
  fs::create_directory(agent.mnt("scratch"));
  std::ofstream(agent.mnt("scratch/out")) << "local only";
  CHECK(ReadFile(agent.mnt("scratch/out")) == "local only");
  CHECK_FALSE(store->Fetch("scratch/out").has_value());
  CHECK(agent.Stat()["writes"]["cache_only_files"] == 1);
  CHECK(agent.Ctl("stat").out.find("CACHE-ONLY") != std::string::npos);
  agent.Stop();
  agent.Start(store->uri(), {"--write-mode", "cache-only"});
  CHECK(ReadFile(agent.mnt("scratch/out")) == "local only");
  CHECK(Sha256File(agent.mnt("f")) == Sha256File(src.path + "/f"));
  CHECK_FALSE(store->Fetch("scratch/out").has_value());
}

TEST_CASE("appending to a large object in async mode: no copy at close; unchanged parts copied in the store",
          "[fuse][s3][write][append]") {
  // On RGW (UploadPartCopy) and Azure (Put Block From URL) the unchanged
  // parts never pass through the agent; s3rver has no UploadPartCopy, and
  // the agent sends them itself.
  std::string kind = GENERATE(from_range(StoreKinds()));
  if (kind == "file") return;  // a file system has no parts
  auto store = MakeStore(kind);
  TempDir src;
  const uint64_t size = 40u << 20;
  WriteRandomFile(src.path + "/big", size, 31);
  store->Put("big.bin", src.path + "/big");
  Agent agent;
  std::vector<std::string> args = store->agent_args();
  args.insert(args.end(), {"--write-mode", "async", "--upload-part-size", "5MiB"});
  agent.Start(store->uri(), args);
  REQUIRE(fs::file_size(agent.mnt("big.bin")) == size);
  CmdResult r = Run("printf x >> " + ShellQuote(agent.mnt("big.bin")));
  REQUIRE(r.code == 0);
  // The close staged the byte, not a copy of the object (the upload, which
  // may already be running, reads the stored version; staging stays small).
  uint64_t staged = 0;
  for (auto& e : fs::recursive_directory_iterator(agent.cache_dir() + "/staging")) {
    struct stat st;
    if (::stat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) staged += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  CHECK(staged < (1u << 20));
  CmdResult f = agent.Ctl("flush --timeout 120");
  INFO(f.out << agent.log());
  REQUIRE(f.code == 0);
  std::optional<std::string> got = store->Fetch("big.bin");
  REQUIRE(got.has_value());
  CHECK(got->size() == size + 1);
  CHECK(Sha256(got->substr(0, size)) == Sha256File(src.path + "/big"));
  CHECK(got->back() == 'x');
  auto mount = agent.Stat()["mounts"][0];
  if (UsingRgw() || kind == "azure") {
    CHECK(mount["part_copies"] == 8);  // parts 1-8 of 9 (5 MiB each), all but the appended tail
    CHECK(agent.Gets() == 0);
  } else {
    CHECK(mount["part_copies"] == 0);
    CHECK(mount["bytes_fetched"].get<uint64_t>() >= 40u << 20);  // sent from here instead
  }
}

namespace {
// Waits up to 30 s for the root store's streamed_parts to reach `n`.
uint64_t AwaitStreamedParts(const Agent& agent, uint64_t n) {
  uint64_t parts = 0;
  for (int i = 0; i < 300; i++) {
    parts = agent.Stat()["mounts"][0]["streamed_parts"].get<uint64_t>();
    if (parts >= n) break;
    std::this_thread::sleep_for(100ms);
  }
  return parts;
}
}  // namespace

TEST_CASE("through mode: a growing file's parts go while it is written; a rewrite or rename sends it whole",
          "[fuse][s3][write][stream]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  if (kind == "file") return;  // a file system is written whole
  auto store = MakeStore(kind);
  Agent agent;
  std::vector<std::string> args = store->agent_args();
  args.insert(args.end(), {"--write-mode", "through", "--upload-part-size", "5MiB"});
  agent.Start(store->uri(), args);
  TempDir src;
  WriteRandomFile(src.path + "/data", 33u << 20, 41);
  const std::string data = ReadFile(src.path + "/data");

  // Sequential: 6 full parts go before the close, the 3 MiB tail with it.
  int fd = ::open(agent.mnt("seq.bin").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0640);
  REQUIRE(fd >= 0);
  WriteAll(fd, data.substr(0, 30u << 20));
  CHECK(AwaitStreamedParts(agent, 6) == 6);
  CHECK_FALSE(store->Fetch("seq.bin").has_value());  // nothing visible before the close
  WriteAll(fd, data.substr(30u << 20));
  REQUIRE(::close(fd) == 0);
  CHECK(store->Fetch("seq.bin").value_or("") == data);
  auto st = agent.Stat();
  CHECK(st["mounts"][0]["streamed_parts"] == 7);
  CHECK(st["writes"]["streamed_uploads"] == 1);
  struct stat sb;
  REQUIRE(::stat(agent.mnt("seq.bin").c_str(), &sb) == 0);
  CHECK((sb.st_mode & 07777) == 0640);
  CHECK(static_cast<uint64_t>(sb.st_size) == data.size());

  // A rewrite of bytes already sent: the stream is dropped, the close sends
  // the file whole, with the rewrite.
  fd = ::open(agent.mnt("rewrite.bin").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  WriteAll(fd, data.substr(0, 12u << 20));
  AwaitStreamedParts(agent, 9);
  REQUIRE(::pwrite(fd, "HEADER", 6, 0) == 6);
  REQUIRE(::close(fd) == 0);
  std::string expect = data.substr(0, 12u << 20);
  expect.replace(0, 6, "HEADER");
  CHECK(store->Fetch("rewrite.bin").value_or("") == expect);
  CHECK(agent.Stat()["writes"]["streamed_uploads"] == 1);

  // Renamed while open: the parts sent under the old name are dropped.
  fd = ::open(agent.mnt("before.bin").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  WriteAll(fd, data.substr(0, 11u << 20));
  AwaitStreamedParts(agent, 11);
  REQUIRE(::rename(agent.mnt("before.bin").c_str(), agent.mnt("after.bin").c_str()) == 0);
  WriteAll(fd, data.substr(11u << 20, 1u << 20));
  // A time set on the open file (cp -p, rsync -t) is kept.
  struct timespec times[2] = {{1600000000, 0}, {1600000000, 0}};
  REQUIRE(::futimens(fd, times) == 0);
  REQUIRE(::close(fd) == 0);
  CHECK(store->Fetch("after.bin").value_or("") == data.substr(0, 12u << 20));
  CHECK_FALSE(store->Fetch("before.bin").has_value());
  REQUIRE(::stat(agent.mnt("after.bin").c_str(), &sb) == 0);
  CHECK(sb.st_mtime == 1600000000);

  // The same with a time set while streaming: completed, then restamped.
  fd = ::open(agent.mnt("stamped.bin").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  WriteAll(fd, data.substr(0, 11u << 20));
  REQUIRE(::futimens(fd, times) == 0);
  REQUIRE(::close(fd) == 0);
  CHECK(store->Fetch("stamped.bin").value_or("") == data.substr(0, 11u << 20));
  CHECK(agent.Stat()["writes"]["streamed_uploads"] == 2);
  agent.Stop();
  agent.Start(store->uri(), args);  // attributes as the store has them
  REQUIRE(::stat(agent.mnt("stamped.bin").c_str(), &sb) == 0);
  CHECK(sb.st_mtime == 1600000000);
  CHECK(static_cast<uint64_t>(sb.st_size) == (11u << 20));
}
