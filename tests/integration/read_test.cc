// Reading through a real mount over a local directory and over s3rver.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/harness.h"

using namespace strata::it;
namespace fs = std::filesystem;

namespace {
constexpr uint64_t kBlock = 4u << 20;

std::string Pread(const std::string& path, uint64_t off, size_t len, int* err = nullptr) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    if (err) *err = errno;
    return "";
  }
  std::string out(len, '\0');
  ssize_t n = ::pread(fd, out.data(), len, static_cast<off_t>(off));
  if (err) *err = n < 0 ? errno : 0;
  ::close(fd);
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}
}  // namespace

TEST_CASE("files of every size read back identical", "[fuse][s3][read]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    std::vector<std::pair<std::string, uint64_t>> files = {
        {"empty", 0}, {"one", 1}, {"block-1", kBlock - 1}, {"block", kBlock},
        {"block+1", kBlock + 1}, {"dir a/big 100MiB+x.bin", 100u << 20}};
    for (size_t i = 0; i < files.size(); i++) {
      std::string local = src.path + "/f" + std::to_string(i);
      WriteRandomFile(local, files[i].second, static_cast<uint32_t>(i + 1));
      store->Put(files[i].first, local);
    }
    Agent agent;
    agent.Start(store->uri(), store->agent_args());
    for (size_t i = 0; i < files.size(); i++) {
      INFO(files[i].first);
      std::string local = src.path + "/f" + std::to_string(i);
      CHECK(fs::file_size(agent.mnt(files[i].first)) == files[i].second);
      CHECK(Sha256File(agent.mnt(files[i].first)) == Sha256File(local));
    }
    // Warm, with the kernel's pages dropped: served from the SSD tier.
    uint64_t gets = agent.Gets();
    DropPageCache();
    CHECK(Sha256File(agent.mnt("dir a/big 100MiB+x.bin")) == Sha256File(src.path + "/f5"));
    CHECK(agent.Gets() == gets);
    auto st = agent.Stat();
    CHECK(st["hit_ratio"].get<double>() > 0.3);
    CHECK(st["mounts"][0]["bytes_fetched"].get<uint64_t>() == (100u << 20) + 3 * kBlock + 1);
  }
}

TEST_CASE("random-offset reads match the source", "[fuse][s3][read]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    WriteRandomFile(src.path + "/r", 20u << 20, 42);
    store->Put("r.bin", src.path + "/r");
    std::string want = ReadFile(src.path + "/r");
    Agent agent;
    agent.Start(store->uri(), store->agent_args());
    std::mt19937 rng(7);
    for (int i = 0; i < 200; i++) {
      uint64_t off = rng() % want.size();
      size_t len = 1 + rng() % (3u << 20);
      INFO("off " << off << " len " << len);
      REQUIRE(Pread(agent.mnt("r.bin"), off, len) == want.substr(off, len));
      if (i % 50 == 0) DropPageCache();
    }
  }
}

TEST_CASE("a directory of 10,000 entries lists completely", "[fuse][s3][list]") {
  std::string kind = GENERATE(from_range(StoreKinds(false)));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    std::string one = src.path + "/one";
    WriteRandomFile(one, 3, 1);
    std::set<std::string> want;
    std::vector<std::pair<std::string, std::string>> puts;
    for (int i = 0; i < 10000; i++) {
      std::string name = "entry-" + std::to_string(i) + (i % 7 == 0 ? " sp+ace%" : "");
      want.insert(name);
      puts.emplace_back("many/" + name, one);
    }
    store->PutMany(puts);
    Agent agent;
    agent.Start(store->uri(), store->agent_args());
    for (int pass = 0; pass < 2; pass++) {  // cold, then from the index
      std::set<std::string> got;
      for (auto& e : fs::directory_iterator(agent.mnt("many"))) got.insert(e.path().filename().string());
      CHECK(got.size() == 10000);
      CHECK(got == want);
    }
    CHECK(fs::file_size(agent.mnt("many/entry-7 sp+ace%")) == 3);
  }
}

