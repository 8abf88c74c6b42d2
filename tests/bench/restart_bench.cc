// Builds a cache of many blocks for the restart bench, without fetching them:
// NFILES files of BLOCKS blocks (64 KiB blocks) recorded in the LMDB index
// with their block rows, and block files that are sparse (no disk use) and
// the size the rows say. The bench then times an agent's start on it and a
// warm read of the first file (zeros, whose checksums the rows carry).
//
//   restart_bench CACHE_DIR NFILES BLOCKS
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/base/clock.h"
#include "agent/base/hash.h"
#include "agent/index/index.h"
#include "agent/tier/ssd_tier.h"

using namespace strata;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: restart_bench CACHE_DIR NFILES BLOCKS\n");
    return 2;
  }
  const std::string dir = argv[1];
  const uint64_t nfiles = std::strtoull(argv[2], nullptr, 10), blocks = std::strtoull(argv[3], nullptr, 10);
  const uint64_t bs = 64 * 1024, chunk = bs;  // one checksum chunk per block
  ::mkdir(dir.c_str(), 0755);
  ::mkdir((dir + "/index").c_str(), 0755);
  auto idx = index::Index::Open(dir + "/index", bs);
  auto ssd = tier::SsdTier::Open(dir + "/blocks");
  if (!idx.ok() || !ssd.ok()) {
    std::fprintf(stderr, "restart_bench: cannot open the cache in %s\n", dir.c_str());
    return 1;
  }
  std::vector<char> zeros(chunk, 0);
  const uint64_t zero_sum = Xxh64(zeros.data(), zeros.size());
  std::vector<index::Index::BlockOp> ops;
  for (uint64_t f = 0; f < nfiles; f++) {
    index::FileMeta m;
    char name[32];
    std::snprintf(name, sizeof(name), "f%06llu", static_cast<unsigned long long>(f));
    m.path = name;
    m.size = blocks * bs;
    m.mtime_ns = 1'700'000'000'000'000'000;
    m.etag = "bench";
    m.validated_ms = NowUnixMs() + 3'600'000;  // trusted for the bench's duration
    uint64_t retired = 0;
    auto stored = (*idx)->PutMeta(m, &retired);
    if (!stored.ok()) {
      std::fprintf(stderr, "restart_bench: %s\n", stored.status().message().c_str());
      return 1;
    }
    for (uint64_t b = 0; b < blocks; b++) {
      BlockKey key{stored->file_id, b};
      std::string path = (*ssd)->PathOf(key);
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(bs)) != 0) {
        std::perror(path.c_str());
        return 1;
      }
      ::close(fd);
      ops.push_back({key, false, {static_cast<uint32_t>(bs), NowUnixMs(), {zero_sum}}});
      if (ops.size() >= 50000) {
        if (!(*idx)->ApplyBlockOps(ops).ok()) return 1;
        ops.clear();
      }
    }
  }
  if (!ops.empty() && !(*idx)->ApplyBlockOps(ops).ok()) return 1;
  std::printf("restart_bench: %llu blocks of %llu files in %s\n", static_cast<unsigned long long>(nfiles * blocks),
              static_cast<unsigned long long>(nfiles), dir.c_str());
  return 0;
}
