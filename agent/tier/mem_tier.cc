#include "agent/tier/mem_tier.h"

namespace strata::tier {

void MemTier::Put(const BlockKey& key, std::shared_ptr<const Buffer> data) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = blocks_[key];
  if (slot) bytes_ -= slot->size();
  bytes_ += data->size();
  slot = std::move(data);
}

std::shared_ptr<const Buffer> MemTier::Get(const BlockKey& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blocks_.find(key);
  return it == blocks_.end() ? nullptr : it->second;
}

std::shared_ptr<const Buffer> MemTier::Take(const BlockKey& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = blocks_.find(key);
  if (it == blocks_.end()) return nullptr;
  std::shared_ptr<const Buffer> data = std::move(it->second);
  bytes_ -= data->size();
  blocks_.erase(it);
  return data;
}

uint64_t MemTier::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

}  // namespace strata::tier
