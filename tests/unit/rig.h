// The engine's surroundings for unit tests: a real LMDB index and SSD tier
// in a temporary directory, over one in-memory FakeUfs.
#pragma once

#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <functional>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "agent/cache/engine.h"
#include "agent/cache/metadata.h"
#include "tests/unit/fake_ufs.h"

namespace strata::testing {
namespace fs = std::filesystem;

// Runs `node SCRIPT` with `input` on its stdin; its stdout (the test fails
// when it exits non-zero). The cross-checks against the SDKs' signers.
inline std::string RunNode(const std::string& script, const std::string& input) {
  std::string in_path = "/tmp/strata-node-" + std::to_string(::getpid()) + ".json";
  {
    FILE* f = std::fopen(in_path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fwrite(input.data(), 1, input.size(), f);
    std::fclose(f);
  }
  std::string cmd = "node " + script + " < " + in_path;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int rc = ::pclose(p);
  ::unlink(in_path.c_str());
  REQUIRE(rc == 0);
  return out;
}

inline std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/strata-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

// An engine with its index, tier and metadata, over one FakeUfs.
struct Rig {
  TempDir dir;
  testing::FakeUfs* store;
  cache::MountTable mounts;
  std::unique_ptr<index::Index> idx;
  std::unique_ptr<tier::SsdTier> ssd;
  std::unique_ptr<cache::Engine> engine;
  std::unique_ptr<cache::Metadata> meta;
  cache::EngineOptions opts;
  cache::BlockSource* source = nullptr;  // nullptr: the engine's StoreSource

  // Called on the engine before Start() (hooks, pins).
  std::function<void(cache::Engine&)> setup;

  explicit Rig(uint64_t capacity, uint64_t block = 64 * 1024) {
    cache::EngineOptions o;
    o.capacity = capacity;
    o.block_size = block;
    Init(o);
  }
  Rig(cache::EngineOptions o, std::function<void(cache::Engine&)> before_start) : setup(std::move(before_start)) {
    Init(o);
  }
  void Init(cache::EngineOptions o) {
    auto s = std::make_unique<FakeUfs>();
    store = s.get();
    REQUIRE(mounts.Add("", std::move(s)).ok());
    opts = o;
    opts.fetch_threads = 8;
    Open();
  }
  void Open() {
    fs::create_directories(dir.path + "/index");
    auto i = index::Index::Open(dir.path + "/index", opts.block_size);
    REQUIRE(i.ok());
    idx = std::move(i).value();
    auto t = tier::SsdTier::Open(dir.path + "/blocks");
    REQUIRE(t.ok());
    ssd = std::move(t).value();
    engine = std::make_unique<cache::Engine>(opts, &mounts, idx.get(), ssd.get(), source);
    if (setup) setup(*engine);
    REQUIRE(engine->Start().ok());
    meta = std::make_unique<cache::Metadata>(&mounts, idx.get(), engine.get(), 60000);
  }
  void Restart() {
    meta.reset();
    engine.reset();
    ssd.reset();
    idx.reset();
    Open();
  }
  cache::FileRef Ref(const std::string& path) {
    auto m = meta->Stat(path);
    REQUIRE(m.ok());
    return meta->RefOf(*m);
  }
  // Synchronous read through the engine.
  std::string Read(const cache::FileRef& f, uint64_t off, size_t len, Status* st = nullptr, bool first = false) {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::string out;
    Status status;
    engine->Read(f, off, len, [&](Status s, std::vector<cache::Slice> parts) {
      std::lock_guard<std::mutex> lock(mu);
      status = s;
      for (auto& p : parts) {
        std::string bytes(p.length, '\0');
        if (status.ok()) status = cache::CopySlice(p, bytes.data());
        out += bytes;
      }
      done = true;
      cv.notify_all();
    }, first);
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    if (st) *st = status;
    else REQUIRE(status.ok());
    return out;
  }
  // Readers are answered before their blocks are written out and indexed:
  // waits until no fetch is in flight (at most 10 s).
  void Settle() {
    for (int i = 0; i < 1000 && engine->Stats().inflight_fetches > 0; i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(engine->Stats().inflight_fetches == 0);
  }
  uint64_t DiskBytes() {
    // Files come and go while this runs: errors mean "gone", not failure.
    uint64_t n = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir.path + "/blocks", ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      uint64_t sz = it->file_size(ec);
      if (!ec && it->is_regular_file(ec)) n += sz;
    }
    return n;
  }
};


}  // namespace strata::testing
