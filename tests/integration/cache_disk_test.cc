// The cache disk failing under a running agent (issue 13, item 2): block
// files that return EIO, a full disk, a disk remounted read-only (through
// tests/chaos/faultfs.cc mounted under <cache-dir>/blocks: this kernel has no
// device-mapper for a dm-error target), block files cut short, a deleted
// index. The agent serves from the store where it can, says what it
// dropped, and never serves bytes it could not verify.
#include <lmdb.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/integration/harness.h"

using namespace strata::it;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const char* const kFaultFs = std::getenv("STRATA_FAULTFS") ? std::getenv("STRATA_FAULTFS") : "build/faultfs";

// faultfs over <cache>/blocks, backed by <cache>/blocks-backing; mounted
// before the agent starts, unmounted after it stops.
class FaultFs {
 public:
  explicit FaultFs(const std::string& cache_dir) : mnt_(cache_dir + "/blocks"), backing_(cache_dir + "/blocks-backing") {
    fs::create_directories(mnt_);
    fs::create_directories(backing_);
    Set("ok");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(kFaultFs, kFaultFs, backing_.c_str(), mnt_.c_str(), control().c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 100 && !IsMounted(mnt_); i++) std::this_thread::sleep_for(50ms);
    REQUIRE(IsMounted(mnt_));
  }
  ~FaultFs() {
    Run("fusermount3 -u -z " + ShellQuote(mnt_));
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  // "ok", "eio", "enospc" or "erofs"; faultfs reads it within 50 ms.
  void Set(const std::string& mode) const {
    std::ofstream(control()) << mode << "\n";
    std::this_thread::sleep_for(200ms);
  }
  const std::string& backing() const { return backing_; }

 private:
  std::string control() const { return backing_ + "/../faultfs.mode"; }
  std::string mnt_, backing_;
  pid_t pid_ = -1;
};

uint64_t EngineStat(const Agent& a, const char* name) { return a.Stat()[name].get<uint64_t>(); }

std::vector<std::string> BlockFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".blk") out.push_back(e.path());
  return out;
}

}  // namespace

TEST_CASE("cache disk faults: EIO, a full disk, a read-only disk: reads served from the store, right bytes",
          "[fuse][s3][cachedisk]") {
  auto store = MakeStore("file");
  TempDir src;
  std::map<std::string, std::string> content;
  std::vector<std::pair<std::string, std::string>> objects;
  for (const char* name : {"warm", "eio-new", "full", "ro"}) {
    std::string f = src.path + "/" + name;
    WriteRandomFile(f, 9u << 20, static_cast<uint32_t>(objects.size() + 3));
    content[name] = ReadFile(f);
    objects.emplace_back(name, f);
  }
  store->PutMany(objects);

  Agent agent;
  FaultFs faults(agent.cache_dir());
  // No background scrub: it reads block files too, and would find the
  // failing disk before the reader this test watches (its own drops are
  // counted the same way; a unit test has them).
  std::vector<std::string> args = store->agent_args();
  args.insert(args.end(), {"--scrub-rate", "0"});
  agent.Start(store->uri(), args);
  // Cached and verified (the first read checks every chunk).
  REQUIRE(ReadFile(agent.mnt("warm")) == content["warm"]);
  REQUIRE(ReadFile(agent.mnt("warm")) == content["warm"]);
  INFO(agent.log());
  // Blocks are written to disk behind the readers: all of "warm" is there
  // before the disk fails (else a block still being written fails its
  // fsync and is simply not kept).
  for (int i = 0; i < 200 && EngineStat(agent, "used_bytes") < (9u << 20); i++) std::this_thread::sleep_for(50ms);
  REQUIRE(EngineStat(agent, "used_bytes") >= (9u << 20));
  std::vector<std::string> blocks = BlockFiles(faults.backing());
  REQUIRE(!blocks.empty());

  SECTION("block files that fail with EIO are dropped and read from the store again") {
    faults.Set("eio");
    DropPageCache();
    // The disk fails now: a block file read through faultfs gives EIO.
    std::string through = agent.cache_dir() + "/blocks" + blocks[0].substr(faults.backing().size());
    int err = 0;
    std::string ignored;
    for (int i = 0; i < 100 && err != EIO; i++) {
      if (ReadWhole(through, &ignored, &err)) err = 0;
      if (err != EIO) std::this_thread::sleep_for(50ms), DropPageCache();
    }
    REQUIRE(err == EIO);
    CHECK(ReadFile(agent.mnt("warm")) == content["warm"]);
    CHECK(EngineStat(agent, "block_file_errors") > 0);
    CHECK(ReadFile(agent.mnt("eio-new")) == content["eio-new"]);
    CHECK(agent.log().find("dropping block") != std::string::npos);
  }
  SECTION("a full disk: blocks served without being kept") {
    faults.Set("enospc");
    uint64_t before = EngineStat(agent, "uncached_fetches");
    CHECK(ReadFile(agent.mnt("full")) == content["full"]);
    CHECK(ReadFile(agent.mnt("full")) == content["full"]);
    CHECK(EngineStat(agent, "uncached_fetches") > before);
    CHECK(agent.log().find("not keeping blocks") != std::string::npos);
    faults.Set("ok");
    CHECK(ReadFile(agent.mnt("warm")) == content["warm"]);
  }
  SECTION("a read-only disk: blocks served without being kept") {
    faults.Set("erofs");
    uint64_t before = EngineStat(agent, "uncached_fetches");
    CHECK(ReadFile(agent.mnt("ro")) == content["ro"]);
    CHECK(EngineStat(agent, "uncached_fetches") > before);
    CHECK(agent.log().find("not keeping blocks") != std::string::npos);
  }
  faults.Set("ok");
  agent.Stop();
}

