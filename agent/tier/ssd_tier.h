// The SSD tier: one file per cached block under <cache-dir>/blocks/. It
// stores bytes and nothing else; what a block means lives in the index.
//
// Layout: blocks/<file_id & 0xff as 2 hex>/<file_id hex16>-<index hex16>.blk.
// Writes go to a ".tmp" name first and are renamed into place, so a block
// file is either absent or complete (its content is checked by checksums).
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "agent/base/block_key.h"
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

 private:
  static constexpr size_t kDirectAlign = 4096;
  explicit SsdTier(std::string dir) : dir_(std::move(dir)) {}
  const std::string dir_;
  std::atomic<bool> direct_ok_{true};  // false once the file system refused O_DIRECT
};

}  // namespace strata::tier