TEST_CASE("an object overwritten out of band is seen new after the TTL", "[fuse][s3][ttl]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    WriteRandomFile(src.path + "/v1", 3 * kBlock, 1);
    WriteRandomFile(src.path + "/v2", 3 * kBlock, 2);
    store->Put("obj", src.path + "/v1");
    Agent agent;
    std::vector<std::string> args = store->agent_args();
    args.insert(args.end(), {"--metadata-ttl", "1"});
    agent.Start(store->uri(), args);
    CHECK(Sha256File(agent.mnt("obj")) == Sha256File(src.path + "/v1"));
    store->Put("obj", src.path + "/v2");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    // Every byte from the new version: no block of the old one mixed in.
    CHECK(Sha256File(agent.mnt("obj")) == Sha256File(src.path + "/v2"));
    DropPageCache();
    CHECK(Sha256File(agent.mnt("obj")) == Sha256File(src.path + "/v2"));
    auto st = agent.CtlJson("stat --json obj");
    CHECK(st["blocks_cached"] == 3);
    CHECK(agent.Stat()["blocks"] == 3);  // the old version's blocks are gone
  }
}

TEST_CASE("a restart serves cached data with zero new GETs", "[fuse][s3][restart]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    WriteRandomFile(src.path + "/a", 30u << 20, 5);
    store->Put("data/a.bin", src.path + "/a");
    Agent agent;
    agent.Start(store->uri(), store->agent_args());
    CHECK(Sha256File(agent.mnt("data/a.bin")) == Sha256File(src.path + "/a"));
    CHECK(agent.Gets() > 0);
    agent.Stop();
    // A clean restart, then one after kill -9.
    for (bool crash : {false, true}) {
      std::vector<std::string> args = store->agent_args();
      args.insert(args.end(), {"--metadata-ttl", "0"});  // revalidate metadata: HEADs, no GETs
      agent.Start(store->uri(), args);
      CHECK(agent.Stat()["blocks"] == 8);
      CHECK(Sha256File(agent.mnt("data/a.bin")) == Sha256File(src.path + "/a"));
      CHECK(agent.Gets() == 0);
      if (crash) {
        agent.Kill();
        CHECK(IsMounted(agent.mnt()));  // stale: the next start clears it
      } else {
        agent.Stop();
      }
    }
  }
}

TEST_CASE("evict frees the space; load warms it again", "[fuse][s3][agentctl]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    WriteRandomFile(src.path + "/x", 10u << 20, 8);
    WriteRandomFile(src.path + "/y", 1u << 20, 9);
    store->Put("set/x.bin", src.path + "/x");
    store->Put("set/sub/y.bin", src.path + "/y");
    Agent agent;
    agent.Start(store->uri(), store->agent_args());
    auto load = agent.CtlJson("load -r --json set");
    CHECK(load["state"] == "done");
    CHECK(load["files_done"] == 2);
    CHECK(load["bytes_done"] == 11u << 20);
    CHECK(agent.Stat()["used_bytes"] == 11u << 20);
    CHECK(DirBytes(agent.cache_dir() + "/blocks") == 11u << 20);
    auto file = agent.CtlJson("stat --json " + agent.mnt("set/x.bin"));
    CHECK(file["cached_percent"].get<double>() == 100.0);
    CHECK(file["blocks_cached"] == 3);
    uint64_t gets = agent.Gets();
    CHECK(Sha256File(agent.mnt("set/x.bin")) == Sha256File(src.path + "/x"));
    CHECK(agent.Gets() == gets);  // loaded: zero GETs when read

    auto ev = agent.CtlJson("evict -r --json " + agent.mnt("set"));
    CHECK(ev["files"] == 2);
    CHECK(ev["bytes"] == 11u << 20);
    CHECK(agent.Stat()["used_bytes"] == 0);
    CHECK(DirBytes(agent.cache_dir() + "/blocks") == 0);
    // Human output.
    CmdResult human = agent.Ctl("load set/x.bin");
    CHECK(human.code == 0);
    CHECK(human.out.find("loaded 1 file(s), 10.0 MiB") != std::string::npos);
    human = agent.Ctl("stat");
    CHECK(human.out.find("hit ratio") != std::string::npos);
    CHECK(human.out.find(store->uri()) != std::string::npos);
    human = agent.Ctl("stat set/x.bin");
    CHECK(human.out.find("100.0%") != std::string::npos);
    // Directories need -r; bad paths are refused clearly.
    human = agent.Ctl("load set");
    CHECK(human.code == 1);
    CHECK(human.out.find("is a directory (use -r)") != std::string::npos);
    human = agent.Ctl("evict /etc/passwd");
    CHECK(human.code == 1);
    CHECK(human.out.find("outside the mount") != std::string::npos);
    human = agent.Ctl("stat set/missing");
    CHECK(human.code == 1);
    CHECK(human.out.find("missing") != std::string::npos);
  }
}

