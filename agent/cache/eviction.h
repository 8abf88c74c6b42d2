// Which cached block goes first when the cache must shrink. The engine calls
// a policy under its own lock: implementations must be quick and must not
// block or call back into the engine. The Lua policies plug in here.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "agent/base/block_key.h"

namespace strata::cache {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual const char* name() const = 0;
  virtual void OnInsert(const BlockKey& key, uint32_t length, int64_t atime_ms) = 0;
  virtual void OnAccess(const BlockKey& key, int64_t now_ms) = 0;
  virtual void OnRemove(const BlockKey& key) = 0;
  // Appends victims, first to go first, until their lengths reach `bytes` or
  // nothing evictable is left. Does not remove them: the engine calls
  // OnRemove for each block it actually drops.
  virtual void Select(uint64_t bytes, std::vector<BlockKey>* victims) = 0;
};

// Least recently used. Blocks inserted with an older atime (at start, from
// the index) are placed by that time, so recency survives a restart.
class LruPolicy final : public EvictionPolicy {
 public:
  const char* name() const override { return "lru"; }
  void OnInsert(const BlockKey& key, uint32_t length, int64_t atime_ms) override;
  void OnAccess(const BlockKey& key, int64_t now_ms) override;
  void OnRemove(const BlockKey& key) override;
  void Select(uint64_t bytes, std::vector<BlockKey>* victims) override;
  size_t size() const { return pos_.size(); }

 private:
  struct Item {
    BlockKey key;
    uint32_t length;
    int64_t atime_ms;
  };
  std::list<Item> order_;  // front = most recent
  std::unordered_map<BlockKey, std::list<Item>::iterator, BlockKeyHash> pos_;
};

}  // namespace strata::cache
