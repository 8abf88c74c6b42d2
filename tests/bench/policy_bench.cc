// make bench, policy part: ranking a cache of one million blocks for
// eviction with the shipped Lua LFU scorer (lfu.lua, through the same
// Runtime::Rank the engine calls, in its batches), against the engine's
// built-in C++ LRU ordering the same blocks. Prints one line per case:
//   <case> <seconds> <peak RSS MiB> <note>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "agent/cache/eviction.h"
#include "agent/policy/runtime.h"

using namespace strata;
namespace fs = std::filesystem;

namespace {
double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
long PeakRssMiB() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}
}  // namespace

int main(int argc, char** argv) {
  const size_t n = argc > 1 ? std::stoul(argv[1]) : 1'000'000;
  std::mt19937_64 rng(42);
  std::vector<cache::EvictCandidate> c(n);
  for (size_t i = 0; i < n; i++) {
    c[i].key = {1 + i / 16, i % 16};
    c[i].path = "datasets/shard-" + std::to_string(i / 16) + ".bin";
    c[i].length = 4u << 20;
    c[i].file_size = 64u << 20;
    c[i].atime_ms = 1'795'000'000'000 + static_cast<int64_t>(rng() % 86'400'000);
    c[i].hits = static_cast<uint32_t>(rng() % 8);
    c[i].tier = cache::Tier::kSsd;
  }
  std::printf("candidates %zu peak_rss_mib %ld\n", n, PeakRssMiB());

  // Built-in: the LRU list the engine keeps, asked for every block.
  // Inserted oldest first, as the engine does at start (and as blocks arrive).
  std::vector<size_t> by_age(n);
  for (size_t i = 0; i < n; i++) by_age[i] = i;
  std::sort(by_age.begin(), by_age.end(), [&](size_t a, size_t b) { return c[a].atime_ms < c[b].atime_ms; });
  cache::LruPolicy lru;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i : by_age) lru.OnInsert(c[i].key, c[i].length, c[i].atime_ms);
  double insert_s = Seconds(t0);
  std::vector<BlockKey> victims;
  t0 = std::chrono::steady_clock::now();
  lru.Select(UINT64_MAX, &victims);
  double lru_s = Seconds(t0);
  std::printf("lru_select %.3f %ld insert %.3f s, %zu victims\n", lru_s, PeakRssMiB(), insert_s, victims.size());

  // Lua: lfu.lua as shipped, all one million candidates, batches of 1024.
  fs::path dir = fs::temp_directory_path() / ("strata-policy-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file("policies/lfu.lua", dir / "lfu.lua", fs::copy_options::overwrite_existing);
  policy::RuntimeOptions o;
  o.dir = dir.string();
  o.evict_wait_ms = 600'000;
  policy::Runtime rt(o, nullptr, nullptr);
  Status s = rt.Reload();
  if (!s.ok()) {
    std::fprintf(stderr, "policy_bench: %s\n", s.message().c_str());
    return 1;
  }
  std::vector<size_t> order;
  std::vector<int8_t> demote;
  t0 = std::chrono::steady_clock::now();
  bool ok = rt.Rank(c, &order, &demote);
  double lua_s = Seconds(t0);
  fs::remove_all(dir);
  if (!ok || order.size() != n) {
    std::fprintf(stderr, "policy_bench: the Lua scorer gave no ranking\n");
    return 1;
  }
  // The ranking must be LFU: hits never decrease along it.
  for (size_t i = 1; i < n; i++)
    if (c[order[i - 1]].hits > c[order[i]].hits) {
      std::fprintf(stderr, "policy_bench: ranking is not by hits at %zu\n", i);
      return 1;
    }
  std::printf("lua_lfu_rank %.3f %ld %.0f candidates/s\n", lua_s, PeakRssMiB(), n / lua_s);
  return 0;
}
