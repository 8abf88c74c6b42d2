-- cleanup.lua: every hour, drop cached blocks nobody has read for IDLE
-- (pinned blocks stay), so a cache that never fills still gives back space
-- taken by data that went cold. TTLs set with `agentctl ttl` or strata.ttl
-- expire by themselves (checked every second); this file adds a TTL for
-- scratch areas as an example of setting them from a policy.

local IDLE = "7d"
local ROOT = "/"
local SCRATCH_TTLS = {
  -- { path = "/scratch", ttl = "1d" },
}

for _, s in ipairs(SCRATCH_TTLS) do
  strata.ttl(s.path, s.ttl, { recursive = true })
end

strata.schedule("@hourly", function()
  local r, err = strata.evict(ROOT, { recursive = true, idle = IDLE })
  if not r then
    strata.log("cleanup failed:", err)
  elseif r.blocks > 0 then
    strata.log("dropped", r.blocks, "block(s) idle for over", IDLE, "(" .. r.bytes .. " bytes);",
               r.pinned, "pinned block(s) kept")
  end
end)
