// Which cached block goes first when the cache must shrink. The engine calls
// a policy under its own lock: implementations must be quick and must not
// block or call back into the engine. The Lua policies plug in here.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/base/block_key.h"

namespace strata::cache {

// The cache's tiers, fastest first. A block lives in exactly one of them.
enum class Tier : uint8_t { kMem = 0, kSsd = 1 };
constexpr int kTierCount = 2;
// Inline: the policy code (linked into agentctl too) names tiers without
// linking the cache.
inline const char* TierName(Tier t) { return t == Tier::kMem ? "mem" : "ssd"; }
// "mem" / "ram" / "memory", "ssd" / "disk".
inline std::optional<Tier> ParseTier(const std::string& name) {
  if (name == "mem" || name == "ram" || name == "memory") return Tier::kMem;
  if (name == "ssd" || name == "disk") return Tier::kSsd;
  return std::nullopt;
}

// A block that may be evicted, as a scorer sees it.
struct EvictCandidate {
  BlockKey key;
  std::string path;  // the file's path in the mount
  uint64_t file_size = 0;
  uint32_t length = 0;
  int64_t atime_ms = 0;
  uint32_t hits = 0;  // reads served from the cache since it was stored
  Tier tier = Tier::kSsd;
};

// Ranks eviction candidates (the Lua on_evict hook). Called on the thread
// that needs room, never under the engine's lock; may wait, within a
// deadline, for the policy thread.
class Scorer {
 public:
  virtual ~Scorer() = default;
  // False: nothing to rank with now (the engine uses LRU without asking).
  virtual bool Active() const { return true; }
  // Fills `order` with candidate indexes, first to go first (unlisted ones
  // follow in least-recently-used order) and, for RAM-tier candidates,
  // `demote[i]` = 1 to move the block to the SSD tier, 0 to drop it, -1 for
  // the built-in rule. False: no answer (the built-in LRU order is used).
  virtual bool Rank(const std::vector<EvictCandidate>& candidates, std::vector<size_t>* order,
                    std::vector<int8_t>* demote) = 0;
};

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
  // About `n` blocks are about to be inserted (a start-up): room ahead.
  virtual void Reserve(size_t /*n*/) {}
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
  void Reserve(size_t n) override { pos_.reserve(n); }
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
