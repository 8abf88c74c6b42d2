// The SSD tier: one file per cached block under <cache-dir>/blocks/. It
// stores bytes and nothing else; what a block means lives in the index.
//
// Layout: blocks/<file_id & 0xff as 2 hex>/<file_id hex16>-<index hex16>.blk.
// Writes go to a ".tmp" name first and are renamed into place, so a block
// file is either absent or complete. Its content is checked against xxh64
// checksums of fixed-size chunks (ChunkSums; the index keeps them):
// ReadChecked is the one place a block file is read back and verified.
// Open descriptors are kept (at most 1,024) per copy of a block, so a block
// served by reference (splice) costs no open(2).
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/base/block_key.h"
#include "agent/base/buffer.h"
#include "agent/base/fd.h"
#include "agent/base/status.h"

namespace strata::tier {

class SsdTier {
 public:
  // Creates <dir> and its 256 fan-out directories when missing.
  static Result<std::unique_ptr<SsdTier>> Open(const std::string& dir);

  Status Put(const BlockKey& key, const char* data, size_t len);
  Result<Fd> OpenBlock(const BlockKey& key);
  Status Remove(const BlockKey& key);
  // Calls fn for every complete block file; fn returns false to have the
  // file deleted. Deletes leftovers (".tmp" files, unknown names) last
  // changed before `leftovers_before_ns` (Unix time): younger ones may be
  // block writes in progress. Stops between directories once *cancel is set.
  Status Scan(const std::function<bool(const BlockKey&, uint64_t size)>& fn, int64_t leftovers_before_ns,
              const std::atomic<bool>* cancel = nullptr);
  std::string PathOf(const BlockKey& key) const;
  const std::string& dir() const { return dir_; }

  // The checksums of `data` in chunks of `chunk` bytes (the last one short).
  static std::vector<uint64_t> ChunkSums(const char* data, size_t len, uint64_t chunk);
  // Reads chunks [c0, c1] of a block file of `blen` bytes into `out` (sized
  // for them) and checks them against `sums` (those chunks' checksums).
  // Returns "" when good, else what is wrong (*bad_checksum: the bytes, not
  // the file, are bad).
  static std::string ReadChecked(const Fd* fd, const std::vector<uint64_t>& sums, uint64_t chunk, uint64_t c0,
                                 uint64_t c1, uint32_t blen, Buffer* out, bool* bad_checksum);
  // An open descriptor of copy `gen` of `key` (a newer copy's file replaces
  // an older one's), or nullptr when the file is missing.
  std::shared_ptr<Fd> OpenShared(const BlockKey& key, uint64_t gen);
  // Forgets the kept descriptor of `key` (the block is gone).
  void Forget(const BlockKey& key);

 private:
  static constexpr size_t kDirectAlign = 4096;
  explicit SsdTier(std::string dir) : dir_(std::move(dir)) {}
  const std::string dir_;
  std::atomic<bool> direct_ok_{true};  // false once the file system refused O_DIRECT
  static constexpr size_t kMaxOpenFds = 1024;
  struct KeptFd {
    uint64_t gen;
    std::shared_ptr<Fd> fd;
  };
  std::mutex fd_mu_;
  std::unordered_map<BlockKey, KeptFd, BlockKeyHash> fds_;  // guarded by fd_mu_
};

}  // namespace strata::tier
