// Nothing acknowledged is lost: kill -9 of the agent in the middle of a write
// flood (async and through modes), the store going away during a close, a
// full staging disk.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"
#include "ufs/ufs.h"

using namespace strata::it;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Writes files of random sizes into `dir` on the mount, each with fsync, and
// appends "name sha256" to `manifest` only after the write was acknowledged
// (dd exited 0). Stops at the first failure (the agent was killed).
std::string FloodScript(const std::string& dir, const std::string& manifest, const std::string& scratch) {
  return "for i in $(seq 1 5000); do "
         "head -c $(( (RANDOM * 7) % 200000 )) /dev/urandom > " + scratch + "/x || exit 0; "
         "dd if=" + scratch + "/x of=" + dir + "/f$i bs=64k conv=fsync status=none 2>/dev/null || exit 0; "
         "echo \"f$i $(sha256sum < " + scratch + "/x | cut -c1-64)\" >> " + manifest + "; "
         "done";
}

std::vector<std::pair<std::string, std::string>> ReadManifest(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  std::ifstream in(path);
  std::string name, sha;
  while (in >> name >> sha) out.emplace_back(name, sha);
  return out;
}

}  // namespace

TEST_CASE("kill -9 mid-flood loses no acknowledged file", "[fuse][s3][crash]") {
  std::string kind = GENERATE(from_range(StoreKinds(false)));
  std::string mode = GENERATE(as<std::string>{}, "async", "through");
  SECTION(kind + " " + mode) {
    auto store = MakeStore(kind);
    TempDir work;
    std::vector<std::string> args = store->agent_args();
    // One uploader to a store that takes 200 ms to answer a PUT (at most 5
    // files a second) and answers the writers' lookups at once: the writers
    // outrun it, so the kill finds a backlog (RGW alone keeps up with them;
    // slowing every request slowed the writers as much).
    std::optional<Shaper> slow;
    if (store->is_s3()) {
      slow.emplace(S3Endpoint(), 10000, 0, 200);
      args.insert(args.end(), {"--s3-endpoint", slow->endpoint()});
    }
    args.insert(args.end(), {"--write-mode", mode, "--upload-threads", "1"});
    Agent agent;
    agent.Start(store->uri(), args);
    fs::create_directory(agent.mnt("crash"));
    // Three writers in parallel (one manifest each) against one uploader.
    std::vector<std::thread> flood;
    for (int w = 0; w < 3; w++) {
      std::string sub = "w" + std::to_string(w);
      fs::create_directories(work.path + "/" + sub);
      fs::create_directory(agent.mnt("crash/" + sub));
      flood.emplace_back([&, sub] {
        Run(FloodScript(agent.mnt("crash/" + sub), work.path + "/manifest-" + sub, work.path + "/" + sub));
      });
    }
    auto manifest_all = [&] {
      std::vector<std::pair<std::string, std::string>> all;
      for (int w = 0; w < 3; w++)
        for (auto& [name, sha] : ReadManifest(work.path + "/manifest-w" + std::to_string(w)))
          all.emplace_back("w" + std::to_string(w) + "/" + name, sha);
      return all;
    };
    // Let it acknowledge a good number of files, then kill the agent mid-write
    // (in async mode at a moment when uploads are pending).
    uint64_t pending = 0;
    for (int i = 0; i < 1500; i++) {
      if (manifest_all().size() >= 60) {
        if (mode != "async") break;
        pending = agent.Stat()["writes"]["pending_files"].get<uint64_t>();
        if (pending >= 3) break;
      }
      std::this_thread::sleep_for(20ms);
    }
    agent.Kill();
    for (std::thread& t : flood) t.join();
    auto acked = manifest_all();
    INFO(acked.size() << " files acknowledged before the kill");
    REQUIRE(acked.size() >= 20);

    // Restart on the same cache: the journal is replayed.
    agent.Start(store->uri(), args);
    if (mode == "async") {
      // Uploads were pending a moment before the kill (on a fast store they
      // may have finished by then, so whether this restart replays any is
      // not asserted; the unit test "the journal survives a restart" makes
      // a replay certain).
      INFO(pending << " pending just before the kill\n" << agent.log());
      CHECK(pending > 0);
      CmdResult f = agent.Ctl("flush --timeout 120");
      INFO(f.out << agent.log());
      REQUIRE(f.code == 0);
      CHECK(agent.Stat()["writes"]["pending_files"] == 0);
    }
    // Every acknowledged file, as the store has it, from another client.
    size_t lost = 0;
    std::vector<std::string> keys;
    for (auto& [name, sha] : acked) keys.push_back("crash/" + name);
    std::vector<std::optional<std::string>> stored = store->FetchMany(keys);
    for (size_t i = 0; i < acked.size(); i++) {
      if (!stored[i]) {
        lost++;
        continue;
      }
      TempDir t;
      std::ofstream(t.path + "/d", std::ios::binary) << *stored[i];
      if (Sha256File(t.path + "/d") != acked[i].second) lost++;
    }
    CHECK(lost == 0);
    // And through an empty cache.
    agent.Stop();
    Agent fresh;
    fresh.Start(store->uri(), store->agent_args());
    size_t bad = 0;
    for (auto& [name, sha] : acked)
      if (Sha256File(fresh.mnt("crash/" + name)) != sha) bad++;
    CHECK(bad == 0);
  }
}