TEST_CASE("reading 3x the cache size never puts the cache over its limit", "[fuse][s3][limit]") {
  std::string kind = GENERATE(from_range(StoreKinds()));
  SECTION(kind) {
    auto store = MakeStore(kind);
    TempDir src;
    for (int i = 0; i < 6; i++) {
      WriteRandomFile(src.path + "/w" + std::to_string(i), 8u << 20, 20 + i);
      store->Put("w" + std::to_string(i), src.path + "/w" + std::to_string(i));
    }
    const uint64_t cap = 16u << 20;
    Agent agent;
    // The cache on its own tmpfs: statvfs gives an instant, exact usage.
    fs::create_directories(agent.cache_dir());
    REQUIRE(Run("mount -t tmpfs -o size=128m strata-test-cache " + agent.cache_dir()).code == 0);
    std::vector<std::string> args = store->agent_args();
    args.insert(args.end(), {"--cache-size", "16MiB", "--block-size", "1MiB"});
    agent.Start(store->uri(), args);
    auto allocated = [](const std::string& p) {
      struct stat st;
      return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
    };
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> max_seen{0};
    std::thread sampler([&] {
      while (!stop) {
        // What is not the index or the log is block data.
        uint64_t other = allocated(agent.cache_dir() + "/index/data.mdb") +
                         allocated(agent.cache_dir() + "/index/lock.mdb");
        struct statvfs sv;
        ::statvfs(agent.cache_dir().c_str(), &sv);
        uint64_t used = (sv.f_blocks - sv.f_bfree) * sv.f_frsize;
        max_seen = std::max<uint64_t>(max_seen, used > other ? used - other : 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
    std::vector<std::thread> readers;
    std::atomic<int> bad{0};
    for (int r = 0; r < 3; r++)
      readers.emplace_back([&, r] {
        for (int round = 0; round < 2; round++)
          for (int i = 0; i < 6; i++) {
            std::string n = "w" + std::to_string((i + 2 * r) % 6);
            if (Sha256File(agent.mnt(n)) != Sha256File(src.path + "/" + n)) bad++;
          }
      });
    for (auto& t : readers) t.join();
    stop = true;
    sampler.join();
    CHECK(bad == 0);
    CHECK(max_seen <= cap);
    CHECK(max_seen > cap / 2);
    auto st = agent.Stat();
    CHECK(st["used_bytes"].get<uint64_t>() <= cap);
    CHECK(st["evicted_blocks"].get<uint64_t>() > 0);
    agent.Stop();
    Run("umount " + agent.cache_dir());
  }
}

namespace {
// Flips bytes in the middle of the second block's file.
void CorruptSecondBlock(const Agent& agent) {
  std::string victim;
  for (auto& e : fs::recursive_directory_iterator(agent.cache_dir() + "/blocks"))
    if (e.path().string().find("-0000000000000001.blk") != std::string::npos) victim = e.path();
  REQUIRE_FALSE(victim.empty());
  int fd = ::open(victim.c_str(), O_WRONLY);
  REQUIRE(::pwrite(fd, "CORRUPT!", 8, 1000000) == 8);
  ::close(fd);
}
}  // namespace

TEST_CASE("a corrupted cache block is detected and fetched again", "[fuse][s3][corrupt]") {
  // --verify-reads: every read is checked, also of blocks this agent stored.
  auto store = MakeStore("s3");
  TempDir src;
  WriteRandomFile(src.path + "/c", 2 * kBlock, 77);
  store->Put("c.bin", src.path + "/c");
  Agent agent;
  std::vector<std::string> args = store->agent_args();
  args.push_back("--verify-reads");
  agent.Start(store->uri(), args);
  REQUIRE(Sha256File(agent.mnt("c.bin")) == Sha256File(src.path + "/c"));
  for (int i = 0; i < 100 && agent.Stat()["blocks"] != 2; i++) ::usleep(20000);
  uint64_t gets = agent.Gets();
  CorruptSecondBlock(agent);
  DropPageCache();
  CHECK(Sha256File(agent.mnt("c.bin")) == Sha256File(src.path + "/c"));
  auto st = agent.Stat();
  INFO(agent.log());
  CHECK(st["checksum_failures"] == 1);
  CHECK(agent.Gets() == gets + 1);
}

TEST_CASE("zero-copy reads: a block corrupted while the agent was down is caught after the restart",
          "[fuse][s3][corrupt]") {
  auto store = MakeStore("s3");
  TempDir src;
  WriteRandomFile(src.path + "/c", 3 * kBlock, 78);
  store->Put("c.bin", src.path + "/c");
  Agent agent;
  agent.Start(store->uri(), store->agent_args());
  REQUIRE(Sha256File(agent.mnt("c.bin")) == Sha256File(src.path + "/c"));
  for (int i = 0; i < 100 && agent.Stat()["blocks"] != 3; i++) ::usleep(20000);
  agent.Stop();
  CorruptSecondBlock(agent);
  agent.Start(store->uri(), store->agent_args());
  uint64_t gets = agent.Gets();
  DropPageCache();
  CHECK(Sha256File(agent.mnt("c.bin")) == Sha256File(src.path + "/c"));
  auto st = agent.Stat();
  INFO(agent.log());
  CHECK(st["checksum_failures"] == 1);
  CHECK(st["verified_blocks"] == 2);  // the two good ones, checked once each
  CHECK(agent.Gets() == gets + 1);
  // Read again: served from the (now verified) block files, nothing fetched.
  DropPageCache();
  CHECK(Sha256File(agent.mnt("c.bin")) == Sha256File(src.path + "/c"));
  CHECK(agent.Stat()["verified_blocks"] == 2);
  CHECK(agent.Gets() == gets + 1);
}

// [s3rver]: kills its own server mid-test.
TEST_CASE("a store that goes away: EIO for uncached data, cached data still served", "[fuse][s3][s3rver][fault]") {
  S3Server s3;
  s3.Start();
  s3.CreateBucket("gone");
  TempDir src;
  WriteRandomFile(src.path + "/cached", 5u << 20, 1);
  WriteRandomFile(src.path + "/uncached", 5u << 20, 2);
  s3.Put("gone", "cached.bin", src.path + "/cached");
  s3.Put("gone", "uncached.bin", src.path + "/uncached");
  Agent agent;
  agent.Start("s3://gone", {"--s3-endpoint", s3.endpoint(), "--metadata-ttl", "1", "--s3-timeout", "3"});
  REQUIRE(Sha256File(agent.mnt("cached.bin")) == Sha256File(src.path + "/cached"));
  REQUIRE(fs::file_size(agent.mnt("uncached.bin")) == 5u << 20);
  s3.Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // past the metadata TTL
  auto t0 = std::chrono::steady_clock::now();
  int err = 0;
  std::string got = Pread(agent.mnt("uncached.bin"), 0, 4096, &err);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(err == EIO);
  CHECK(secs < 30);  // bounded by the store deadline, never a hang
  DropPageCache();
  CHECK(Sha256File(agent.mnt("cached.bin")) == Sha256File(src.path + "/cached"));
  auto st = agent.Stat();
  CHECK(st["mounts"][0]["online"] == false);
  CHECK(st["fetch_errors"].get<uint64_t>() >= 1);
}

TEST_CASE("several stores in one namespace: file://, S3 and Azure side by side", "[fuse][s3][namespace]") {
  auto root = MakeStore("file");
  auto ref = MakeStore("s3");
  auto az = MakeStore("azure");
  TempDir src;
  WriteRandomFile(src.path + "/a", 1000, 1);
  WriteRandomFile(src.path + "/b", 5000, 2);
  WriteRandomFile(src.path + "/c", 7000, 3);
  root->Put("top.txt", src.path + "/a");
  ref->Put("inner/b.bin", src.path + "/b");
  az->Put("blobs/c.bin", src.path + "/c");
  Agent agent;
  std::vector<std::string> args = ref->agent_args();
  for (const std::string& a : az->agent_args()) args.push_back(a);
  args.insert(args.end(), {"--ufs", "data/ref=" + ref->uri(), "--ufs", "azure=" + az->uri()});
  agent.Start(root->uri(), args);
  std::set<std::string> names;
  for (auto& e : fs::directory_iterator(agent.mnt())) names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"top.txt", "data", "azure"});
  CHECK(Sha256File(agent.mnt("top.txt")) == Sha256File(src.path + "/a"));
  CHECK(Sha256File(agent.mnt("data/ref/inner/b.bin")) == Sha256File(src.path + "/b"));
  CHECK(Sha256File(agent.mnt("azure/blobs/c.bin")) == Sha256File(src.path + "/c"));
  // Written through the mount, each file lands in its own store.
  WriteRandomFile(agent.mnt("azure/blobs/new.bin"), 3000, 4);
  WriteRandomFile(agent.mnt("data/ref/new.bin"), 3000, 5);
  CHECK(az->Fetch("blobs/new.bin") == ReadFile(agent.mnt("azure/blobs/new.bin")));
  CHECK(ref->Fetch("new.bin") == ReadFile(agent.mnt("data/ref/new.bin")));
  // Across stores a rename is EXDEV (mv copies instead).
  CHECK(std::rename(agent.mnt("azure/blobs/new.bin").c_str(), agent.mnt("data/ref/moved.bin").c_str()) != 0);
  CHECK(errno == EXDEV);
  auto st = agent.Stat();
  REQUIRE(st["mounts"].size() == 3);
  CHECK(st["mounts"][1]["path"] == "/data/ref");
  CHECK(st["mounts"][1]["bytes_fetched"] == 5000);
  CHECK(st["mounts"][2]["path"] == "/azure");
  CHECK(st["mounts"][2]["bytes_fetched"] == 7000);
}

TEST_CASE("--attrs-from-listing: ls -l sends no HEAD; modes kept in object metadata are not read",
          "[fuse][s3][list]") {
  auto store = MakeStore("s3");
  TempDir src;
  WriteRandomFile(src.path + "/one", 1000, 2);
  std::vector<std::pair<std::string, std::string>> puts;
  for (int i = 0; i < 200; i++) puts.emplace_back("dir/f" + std::to_string(i), src.path + "/one");
  store->PutMany(puts);
  {
    Agent writer;  // a file whose mode lives in its object metadata
    writer.Start(store->uri(), store->agent_args());
    REQUIRE(Run("cp " + src.path + "/one " + writer.mnt("dir/private") + " && chmod 0600 " + writer.mnt("dir/private")).code == 0);
  }
  auto listing = [](Agent& a) {
    CmdResult r = Run("ls -ln " + a.mnt("dir") + " | grep -c '^-.* 1000 '");
    return r.out;
  };
  struct stat st;
  Agent fast;
  std::vector<std::string> args = store->agent_args();
  args.push_back("--attrs-from-listing");
  fast.Start(store->uri(), args);
  REQUIRE(::stat(fast.mnt("dir").c_str(), &st) == 0);  // the directory's own lookup may HEAD a marker
  uint64_t heads = fast.Stat()["mounts"][0]["head_requests"].get<uint64_t>();
  CHECK(listing(fast) == "201\n");  // every file, with its size
  CHECK(fast.Stat()["mounts"][0]["head_requests"] == heads);  // none per entry
  REQUIRE(::stat(fast.mnt("dir/private").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);  // the default, not the stored 0600
  CHECK(Sha256File(fast.mnt("dir/private")) == Sha256File(src.path + "/one"));
  fast.Stop();

  Agent exact;  // the default: a HEAD per object, the stored modes
  exact.Start(store->uri(), store->agent_args());
  CHECK(listing(exact) == "201\n");
  CHECK(exact.Stat()["mounts"][0]["head_requests"].get<uint64_t>() >= 201);
  // A listed file needs no directory check: the listing said it is no directory.
  CHECK(exact.Stat()["mounts"][0]["list_requests"].get<uint64_t>() < 20);
  REQUIRE(::stat(exact.mnt("dir/private").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
}
