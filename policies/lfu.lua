-- lfu.lua: least-frequently-used eviction. A block read many times survives
-- a long one-pass scan (a backup, a `find | xargs cat`) that plain LRU would
-- let flush it out. Ties go by age, older first.
--
-- The engine hands the least recently used part of a tier in batches; each
-- candidate has path, block, size, file_size, atime (Unix seconds), hits
-- (accesses since stored) and tier. Lower scores are evicted first. For RAM
-- candidates, `c.demote = true/false` decides whether the block moves down
-- to the SSD tier or is dropped.

strata.on_evict(function(candidates)
  local scores = {}
  for i, c in ipairs(candidates) do
    scores[i] = c.hits * 1e10 + c.atime
    if c.tier == "mem" then c.demote = c.hits >= 2 end
  end
  return scores
end)
