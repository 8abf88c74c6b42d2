#include "agent/cache/eviction.h"

#include <iterator>

namespace strata::cache {

void LruPolicy::OnInsert(const BlockKey& key, uint32_t length, int64_t atime_ms) {
  OnRemove(key);
  // Ordered by atime, newest first. A new block is the newest (no walk); an
  // older one (a restart, a demotion, an unpin) is placed by walking from the
  // nearer end in time, so a batch of old blocks does not walk the whole list.
  auto it = order_.begin();
  if (!order_.empty() && atime_ms < order_.front().atime_ms / 2 + order_.back().atime_ms / 2) {
    it = order_.end();
    while (it != order_.begin() && std::prev(it)->atime_ms <= atime_ms) --it;
  } else {
    while (it != order_.end() && it->atime_ms > atime_ms) ++it;
  }
  pos_[key] = order_.insert(it, Item{key, length, atime_ms});
}

void LruPolicy::OnAccess(const BlockKey& key, int64_t now_ms) {
  auto it = pos_.find(key);
  if (it == pos_.end()) return;
  it->second->atime_ms = now_ms;
  order_.splice(order_.begin(), order_, it->second);
}

void LruPolicy::OnRemove(const BlockKey& key) {
  auto it = pos_.find(key);
  if (it == pos_.end()) return;
  order_.erase(it->second);
  pos_.erase(it);
}

void LruPolicy::Select(uint64_t bytes, std::vector<BlockKey>* victims) {
  uint64_t got = 0;
  for (auto it = order_.rbegin(); it != order_.rend() && got < bytes; ++it) {
    victims->push_back(it->key);
    got += it->length;
  }
}

}  // namespace strata::cache
