// Pins and TTLs: which paths the cache must keep, and which it must drop at
// a given time (Alluxio's pin and setTtl with the free action). Kept in the
// index so they survive a restart; the pin rules are handed to the engine.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "agent/base/status.h"
#include "agent/cache/engine.h"
#include "agent/index/index.h"

namespace strata::cache {

struct TtlRule {
  PinRule target;
  int64_t expire_ms = 0;  // on the cache's clock
};

class PinTable {
 public:
  PinTable(index::Index* index, Engine* engine) : index_(index), engine_(engine) {}
  // Reads the saved rules and gives the pins to the engine.
  Status Load();
  // Adds (or changes the recursion of) a pin; unpinning a path not pinned
  // is NotFound.
  Status Pin(const std::string& path, bool recursive);
  Status Unpin(const std::string& path);
  // expire_ms 0 removes the path's TTL (NotFound when it had none).
  Status SetTtl(const std::string& path, bool recursive, int64_t expire_ms);
  // Removes and returns the TTLs due at `now_ms`.
  std::vector<TtlRule> TakeExpired(int64_t now_ms);
  std::vector<PinRule> pins();
  std::vector<TtlRule> ttls();

 private:
  Status SaveLocked();

  index::Index* const index_;
  Engine* const engine_;
  std::mutex mu_;
  std::vector<PinRule> pins_;  // guarded by mu_
  std::vector<TtlRule> ttls_;  // guarded by mu_
};

}  // namespace strata::cache
