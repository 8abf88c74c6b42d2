-- admission.lua: an example of admission rules, first match wins. A rule's
-- tier is "ssd", "mem" (straight into the RAM tier) or false (served from
-- the store, never cached). Lua patterns, matched against the path in the
-- mount ("/logs/app.tmp").

local RULES = {
  { match = "%.tmp$", tier = false },          -- scratch files
  { match = "%.part$", tier = false },         -- downloads in progress
  { match = "^/hot/", tier = "mem" },          -- small, latency-critical data
}

strata.on_admit(function(file)
  for _, r in ipairs(RULES) do
    if string.find(file.path, r.match) then
      return r.tier
    end
  end
  return nil -- no opinion: the next policy, or the default
end)
