// The RAM tier: the bytes of the blocks kept in memory, by block key. Like
// the SSD tier it stores bytes and nothing else; what a block means, its
// size limit and its eviction order are the engine's. Nothing here survives
// a restart.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "agent/base/block_key.h"
#include "agent/base/buffer.h"

namespace strata::tier {

class MemTier {
 public:
  // Keeps `data` as the bytes of `key` (replacing what was there).
  void Put(const BlockKey& key, std::shared_ptr<const Buffer> data);
  // The bytes of `key`, or nullptr.
  std::shared_ptr<const Buffer> Get(const BlockKey& key) const;
  // Removes `key` and returns its bytes (readers holding them keep them).
  std::shared_ptr<const Buffer> Take(const BlockKey& key);
  uint64_t bytes() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<BlockKey, std::shared_ptr<const Buffer>, BlockKeyHash> blocks_;  // guarded by mu_
  uint64_t bytes_ = 0;                                                               // guarded by mu_
};

}  // namespace strata::tier