// [s3rver]: kills its own server mid-test.
TEST_CASE("the store gone during a through close: an error, the data kept, uploaded later",
          "[fuse][s3][s3rver][crash]") {
  S3Server s3;  // our own server: this test kills it
  s3.Start();
  s3.CreateBucket("gone");
  TempDir src;
  WriteRandomFile(src.path + "/f", 3u << 20, 9);
  Agent agent;
  std::vector<std::string> args = {"--s3-endpoint", s3.endpoint(), "--s3-timeout", "3", "--s3-retries", "2"};
  agent.Start("s3://gone", args);

  int fd = ::open(agent.mnt("kept").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  std::string data = ReadFile(src.path + "/f");
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  s3.Kill();
  auto t0 = std::chrono::steady_clock::now();
  int rc = ::close(fd);
  int err = errno;
  CHECK(rc != 0);  // the caller learns the upload did not happen
  CHECK(err == EIO);
  CHECK(std::chrono::steady_clock::now() - t0 < 30s);  // within the deadline, no hang
  auto st = agent.Stat();
  CHECK(st["writes"]["pending_files"] == 1);
  // Readers still get the bytes from the staging area.
  CHECK(Sha256File(agent.mnt("kept")) == Sha256File(src.path + "/f"));

  s3.Start();  // the same port and data
  CmdResult f = agent.Ctl("flush --timeout 60");
  INFO(f.out << agent.log());
  REQUIRE(f.code == 0);
  CmdResult got = Run("curl -sS -f -o " + src.path + "/back " + s3.endpoint() + "/gone/kept");
  REQUIRE(got.code == 0);
  CHECK(Sha256File(src.path + "/back") == Sha256File(src.path + "/f"));
}

TEST_CASE("a full staging disk gives the writer ENOSPC; reads keep working", "[fuse][crash]") {
  auto store = MakeStore("file");
  TempDir src;
  WriteRandomFile(src.path + "/r", 2u << 20, 3);
  store->Put("r", src.path + "/r");
  Agent agent;
  fs::create_directories(agent.cache_dir());
  REQUIRE(Run("mount -t tmpfs -o size=24m strata-test-staging " + agent.cache_dir()).code == 0);
  agent.Start(store->uri(), {"--cache-size", "16MiB", "--block-size", "1MiB", "--staging-size", "1GiB"});
  CmdResult dd = Run("dd if=/dev/zero of=" + agent.mnt("big") + " bs=1M count=64 conv=fsync");
  INFO(dd.out);
  CHECK(dd.code != 0);
  CHECK(dd.out.find("No space left on device") != std::string::npos);
  CHECK(Sha256File(agent.mnt("r")) == Sha256File(src.path + "/r"));
  Run("rm -f " + agent.mnt("big"));
  // The staging limit itself, with room on the disk.
  agent.Stop();
  agent.Start(store->uri(), {"--cache-size", "16MiB", "--block-size", "1MiB", "--staging-size", "4MiB"});
  dd = Run("dd if=/dev/zero of=" + agent.mnt("big2") + " bs=1M count=8 conv=fsync");
  CHECK(dd.code != 0);
  CHECK(dd.out.find("No space left on device") != std::string::npos);
  CHECK(agent.log().find("staging area full") != std::string::npos);
  CHECK(Sha256File(agent.mnt("r")) == Sha256File(src.path + "/r"));
  agent.Stop();
  Run("umount " + agent.cache_dir());
}

TEST_CASE("a multipart upload that fails midway stores nothing and is aborted", "[s3][crash]") {
  auto store = MakeStore("s3");
  strata::ufs::S3Options o;
  o.endpoint = S3Endpoint();
  o.access_key = o.secret_key = "S3RVER";
  o.part_size = 5u << 20;
  o.upload_parallel = 2;
  auto ufs = strata::ufs::Open(store->uri(), o);
  REQUIRE(ufs.ok());
  // The third part's bytes cannot be read (a staging disk error, say).
  std::atomic<int> reads{0};
  strata::ufs::ReadAt src = [&](uint64_t off, size_t len, char* buf) -> strata::Status {
    reads++;
    if (off >= (10u << 20)) return strata::Status::IOError("injected: staging read failed");
    std::memset(buf, 'a', len);
    return strata::Status::OK();
  };
  auto e = (*ufs)->Put("mp", 16u << 20, src, {});
  CHECK_FALSE(e.ok());
  CHECK(e.status().message().find("injected") != std::string::npos);
  CHECK_FALSE(store->Fetch("mp").has_value());
  // The abort was sent (s3rver answers it with 501, which is named once in the log).
  CHECK((*ufs)->counters().put_requests.load() >= 3);  // create, parts, abort
  // A later upload of the same key works.
  strata::ufs::ReadAt ok = [](uint64_t, size_t len, char* buf) {
    std::memset(buf, 'b', len);
    return strata::Status::OK();
  };
  auto again = (*ufs)->Put("mp", 11u << 20, ok, {});
  REQUIRE(again.ok());
  CHECK(store->Fetch("mp").value_or("").size() == (11u << 20));
}

TEST_CASE("kill -9 during streamed uploads: what was acknowledged is whole, the rest is the old version or absent",
          "[fuse][s3][crash][stream]") {
  auto store = MakeStore("s3");
  TempDir src;
  WriteRandomFile(src.path + "/v1", 8u << 20, 51);
  WriteRandomFile(src.path + "/v2", 20u << 20, 52);
  store->Put("doc.bin", src.path + "/v1");
  const std::string v2 = ReadFile(src.path + "/v2");
  Agent agent;
  std::vector<std::string> args = store->agent_args();
  args.insert(args.end(), {"--write-mode", "through", "--upload-part-size", "5MiB"});
  agent.Start(store->uri(), args);
  // Acknowledged: a close, and an fsync of the first 12 MiB of a file that grows on.
  int fd = ::open(agent.mnt("acked.bin").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  WriteAll(fd, v2.substr(0, 12u << 20));
  REQUIRE(::close(fd) == 0);
  int synced = ::open(agent.mnt("synced.bin").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  REQUIRE(synced >= 0);
  WriteAll(synced, v2.substr(0, 12u << 20));
  REQUIRE(::fsync(synced) == 0);
  WriteAll(synced, v2.substr(12u << 20));
  // Not acknowledged: an overwrite of doc.bin and a new file, both with
  // parts already in the store when the agent dies.
  int over = ::open(agent.mnt("doc.bin").c_str(), O_WRONLY | O_TRUNC);
  int fresh = ::open(agent.mnt("new.bin").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  REQUIRE(over >= 0);
  REQUIRE(fresh >= 0);
  WriteAll(over, v2);
  WriteAll(fresh, v2.substr(0, 12u << 20));
  uint64_t parts = 0;
  for (int i = 0; i < 300 && parts < 3 + 3 + 4 + 2; i++) {
    parts = agent.Stat()["mounts"][0]["streamed_parts"].get<uint64_t>();
    std::this_thread::sleep_for(100ms);
  }
  INFO(agent.log());
  CHECK(parts >= 3 + 3 + 4 + 2);  // acked 3, synced 2 + tail, doc 4, new 2 (all 5 MiB)
  agent.Kill();
  ::close(synced);
  ::close(over);
  ::close(fresh);

  agent.Start(store->uri(), args);
  CHECK(store->Fetch("acked.bin").value_or("") == v2.substr(0, 12u << 20));
  CHECK(store->Fetch("synced.bin").value_or("") == v2.substr(0, 12u << 20));
  CHECK(store->Fetch("doc.bin").value_or("") == ReadFile(src.path + "/v1"));
  CHECK_FALSE(store->Fetch("new.bin").has_value());
  // The mount agrees.
  CHECK(Sha256File(agent.mnt("doc.bin")) == Sha256File(src.path + "/v1"));
  CHECK(fs::file_size(agent.mnt("synced.bin")) == (12u << 20));
  CHECK_FALSE(fs::exists(agent.mnt("new.bin")));
}
