-- default.lua: the built-in behaviour, written out so it can be changed.
--
-- Eviction: least recently used (no on_evict hook: the engine's own LRU,
-- which needs no Lua on any path).
-- Admission, size-aware: a file larger than MAX_FRACTION of the SSD tier is
-- served but not kept, so one huge sequential read cannot flush everything
-- else out of the cache. Everything else goes to the SSD tier; blocks read
-- again move up to the RAM tier (--mem-size) by themselves.
-- Explicit loads (agentctl load, strata.load) are not asked: they always keep.

local MAX_FRACTION = 0.5

strata.on_admit(function(file)
  local capacity = strata.stat().ssd_capacity
  if capacity > 0 and file.size > capacity * MAX_FRACTION then
    return false
  end
  return nil -- no opinion: the default tier
end)