TEST_CASE("cache disk faults: block files cut short while the agent runs, an index deleted while it is down",
          "[fuse][s3][cachedisk]") {
  auto store = MakeStore("file");
  TempDir src;
  WriteRandomFile(src.path + "/f", 10u << 20, 77);
  const std::string want = ReadFile(src.path + "/f");
  store->Put("f", src.path + "/f");
  Agent agent;
  agent.Start(store->uri(), store->agent_args());
  REQUIRE(ReadFile(agent.mnt("f")) == want);
  REQUIRE(ReadFile(agent.mnt("f")) == want);  // every chunk verified: later reads splice the block files

  SECTION("cut short: caught by the splice, dropped, fetched again") {
    std::vector<std::string> blocks = BlockFiles(agent.cache_dir() + "/blocks");
    REQUIRE(blocks.size() >= 2);
    for (const std::string& b : blocks) fs::resize_file(b, fs::file_size(b) / 2);
    DropPageCache();
    CHECK(ReadFile(agent.mnt("f")) == want);
    CHECK(EngineStat(agent, "block_file_errors") > 0);
    CHECK(agent.log().find("dropping block") != std::string::npos);
    DropPageCache();
    CHECK(ReadFile(agent.mnt("f")) == want);
    agent.Stop();
  }
  SECTION("the index deleted: the agent starts empty and removes the orphaned block files") {
    agent.Stop();
    fs::remove_all(agent.cache_dir() + "/index");
    REQUIRE(!BlockFiles(agent.cache_dir() + "/blocks").empty());
    agent.Start(store->uri(), store->agent_args());
    CHECK(agent.log().find("orphan block file(s) removed") != std::string::npos);
    CHECK(BlockFiles(agent.cache_dir() + "/blocks").empty());
    CHECK(ReadFile(agent.mnt("f")) == want);
    agent.Stop();
  }
}

TEST_CASE("cache disk faults: the index's disk full: files still served from the store", "[fuse][s3][cachedisk]") {
  auto store = MakeStore("file");
  TempDir src;
  std::vector<std::pair<std::string, std::string>> objects;
  std::map<std::string, std::string> content;
  for (int i = 0; i < 300; i++) {
    std::string name = "d/file-" + std::to_string(i) + std::string(100, 'x');
    std::string f = src.path + "/" + std::to_string(i);
    WriteRandomFile(f, 20000, static_cast<uint32_t>(i + 1));
    content[name] = ReadFile(f);
    objects.emplace_back(name, f);
  }
  store->PutMany(objects);
  Agent agent;
  // A small file system of its own for the index, filled by the files' rows.
  std::string index_dir = agent.cache_dir() + "/index";
  fs::create_directories(index_dir);
  REQUIRE(Run("mount -t tmpfs -o size=160k tmpfs " + ShellQuote(index_dir)).code == 0);
  agent.Start(store->uri(), store->agent_args());
  int wrong = 0, failed = 0;
  for (auto& [name, bytes] : content) {
    std::ifstream in(agent.mnt(name), std::ios::binary);
    if (!in) {
      failed++;
      continue;
    }
    std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    wrong += got != bytes;
  }
  CHECK(wrong == 0);
  CHECK(failed == 0);
  INFO(agent.log());
  CHECK(agent.log().find("index: cannot record") != std::string::npos);
  agent.Stop();
  Run("umount -l " + ShellQuote(index_dir));
}

TEST_CASE("cache disk faults: a reader slot left by a killed process is cleared at start", "[fuse][s3][cachedisk]") {
  auto store = MakeStore("file");
  TempDir src;
  WriteRandomFile(src.path + "/f", 5u << 20, 5);
  store->Put("f", src.path + "/f");
  Agent agent;
  agent.Start(store->uri(), store->agent_args());
  REQUIRE(ReadFile(agent.mnt("f")) == ReadFile(src.path + "/f"));
  agent.Stop();
  const std::string index = agent.cache_dir() + "/index";
  // This process holds the index open (else LMDB resets the reader table
  // when the agent opens it first) while a child takes a reader slot and
  // dies holding it.
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxreaders(env, 254);
  REQUIRE(mdb_env_open(env, index.c_str(), MDB_RDONLY | MDB_NOTLS, 0644) == 0);
  pid_t child = ::fork();
  if (child == 0) {
    MDB_env* e = nullptr;
    MDB_txn* txn = nullptr;
    if (mdb_env_create(&e) == 0 && mdb_env_set_maxreaders(e, 254) == 0 &&
        mdb_env_open(e, index.c_str(), MDB_RDONLY | MDB_NOTLS, 0644) == 0 &&
        mdb_txn_begin(e, nullptr, MDB_RDONLY, &txn) == 0)
      ::kill(::getpid(), SIGKILL);  // dies with its read transaction open
    ::_exit(1);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  agent.Start(store->uri(), store->agent_args());
  CHECK(agent.log().find("cleared 1 stale reader slot") != std::string::npos);
  CHECK(ReadFile(agent.mnt("f")) == ReadFile(src.path + "/f"));
  CHECK(agent.Stat()["fetched_blocks"].get<uint64_t>() == 0);  // the cache survived
  agent.Stop();
  mdb_env_close(env);
}
